"""The leaderboard is Lightning-free: neither importing it nor running `attnbench leaderboard` loads
pytorch_lightning or lightning (checked in a fresh interpreter, whose sys.modules nothing else has touched)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_leaderboard import correct_array, write_record

ROOT = Path(__file__).resolve().parent.parent
# lightning_utilities (a torchmetrics dependency) is not a training stack and is allowed.
LIGHTNING = "[m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning')]"


def test_neither_the_import_nor_the_command_loads_lightning(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed))
        write_record(runs, "dot", "rnn", seed, correct_array(0.8, 10 + seed))
    out = tmp_path / "board"
    # One fresh interpreter for both checks (starting one costs seconds): first the imports, then the command.
    script = "\n".join([
        "import json, sys",
        "import attnbench.suite.leaderboard, attnbench.suite.leaderboard_render, attnbench.suite.stats",
        "import attnbench.metrics.degeneracy, attnbench.metrics.scoring",
        f"print(json.dumps({LIGHTNING}))",
        "from attnbench.cli import main",
        f"assert main(['leaderboard', '--runs', {str(runs)!r}, '--out', {str(out)!r}, '--samples', '100']) == 0",
        f"print(json.dumps({LIGHTNING}))",
    ])
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[0]) == [], "importing the leaderboard loaded Lightning"
    assert json.loads(lines[-1]) == [], "attnbench leaderboard loaded Lightning"
    assert "leaderboard of 6 runs" in done.stdout and (out / "leaderboard.json").is_file()


def test_bad_input_is_refused_before_torch_is_imported(tmp_path):
    """A typo in `attnbench run`, `baseline` or `sweep`, and a missing record folder for `leaderboard`/`report`, get
    their one-line error before torch, Lightning, datasets or torchmetrics is imported (that took 5-10 s here)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\nbase: [task=sentiment, model=rnn, model.hiden_dim=8]\naxes: {attention: [additive]}\n")
    calls = [["run", "task=sentiment", "trainer.max_epoch=1"], ["baseline", "task=sentment"],
             ["run", "--spec", str(spec), "attention=additive"], ["sweep", str(spec)],
             ["sweep", str(tmp_path / "missing.yaml")],
             ["leaderboard", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "board")],
             ["report", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "board")]]
    heavy = "[m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'datasets', 'torchmetrics')]"
    script = "\n".join([
        "import json, sys",
        "from attnbench.cli import main",
        f"codes = [main(call) for call in {calls!r}]",
        f"print(json.dumps([codes, {heavy}]))",
    ])
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    codes, imported = json.loads(done.stdout.strip().splitlines()[-1])
    errors = done.stderr.strip().splitlines()
    assert codes == [2] * len(calls) and len(errors) == len(calls), done.stderr
    assert all(line.startswith("attnbench: error: ") for line in errors), errors
    assert "trainer.max_epoch" in errors[0] and "sentment" in errors[1] and "model.hiden_dim" in errors[2] + errors[3]
    assert imported == [], f"refusing bad input imported {sorted({m.split('.')[0] for m in imported})}"
    assert not (tmp_path / "board").exists()
