"""Sweeps: specs, cells, the ledger's view of what is done, the W&B grid, and a real sweep killed and re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from attnbench.cli import main
from attnbench.config import config_dir
from attnbench.errors import ConfigError
from attnbench.training.checkpointing import TRAINING_STATE
from attnbench.suite.ledger import Ledger, cell_status
from attnbench.suite.spec import cell_from_args, load_spec
from attnbench.suite.wandb_grid import expand_wandb_grid, wandb_sweep_config

EXPERIMENTS = Path(config_dir()).parent / "experiments"


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SPEC = """# a small grid
name: grid
output_dir: {out}
base: [trainer=smoke]
axes:
  attention: [additive, dot]
  model: [rnn, transformer]
  seed: [1, 2]
rules:
  - when: {{model: transformer}}
    set: [model.embed_dim=32, model.ff_dim=64]
  - when: {{model: transformer, attention: dot}}
    set: [model.num_layers=1]
"""


@pytest.fixture()
def spec_path(tmp_path) -> Path:
    return write_spec(tmp_path / "grid.yaml", SPEC.format(out=tmp_path / "runs"))


def test_every_experiment_spec_loads_and_every_cell_validates():
    specs = sorted(EXPERIMENTS.glob("*.yaml"))
    assert {p.stem for p in specs} >= {"leaderboard", "ablation_scaling", "ablation_heads", "leaderboard_cpu"}
    for path in specs:
        spec = load_spec(path)
        assert spec.cells() and spec.description
    board = load_spec(EXPERIMENTS / "leaderboard.yaml")
    assert len(board.cells()) == 3 * 5 * 2 * 3
    assert len(load_spec(EXPERIMENTS / "ablation_heads.yaml").cells()) == 5 * 3
    assert len(load_spec(EXPERIMENTS / "ablation_scaling.yaml").cells()) == 2 * 3 * 3


def test_cells_cross_the_axes_and_apply_matching_rules(spec_path, tmp_path):
    spec = load_spec(spec_path)
    cells = spec.cells()
    assert len(cells) == 8 and len({c.id for c in cells}) == 8
    by_id = {c.id: c for c in cells}
    assert set(by_id) == {f"{a}-{m}-s{s}" for a in ("additive", "dot") for m in ("rnn", "transformer") for s in (1, 2)}
    rnn = by_id["additive-rnn-s1"].overrides
    assert "model.embed_dim=32" not in rnn and "attention=additive" in rnn and "seed=1" in rnn
    dot_tf = by_id["dot-transformer-s2"].overrides
    assert dot_tf.index("trainer=smoke") < dot_tf.index("attention=dot") < dot_tf.index("model.num_layers=1")
    assert {"model.embed_dim=32", "model.ff_dim=64", "model.num_layers=1"} <= set(dot_tf)
    assert "model.num_layers=1" not in by_id["additive-transformer-s2"].overrides
    assert dot_tf[-2:] == ("run_id=dot-transformer-s2", f"output_dir={tmp_path / 'runs'}")


def test_only_runs_a_part_of_the_grid_with_the_cells_and_folders_of_the_whole(spec_path, tmp_path, capsys):
    whole = {c.id: c for c in load_spec(spec_path).cells()}
    part = load_spec(spec_path).select(["model=transformer", "seed=2,1", "attention=dot"])
    assert [c.id for c in part.cells()] == ["dot-transformer-s1", "dot-transformer-s2"]
    assert all(c.overrides == whole[c.id].overrides for c in part.cells())  # same run ids, output folder, rules
    assert load_spec(spec_path).select(None).cells() == list(whole.values())
    assert main(["sweep", str(spec_path), "--dry-run", "--only", "model=transformer", "--only", "seed=2"]) == 0
    shown = [line.split()[1].rstrip(":") for line in capsys.readouterr().out.splitlines() if line.startswith("run ")]
    assert shown == ["additive-transformer-s2", "dot-transformer-s2"]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("only, words", [
    (["model"], "give AXIS=VALUE"),
    (["depth=3"], "has no axis depth (axes: attention, model, seed)"),
    (["model=lstm"], "lstm is not a value of axis model"),
    (["seed=1", "seed=2"], "no cell of sweep spec"),
    (["seed=1", "--wandb"], "--wandb"),
])
def test_a_bad_only_is_refused_in_one_line(spec_path, tmp_path, capsys, only, words):
    flags = [arg for item in only for arg in (["--only", item] if item != "--wandb" else [item])]
    assert main(["sweep", str(spec_path), "--dry-run", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "runs").exists()


BAD_SPECS = {
    "missing file": (None, "does not exist"),
    "not yaml": ("axes: [unclosed", "not valid YAML"),
    "unknown key": ("name: x\naxis: {seed: [1]}\n", "keys: name"),
    "no axes": ("name: x\n", "no axes"),
    "empty axis": ("name: x\naxes: {seed: []}\n", "axis seed has no values"),
    "repeated value": ("name: x\naxes: {seed: [1, 1]}\n", "repeats a value"),
    "reserved axis": ("name: x\naxes: {run_id: [a, b]}\n", "run_id cannot be an axis"),
    "base sets an axis": ("name: x\nbase: [seed=3]\naxes: {seed: [1]}\n", "sets axis seed"),
    "base not key=value": ("name: x\nbase: [trainer]\naxes: {seed: [1]}\n", "is not key=value"),
    "rule on unknown axis": ("name: x\naxes: {seed: [1]}\nrules: [{when: {model: rnn}, set: [a=1]}]\n",
                             "rules[0].when names model"),
    "rule on unknown value": ("name: x\naxes: {seed: [1]}\nrules: [{when: {seed: 5}, set: [a=1]}]\n",
                              "seed=5 is not one of the axis values"),
    "bad cell config": ("name: x\naxes: {attention: [additive, bahdanau]}\n", "cell attention=bahdanau"),
    "bad name": ("name: 'a b'\naxes: {seed: [1]}\n", "name='a b'"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_spec_is_refused_with_one_line_and_nothing_written(case, tmp_path, capsys):
    text, message = BAD_SPECS[case]
    path = tmp_path / "spec.yaml"
    if text is not None:
        write_spec(path, text + (f"output_dir: {tmp_path / 'runs'}\n" if "output_dir" not in text else ""))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_wandb_sweep_config_matches_the_local_grid_cell_for_cell(spec_path):
    spec = load_spec(spec_path)
    config = wandb_sweep_config(spec)
    assert config["method"] == "grid"
    assert config["command"][-4:] == ["run", "--spec", str(spec_path), "${args_no_hyphens}"]
    agent_cells = [cell_from_args(spec, args) for args in expand_wandb_grid(config)]
    local = spec.cells()
    assert len(agent_cells) == len(local)
    assert {(c.id, c.overrides) for c in agent_cells} == {(c.id, c.overrides) for c in local}
    for name in ("leaderboard", "ablation_scaling", "ablation_heads"):
        big = load_spec(EXPERIMENTS / f"{name}.yaml")
        grid = [cell_from_args(big, args) for args in expand_wandb_grid(wandb_sweep_config(big))]
        assert sorted(c.overrides for c in grid) == sorted(c.overrides for c in big.cells())


def test_wandb_dry_run_prints_the_sweep_config(spec_path, capsys):
    assert main(["sweep", str(spec_path), "--wandb", "--dry-run"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["parameters"]["attention"]["values"] == ["additive", "dot"]
    assert config["parameters"]["seed"]["values"] == [1, 2]


def test_wandb_sweep_creation_needs_a_key(spec_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setenv("HOME", str(spec_path.parent))
    assert main(["sweep", str(spec_path), "--wandb"]) == 2
    assert "W&B API key" in capsys.readouterr().err


def test_run_with_spec_takes_exactly_the_axes(spec_path):
    spec = load_spec(spec_path)
    cell = cell_from_args(spec, ["attention=dot", "model=rnn", "seed=2"])
    assert cell.id == "dot-rnn-s2"
    with pytest.raises(ConfigError, match="missing model"):
        cell_from_args(spec, ["attention=dot", "seed=2"])
    with pytest.raises(ConfigError, match="pass only the axes"):
        cell_from_args(spec, ["attention=dot", "model=rnn", "seed=2", "optim.lr=1"])
    with pytest.raises(ConfigError, match="seed=7 is not a value of axis seed"):
        cell_from_args(spec, ["attention=dot", "model=rnn", "seed=7"])


def test_cell_status_from_disk(spec_path, tmp_path):
    spec = load_spec(spec_path)
    cells = {c.id: c for c in spec.cells()}
    out = spec.output_dir

    def folder(cell_id: str, record: dict | None, config_overrides: tuple[str, ...] | None = None) -> None:
        from attnbench.config import load_config, to_yaml

        d = out / cell_id
        d.mkdir(parents=True)
        overrides = config_overrides or cells[cell_id].overrides
        (d / "config.yaml").write_text(to_yaml(load_config(list(overrides))))
        if record is not None:
            (d / "metrics.json").write_text(json.dumps(record))

    folder("additive-rnn-s1", {"status": "completed"})
    folder("additive-rnn-s2", {"status": "failed", "error": "ValueError: nan"})
    folder("dot-rnn-s1", None)
    folder("dot-rnn-s2", {"status": "running"})
    folder("dot-transformer-s1", {"status": "completed"}, (*cells["dot-transformer-s1"].overrides, "optim.lr=0.5"))
    folder("dot-transformer-s2", {"status": "failed", "error": "interrupted (KeyboardInterrupt: )"})
    (out / "dot-transformer-s2" / "checkpoints").mkdir()
    # A checkpoint that passes the resume check (training/checkpointing.py): a whole archive with the training state.
    torch.save({key: {} for key in TRAINING_STATE}, out / "dot-transformer-s2" / "checkpoints" / "last.ckpt")
    states = {cid: cell_status(c, out, {}) for cid, c in cells.items()}
    assert states["additive-rnn-s1"].state == "done"
    assert states["additive-rnn-s2"].state == "failed" and "ValueError: nan" in states["additive-rnn-s2"].reason
    assert states["dot-rnn-s1"].state == "interrupted" and states["dot-rnn-s2"].state == "interrupted"
    assert not states["dot-rnn-s1"].resumable and "starting over" in states["dot-rnn-s1"].reason
    assert states["dot-transformer-s2"].state == "interrupted" and states["dot-transformer-s2"].resumable
    assert states["dot-transformer-s1"].state == "changed"
    assert states["additive-transformer-s1"].state == "missing"
    assert [s.pending for s in states.values()].count(False) == 1


def test_second_sweep_on_the_same_ledger_is_refused(spec_path):
    spec = load_spec(spec_path)
    first = Ledger(spec.output_dir, spec.name)
    first.acquire()
    try:
        # flock is per open file description: a second Ledger in this process stands in for a second process.
        with pytest.raises(ConfigError, match="another sweep is already running"):
            Ledger(spec.output_dir, spec.name).acquire()
    finally:
        first.release()
    second = Ledger(spec.output_dir, spec.name)
    second.acquire()
    second.release()


# ---- a real sweep of tiny runs, killed mid-way and run again --------------------------------------------------


def records(out: Path, kind: str = "model") -> dict[str, dict]:
    """The run records of the cells (kind "model") or of the trivial baselines the sweep writes beside them."""
    found = {}
    for path in out.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        if record.get("kind", "model") == kind:
            found[path.parent.name] = record
    return found


def test_killed_sweep_reruns_only_unfinished_cells(data_dir, tmp_path):
    out = tmp_path / "runs"
    cache = tmp_path / "cache"
    spec = write_spec(tmp_path / "tiny.yaml", f"""# three tiny sentiment runs
