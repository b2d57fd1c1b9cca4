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
