"""The `attnbench` command: listing, and bad input refused with one line, a non-zero exit and nothing written."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnbench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_list_shows_every_variant_task_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("additive", "dot", "general", "scaled_dot", "multihead", "sentiment", "rnn", "transformer", "smoke"):
        assert f"  {name} " in out, name
    assert "Bahdanau" in out or "v^T tanh" in out or "tanh" in out


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "attention=dot", "seed=3"]) == 0
    out = capsys.readouterr().out
    assert "name: dot" in out and "seed: 3" in out


def test_console_entry_points_run():
    """`python -m attnbench` and the installed `attnbench` script are the same command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    module = subprocess.run([sys.executable, "-m", "attnbench", "config", "attention=foo"], capture_output=True,
                            text=True, env=env, cwd=ROOT)
    assert module.returncode == 2
    assert module.stderr.strip().splitlines() == [module.stderr.strip()]
    assert "unknown attention option 'foo'" in module.stderr
    script = Path(sys.executable).with_name("attnbench")
    assert script.exists(), "the attnbench console script is not installed (pip install -e .)"
    listed = subprocess.run([str(script), "list"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert listed.returncode == 0 and "scaled_dot" in listed.stdout


def _write_jsonl_gz(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


@pytest.fixture
def broken_data(tmp_path) -> Path:
    """A data folder whose train split has an empty text on line 3."""
    root = tmp_path / "data"
    good = [json.dumps({"text": f"a fine film {i}", "label": i % 2}).encode() for i in range(4)]
    _write_jsonl_gz(root / "sentiment/sst2/train.jsonl.gz", good[:2] + [b'{"text": "  ", "label": 1}'] + good[2:])
    for split in ("validation", "test"):
        _write_jsonl_gz(root / f"sentiment/sst2/{split}.jsonl.gz", good)
    return root


CASES = {
    "unknown group option": (["attention=bahdanau"], "unknown attention option 'bahdanau'"),
    "unknown key": (["trainer.max_epoch=2"], "did you mean 'trainer.max_epochs'"),
    "wrong type": (["trainer.batch_size=big"], "is not an integer"),
    "heads do not divide": (["attention=multihead", "attention.heads=7"], "not divisible"),
    "custom without impl": (["attention=custom"], "attention.impl"),
    "impl not importable": (["attention=custom", "attention.impl=no_such_pkg.mod:Cls"], "no_such_pkg"),
    "missing data folder": (["data_dir={tmp}/nowhere", "task.source=local"], "nowhere"),
    "malformed data": (["data_dir={broken}"], "line 3"),
    "online without key": (["wandb.mode=online"], "W&B API key"),
    "online, server unreachable": (["wandb.mode=online"], "W&B server cannot be reached"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_nonzero_with_one_line_and_writes_nothing(case, broken_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    if case == "online, server unreachable":
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    overrides, message = CASES[case]
    overrides = [o.format(tmp=tmp_path, broken=broken_data) for o in overrides]
    out = tmp_path / "results"
    code = main(["run", f"output_dir={out}", f"cache_dir={tmp_path / 'cache'}", *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1, err
    assert not out.exists(), "bad input must not create anything under output_dir"


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", f"output_dir={blocker / 'runs'}"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_entry_point_plugin_is_a_group_option(monkeypatch, capsys):
    """A package that registers `attnbench.attention` entry points adds `attention=<name>` with no YAML file."""
    import importlib.metadata

    import attnbench.attention.registry as registry
    from attnbench.config import load_config

    plugin = importlib.metadata.EntryPoint(name="gated_dot", value="tests.custom_attention:GatedDot",
                                           group="attnbench.attention")
    monkeypatch.setattr(registry, "entry_points", lambda group: [plugin] if group == plugin.group else [])
    cfg = load_config(["attention=gated_dot", "model=transformer"])
    assert cfg.attention.name == "gated_dot"
    assert main(["list"]) == 0
    assert "gated_dot" in capsys.readouterr().out
    with pytest.raises(Exception, match="valid options are .*gated_dot"):
        load_config(["attention=gated_dotx"])