name: tiny
output_dir: {out}
base: [data_dir={data_dir}, cache_dir={cache}, task.limits.train=300, task.limits.validation=64,
       task.limits.test=64, task.probes=0, trainer.max_epochs=1, trainer.batch_size=32, model.embed_dim=16,
       model.hidden_dim=16, wandb.mode=disabled, trainer.early_stopping_patience=0]
axes:
  attention: [dot, general, scaled_dot]
rules:  # the cell to be killed trains long enough to be caught mid-run
  - when: {{attention: general}}
    set: [task.limits.train=3000, trainer.max_epochs=3]
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "attnbench", "sweep", str(spec)]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    # Kill the whole sweep (as a crash or `kill -9` would) once the first cell is done and the second has written
    # its first checkpoint.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and sweep.poll() is None:
        if records(out).get("dot", {}).get("status") == "completed" and \
                (out / "general" / "checkpoints" / "last.ckpt").exists():
            break
        time.sleep(0.1)
    time.sleep(0.3)  # let the checkpoint file be written completely
    assert sweep.poll() is None, sweep.stdout.read()
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    # The cell process dies with the sweep (parent-death signal): no orphan keeps writing into general/.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _cell_processes(out):
        time.sleep(0.2)
    assert not _cell_processes(out)
    before = records(out)
    assert before["dot"]["status"] == "completed" and "general" not in before and "scaled_dot" not in before
    dot_record = (out / "dot" / "metrics.json").read_text()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    log = again.stdout
    assert "skip dot: done" in log
    assert "run  general: interrupted" in log and "resuming from its last checkpoint" in log
    assert "run  scaled_dot: missing" in log
    assert "summary: 2 done, 0 failed, 0 interrupted, 1 skipped" in log
    assert "min wall time with 1 job(s)" in log
    after = records(out)
    assert set(after) == {"dot", "general", "scaled_dot"}
    assert all(r["status"] == "completed" for r in after.values())
    assert (out / "dot" / "metrics.json").read_text() == dot_record  # the finished cell was not re-run
    # The interrupted cell continued in place from its checkpoint: nothing set aside, nothing duplicated.
    assert after["general"]["resumed_from"] == "checkpoints/last.ckpt"
    assert not (out / ".attempts").exists()
    ledger = json.loads((out / ".sweep" / "tiny.json").read_text())["cells"]
    assert ledger["general"]["attempts"] == 2 and ledger["general"]["state"] == "done"
    assert ledger["dot"]["attempts"] == 1

    # Beside the cells: the majority-class baseline of each task data the grid uses (two training slices), written
    # once and left as they are by the later sweeps.
    baselines = records(out, "baseline")
    assert len(baselines) == 2 and all(r["baseline"] == "majority" for r in baselines.values())
    assert "up to date" in log
    # A third run has nothing to do; the leaderboard reads exactly three model records.
    third = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert third.returncode == 0 and "0 to run" in third.stdout
    assert records(out, "baseline") == baselines
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(out), "--out", str(tmp_path / "board"), "--baseline", "dot"]) == 0
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    models = [r for r in board["tasks"]["sentiment"] if r.get("attention")]
    assert sorted(r["attention"] for r in models) == ["dot", "general", "scaled_dot"]
    assert all(r["metrics"]["accuracy"]["n"] == 1 for r in models)


def test_interrupted_parallel_sweep_stops_its_cells_and_says_so(data_dir, tmp_path):
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "pair.yaml", f"""# two long tiny runs side by side
name: pair
output_dir: {out}
base: [data_dir={data_dir}, cache_dir={tmp_path / 'cache'}, task.limits.train=6000, task.limits.validation=64,
       task.limits.test=64, task.probes=0, trainer.max_epochs=20, model.embed_dim=16, model.hidden_dim=16,
       wandb.mode=disabled, trainer.early_stopping_patience=0]
axes:
  attention: [dot, general]
""")
    sweep = subprocess.Popen([sys.executable, "-m", "attnbench", "sweep", str(spec), "--jobs", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not ((out / "dot").exists() and (out / "general").exists()):
        time.sleep(0.2)
    assert (out / "dot").exists() and (out / "general").exists()  # both cells run at once
    sweep.send_signal(signal.SIGINT)
    output, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, output
    assert "summary: 0 done, 0 failed, 2 interrupted, 0 skipped" in output
    assert "run the same command again" in output
    for cell in ("dot", "general"):
        record = json.loads((out / cell / "metrics.json").read_text())
        assert record["status"] == "failed" and record["error"].startswith("interrupted"), record
    ledger = json.loads((out / ".sweep" / "pair.json").read_text())["cells"]
    assert {c["state"] for c in ledger.values()} == {"interrupted"}
    assert not _cell_processes(out)


def test_parallel_slots_get_a_gpu_each_or_a_share_of_the_cores(monkeypatch):
    import torch

    from attnbench.training.slots import child_environments

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [env["OMP_NUM_THREADS"] for env in child_environments(4)] == ["2"] * 4
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in child_environments(3)] == ["0", "1", "0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert [env["CUDA_VISIBLE_DEVICES"] for env in child_environments(2)] == ["5", "7"]


def _cell_processes(out: Path) -> list[str]:
    """Live processes whose command line names this output folder (cell runs of the sweep)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"output_dir={out}".encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_run_with_spec_refuses_a_cell_outside_the_grid(spec_path, capsys):
    assert main(["run", "--spec", str(spec_path), "attention=dot", "model=rnn", "seed=7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed=7 is not a value of axis seed" in err[0]
    assert not load_spec(spec_path).output_dir.exists()


def test_crashed_cell_is_recorded_does_not_stop_the_sweep_and_is_retried(data_dir, tmp_path):
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "crash.yaml", f"""# one cell crashes
name: crash
output_dir: {out}
base: [data_dir={data_dir}, cache_dir={tmp_path / 'cache'}, task.limits.train=200, task.limits.validation=32,
       task.limits.test=32, task.probes=0, trainer.max_epochs=1, model.embed_dim=16, model.hidden_dim=16,
       wandb.mode=disabled, trainer.early_stopping_patience=0]
axes:
  attention.impl: ["tests.custom_attention:FailsInTraining", "tests.custom_attention:GatedDot"]
rules:
  - when: {{attention.impl: "tests.custom_attention:FailsInTraining"}}
    set: [attention=custom]
  - when: {{attention.impl: "tests.custom_attention:GatedDot"}}
    set: [attention=custom]
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "attnbench", "sweep", str(spec)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 1  # a failed cell makes the sweep fail, after running every cell
    assert "summary: 1 done, 1 failed" in first.stdout and "injected failure" in first.stdout
    failed_id = "impltests.custom_attention_FailsInTraining"
    record = json.loads((out / failed_id / "metrics.json").read_text())
    assert record["status"] == "failed" and "injected failure" in record["error"]
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 1 and f"run  {failed_id}: failed" in second.stdout
    assert "summary: 0 done, 1 failed, 0 interrupted, 1 skipped" in second.stdout
    ledger = json.loads((out / ".sweep" / "crash.json").read_text())["cells"]
    assert ledger[failed_id]["attempts"] == 2 and "injected failure" in ledger[failed_id]["error"]
    assert [p.name for p in (out / ".attempts").iterdir()] == [f"{failed_id}.1"]
