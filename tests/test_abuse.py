"""Promises under abuse: a diverged run is never "completed", signals give non-zero exits and honest records,
bad input is refused before anything is written, two processes never share a run folder, and config errors
name their source. Each test holds the example a red-team run broke and at least one more case of its class.
(Checkpoints and mid-epoch resume: test_resume_abuse.py; the leaderboard: test_leaderboard_abuse.py.)"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attnbench.cli import main
from attnbench.config import config_dir, config_hash, load_config, to_yaml
from attnbench.tracking.claim import Claim
from attnbench.tracking.record import git_state, write_json

TINY = ["task.limits.train=300", "task.limits.validation=64", "task.limits.test=64", "task.probes=0",
        "trainer.max_epochs=1", "trainer.batch_size=32", "model.embed_dim=16", "model.hidden_dim=16",
        "trainer.enable_progress_bar=false", "wandb.mode=disabled", "trainer.early_stopping_patience=0"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def run_args(data_dir: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["run", f"data_dir={data_dir}", f"cache_dir={cache}", f"output_dir={out}", *TINY, *extra]


def strict_json(path: Path) -> dict:
    """Parse as strict JSON: a bare NaN/Infinity (which Python's json writes and reads by default) fails."""
    def refuse(constant):
        raise ValueError(f"{path} holds a bare {constant}: not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attnbench:")]
    assert len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------------------------- 1: NaN


@pytest.mark.parametrize("case", ["huge learning rate", "NaN attention, short run"])
def test_a_diverged_short_run_is_failed_not_completed(case, data_dir, cache, tmp_path, capsys):
    """Runs of fewer steps than trainer.log_every_n_steps (50) used to skip the check and end "completed"."""
    extra = (["optim.lr=1e30"] if case == "huge learning rate" else
             ["attention=custom", "attention.impl=tests.custom_attention:NaNInTraining"])
    assert main(run_args(data_dir, cache, tmp_path, *extra)) == 1
    assert "training loss became non-finite (NaN/inf) at step" in one_line_error(capsys)
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    record = strict_json(run_dir / "metrics.json")
    assert record["status"] == "failed" and "non-finite" in record["error"]
    assert not (run_dir / "checkpoints").exists()  # checked before the validation that would save one


def test_records_are_strict_json_and_completed_means_finite(tmp_path):
    from attnbench.training.run import check_finite

    write_json(tmp_path / "r.json", {"loss": float("nan"), "nested": [float("inf"), 1.5]})
    assert strict_json(tmp_path / "r.json") == {"loss": None, "nested": [None, 1.5]}
    check_finite({"test": {"accuracy": 0.5}, "train": {}})
    with pytest.raises(FloatingPointError, match=r"non-finite metrics val/ppl=inf"):
        check_finite({"test": {"accuracy": 0.5}, "val": {"ppl": math.inf}})


# ----------------------------------------------------------------------------------------------- 7: signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_training_exits_non_zero_and_is_recorded(signum, data_dir, cache, tmp_path, capsys):
    """SIGTERM used to exit 0 (Lightning's SIGTERMException is a SystemExit without a code)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    code = main(run_args(data_dir, cache, tmp_path, "attention=custom",
                         "attention.impl=tests.custom_attention:SignalsInTraining", f"attention.kwargs.signum={signum}"))
    name = signal.Signals(signum).name
    assert code == 128 + signum
    line = one_line_error(capsys)
    assert line.startswith(f"attnbench: run failed: interrupted by {name} (signal {int(signum)})") and "metrics.json" in line
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    record = strict_json(run_dir / "metrics.json")
    assert record["status"] == "failed" and record["interrupted"] == name
    assert record["error"] == f"interrupted by {name} (signal {int(signum)})"
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back


def test_sigterm_from_outside_exits_143(data_dir, cache, tmp_path):
    """A real `kill -TERM` from another process, as a scheduler sends it."""
    out = tmp_path / "runs"
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "attnbench", *run_args(data_dir, cache, out, "run_id=term",
                              "trainer.max_epochs=50", "task.limits.train=2000")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "term" / "config.yaml").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=120) == 143
    assert "interrupted by SIGTERM" in child.stderr.read()
    record = strict_json(out / "term" / "metrics.json")
    assert record["status"] == "failed" and record["interrupted"] == "SIGTERM"


# ----------------------------------------------------------------------------------------------- 8: refused early


def _data_copy(tmp_path: Path, test_text: str) -> Path:
    root = tmp_path / "data"
    folder = root / "sentiment" / "sst2"
    folder.mkdir(parents=True)
    source = Path(os.environ["ATTNBENCH_DATA_DIR"]) / "sentiment" / "sst2"
    for name in ("train.jsonl.gz", "validation.jsonl.gz"):
        shutil.copy(source / name, folder / name)
    (folder / "test.jsonl").write_text(test_text, encoding="utf-8")
    return root


BAD_RUNS = {
    "seed below numpy's range": (["seed=-1"], "seed=-1 is outside 0..4294967295"),
    "seed above numpy's range": (["seed=4294967296"], "seed=4294967296 is outside"),
    "NaN learning rate": (["optim.lr=nan"], "optim.lr=nan is not a finite number"),
    "infinite learning rate": (["optim.lr=inf"], "optim.lr=inf is not a finite number"),
    "zero learning rate": (["optim.lr=0"], "optim.lr=0.0 must be positive"),
    "limit of the wrong type": (["trainer.limit_train_batches=abc"], "trainer.limit_train_batches='abc' must be a fraction"),
    "fraction above 1": (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches=1.5 must be a fraction"),
    "boolean limit": (["trainer.limit_test_batches=true"], "trainer.limit_test_batches=True must be a fraction"),
    "zero validation interval": (["trainer.val_check_interval=0"], "trainer.val_check_interval=0 must be"),
    "zero max_steps": (["trainer.max_steps=0"], "trainer.max_steps=0 must be positive, or -1"),
    "run id longer than a file name": ([f"run_id={'x' * 300}"], "is 300 bytes long: it names files"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_what_can_be_checked_before_the_run_is_refused_then(case, data_dir, cache, tmp_path, capsys):
    overrides, message = BAD_RUNS[case]
    out = tmp_path / "runs"
    assert main(run_args(data_dir, cache, out, *overrides)) == 2
    line = one_line_error(capsys)
    assert line.startswith("attnbench: error: ") and message in line, line
    assert not out.exists()  # nothing written, not even an empty folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_an_accelerator_the_machine_lacks_is_refused(data_dir, cache, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(run_args(data_dir, cache, out, "trainer=gpu")) == 2
    assert "trainer.accelerator=gpu, but this machine has no CUDA GPU" in one_line_error(capsys)
    assert not out.exists()


BAD_DATA = {
    "empty split": ("", "the test split has no examples"),
    "split of blank lines": ("\n\n   \n", "the test split has no examples"),
    "text that cannot be encoded": (r'{"text": "\ud800 broken", "label": 0}' + "\n", "not encodable text"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_refused_before_the_folder_exists(case, cache, tmp_path, capsys):
    text, message = BAD_DATA[case]
    data = _data_copy(tmp_path, text)
    out = tmp_path / "runs"
    assert main(run_args(data, tmp_path / "cache", out)) == 2
    line = one_line_error(capsys)
    assert message in line and "test.jsonl" in line, line
    assert not out.exists()


def test_a_sweep_whose_cells_would_all_fail_is_refused_before_any_runs(tmp_path, capsys):
    out = tmp_path / "sweep"
    for base, message in ((["optim.lr=nan"], "optim.lr=nan is not a finite number"),
                          (["seed=-3"], "seed=-3 is outside")):
        spec = tmp_path / "spec.yaml"
        spec.write_text(json.dumps({"name": "bad", "output_dir": str(out), "base": base,
                                    "axes": {"attention": ["additive", "dot"]}}))
        assert main(["sweep", str(spec)]) == 2
        assert message in one_line_error(capsys)
        assert not out.exists()
    if not torch.cuda.is_available():
        spec.write_text(json.dumps({"name": "gpu", "output_dir": str(out), "base": ["trainer=gpu"],
                                    "axes": {"attention": ["additive", "dot"]}}))
        assert main(["sweep", str(spec)]) == 2
        assert "no CUDA GPU" in one_line_error(capsys) and not out.exists()
        assert main(["sweep", str(spec), "--dry-run"]) == 0  # planning a GPU grid on a laptop is fine


# ----------------------------------------------------------------------------------------------- 3, 4: claims


def _interrupted_run(data_dir: Path, cache: Path, out: Path, run_id: str) -> list[str]:
    """A run folder left behind by a crash (config.yaml, a failed record): what resume=auto continues."""
    args = run_args(data_dir, cache, out, f"run_id={run_id}", "attention=custom",
                    "attention.impl=tests.custom_attention:FailsInTraining")
    assert main(args) == 1
    return args


def test_a_run_folder_another_process_writes_is_never_resumed_or_reused(data_dir, cache, tmp_path, capsys):
    """Two `resume=auto` of one run_id used to both run and write the same folder."""
    out = tmp_path / "runs"
    args = _interrupted_run(data_dir, cache, out, "busy")
    capsys.readouterr()
    with Claim(out, "busy") as other:  # another process resuming it now
        assert other.try_acquire()
        assert main([*args, "resume=auto"]) == 2
        assert "run " in (line := one_line_error(capsys)) and "is being written by another process" in line
        # resume=<folder> takes the same claim.
        assert main(["run", f"resume={out / 'busy'}"]) == 2
        assert "is being written by another process" in one_line_error(capsys)
        # A fresh run is refused by a claim too (the other process may not have created the folder yet).
        with Claim(out, "taken") as creating:
            assert creating.try_acquire()
            assert main(run_args(data_dir, cache, out, "run_id=taken")) == 2
            assert "is being created by another process" in one_line_error(capsys)
            assert not (out / "taken").exists()
        # resume=auto without a run_id passes over the live folder and starts a fresh run.
        first = run_args(data_dir, cache, out, "attention=custom", "attention.impl=tests.custom_attention:FailsInTraining")
        assert main([*first, "resume=auto"]) == 1  # (it fails again, by design of the attention)
        assert strict_json(out / "busy" / "metrics.json")["status"] == "failed"  # untouched


def test_two_sweeps_never_share_an_output_folder(tmp_path):
    """Specs differing only in `name` used to run at once into one folder and move each other's live cells."""
    from attnbench.errors import ConfigError
    from attnbench.suite.ledger import Ledger

    first = Ledger(tmp_path, "one")
    first.acquire()
    try:
        with pytest.raises(ConfigError, match=r"another sweep is already running into .* \(sweep one, pid \d+\)"):
            Ledger(tmp_path, "two").acquire()
    finally:
        first.release()
    second = Ledger(tmp_path, "two")
    second.acquire()  # free once the first has finished
    second.release()


def _one_cell_spec(tmp_path: Path):
    """A validated spec of one cell (no data needed to plan it) and that cell."""
    from attnbench.suite.spec import load_spec

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps({"name": "g", "output_dir": str(tmp_path / "out"), "base": ["trainer=smoke"],
                                     "axes": {"attention": ["additive"]}}))
    spec = load_spec(spec_path)
    (cell,) = spec.cells()
    return spec, cell


def test_a_live_cell_is_never_moved_aside_or_run_twice(tmp_path):
    from attnbench.errors import ConfigError
    from attnbench.suite.ledger import archive, cell_status

    spec, cell = _one_cell_spec(tmp_path)
    live = spec.output_dir / cell.id
    live.mkdir(parents=True)  # being written: no config.yaml yet, no record
    with Claim(spec.output_dir, cell.id) as writer:
        assert writer.try_acquire()
        status = cell_status(cell, spec.output_dir, {}, spec.hashes[cell.id])
        assert status.state == "live" and not status.pending and f"pid {os.getpid()}" in status.reason
        with pytest.raises(ConfigError, match="is being written by another process"):
            archive(live, spec.output_dir)
        assert live.is_dir()
    # Once the writer is gone, the leftover is an interrupted cell again, and can be moved aside.
    assert cell_status(cell, spec.output_dir, {}, spec.hashes[cell.id]).state == "changed"
    assert archive(live, spec.output_dir).name == f"{cell.id}.1"


# ----------------------------------------------------------------------------------------------- 9: damaged folders


def _run_folder(tmp_path: Path, config_text: str | None = None, record: object = None) -> Path:
    run_dir = tmp_path / "runs" / "damaged"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config_text if config_text is not None else to_yaml(load_config([])))
    (run_dir / "metrics.json").write_text(json.dumps(record if record is not None else {
        "run_id": "damaged", "status": "completed", "metrics": {"test": {"accuracy": 0.5}}}))
    return run_dir


def _damage(text: str, key: str, value: str) -> str:
    return "\n".join(f"{line.split(':')[0]}: {value}" if line.strip().startswith(f"{key}:") else line
                     for line in text.splitlines()) + "\n"


DAMAGED = {
    "config value of the wrong type": (lambda: dict(config_text=_damage(to_yaml(load_config([])), "max_epochs", "many")),
                                       "config.yaml: Value 'many'"),
    "config value out of range": (lambda: dict(config_text=_damage(to_yaml(load_config([])), "heads", "-2")),
                                  "config.yaml: attention.heads=-2 must be positive"),
    "config that is not a mapping": (lambda: dict(config_text="[1, 2]\n"), "config.yaml: expected a mapping"),
    "metrics.json that is not an object": (lambda: dict(record=[1, 2, 3]), "metrics.json is not a run record"),
    "metrics that are not numbers": (lambda: dict(record={"status": "completed", "metrics": {"test": {"accuracy": "x"}}}),
                                     "metrics.test is not a mapping of metric names to finite numbers"),
}


# resume=<folder> reads the folder's config; the record's shape is verify's concern.
@pytest.mark.parametrize("case, command", [(case, command) for case in DAMAGED for command in ("verify", "resume")
                                           if command == "verify" or case.startswith("config")])
def test_damaged_run_folders_give_one_line_naming_the_file(case, command, tmp_path, capsys):
    make, message = DAMAGED[case]
    run_dir = _run_folder(tmp_path, **make())
    args = ["verify", str(run_dir)] if command == "verify" else ["run", f"resume={run_dir}"]
    assert main(args) == 2
    line = one_line_error(capsys)
    assert message in line and str(run_dir) in line, line


# ----------------------------------------------------------------------------------------------- 12: the hash


def test_the_config_hash_counts_only_what_changes_results():
    base = config_hash(load_config([]))
    for neutral in ("trainer.log_every_n_steps=7", "trainer.enable_progress_bar=false", "trainer.num_workers=2",
                    "wandb.project=other", "output_dir=/elsewhere"):
        assert config_hash(load_config([neutral])) == base, neutral
    for meaningful in ("seed=2", "optim.lr=0.002", "trainer.batch_size=16", "trainer.deterministic=true"):
        assert config_hash(load_config([meaningful])) != base, meaningful


def test_a_key_added_later_keeps_the_hash_of_records_made_before_it():
    """attention.head_dim came after the CPU protocol's first records: at its old (implicit) value it leaves the
    hash alone, so those records stay done; any other value is a different configuration."""
    from omegaconf import OmegaConf

    from attnbench.config import LATER_KEYS, load_saved_config

    cfg = load_config(["model=transformer"])
    before = OmegaConf.to_container(cfg, resolve=True)
    for key in LATER_KEYS:  # the config as it was composed before the key existed
        *parents, leaf = key.split(".")
        node = before
        for part in parents:
            node = node[part]
        del node[leaf]
    assert config_hash(OmegaConf.create(before)) == config_hash(cfg)
    assert config_hash(load_config(["model=transformer", "attention.head_dim=64"])) != config_hash(cfg)
    # the protocol's committed SST-2 record: its recorded hash is what the current code computes from its config
    record = Path(__file__).resolve().parents[1] / "results/sweeps/leaderboard_cpu/sentiment-rnn-additive-s1"
    saved = json.loads((record / "metrics.json").read_text())["provenance"]["config_hash"]
    assert config_hash(load_saved_config(record / "config.yaml")) == saved


def test_editing_logging_in_a_spec_keeps_its_done_cells_and_a_manual_resume_matches(data_dir, cache, tmp_path, capsys):
    from attnbench.suite.rows import HOUSEKEEPING
    from attnbench.config import NOT_RESULT_KEYS
    from attnbench.suite.ledger import cell_status
    from attnbench.suite.spec import load_spec

    out = tmp_path / "out"
    spec_path = tmp_path / "spec.yaml"
    base = [f"data_dir={data_dir}", f"cache_dir={cache}", *TINY]
    spec_path.write_text(json.dumps({"name": "g", "output_dir": str(out), "base": base, "baselines": False,
                                     "axes": {"attention": ["dot"]}}))
    assert main(["sweep", str(spec_path)]) == 0
    capsys.readouterr()
    spec_path.write_text(json.dumps({"name": "g", "output_dir": str(out), "base": [*base, "trainer.log_every_n_steps=3"],
                                     "baselines": False, "axes": {"attention": ["dot"]}}))
    spec = load_spec(spec_path)
    (cell,) = spec.cells()
    assert cell_status(cell, out, {}, spec.hashes[cell.id]).state == "done"
    # The sweep's own hidden override (no progress bar) is not part of the configuration either.
    manual = run_args(data_dir, cache, out, "attention=dot", f"run_id={cell.id}", "resume=auto",
                      "trainer.enable_progress_bar=true")
    assert main(manual) == 2
    assert "already completed" in one_line_error(capsys)  # not "holds another configuration"
    # The leaderboard splits rows by the same notion of "the same configuration".
    assert set(NOT_RESULT_KEYS) <= set(HOUSEKEEPING)


# ----------------------------------------------------------------------------------------------- 13: sources


def _config_copy(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    shutil.copytree(config_dir(), root)
    return root


def test_config_errors_name_the_file_and_line(tmp_path, monkeypatch, capsys):
    root = _config_copy(tmp_path)
    monkeypatch.setenv("ATTNBENCH_CONFIG_DIR", str(root))
    task = root / "task" / "sentiment.yaml"
    lines = task.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("max_length:"))
    task.write_text("\n".join(line.replace("max_length:", "max_lenght:") for line in lines) + "\n")
    assert main(["config", "task=sentiment"]) == 2
    line = one_line_error(capsys)
    assert f"{task}, line {number}: Key 'max_lenght' not in 'TaskConfig'" in line and "max_length" in line
    # A value out of range in a file names the file and the line too; on the command line, says so.
    task.write_text("\n".join(line.replace("max_length:", "max_length: -5 #") for line in lines) + "\n")
    assert main(["config", "task=sentiment"]) == 2
    assert f"task.max_length=-5 must be positive (> 0): pass a larger value (set in {task}, line {number})" in one_line_error(capsys)
    task.write_text("\n".join(lines) + "\n")
    assert main(["config", "model.num_layers=0"]) == 2
    assert "(set on the command line)" in one_line_error(capsys)
    # YAML syntax errors: the line as well.
    (root / "trainer" / "broken.yaml").write_text("max_epochs: 3\n  oops: [\n")
    assert main(["config", "trainer=broken"]) == 2
    assert f"{root / 'trainer' / 'broken.yaml'}, line 2: not valid YAML" in one_line_error(capsys)


def test_a_task_without_hub_block_and_no_data_says_how_to_point_at_data(tmp_path, monkeypatch, capsys):
    root = _config_copy(tmp_path)
    monkeypatch.setenv("ATTNBENCH_CONFIG_DIR", str(root))
    monkeypatch.delenv("ATTNBENCH_DATA_DIR", raising=False)
    text = (root / "task" / "sentiment.yaml").read_text()
    start = text.index("\nhub:")
    end = text.index("\nlocal:")
    (root / "task" / "localonly.yaml").write_text(text[:start] + text[end:])
    assert main(["run", "task=localonly", f"output_dir={tmp_path / 'runs'}"]) == 2
    line = one_line_error(capsys)
    assert "has no hub source" in line and "set ATTNBENCH_DATA_DIR or pass data_dir=" in line
    assert not (tmp_path / "runs").exists()


def test_untracked_recipe_files_make_the_tree_dirty(tmp_path):
    repo = tmp_path / "repo"
    (repo / "configs" / "task").mkdir(parents=True)
    (repo / "configs" / "task" / "a.yaml").write_text("name: a\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    assert git_state(repo)["git_dirty"] is False
    (repo / "notes.txt").write_text("scratch")  # untracked, outside the recipe folders: still clean
    assert git_state(repo)["git_dirty"] is False
    (repo / "experiments").mkdir()
    (repo / "experiments" / "new.yaml").write_text("name: new\n")  # a spec the commit lacks
    assert git_state(repo)["git_dirty"] is True
    (repo / "experiments" / "new.yaml").unlink()
    (repo / "configs" / "task" / "b.yaml").write_text("name: b\n")
    assert git_state(repo)["git_dirty"] is True


def test_a_claim_leaves_nothing_behind_and_a_dead_holders_lock_file_is_free(tmp_path):
    (tmp_path / ".locks").mkdir()
    (tmp_path / ".locks" / "r.lock").write_text("12345")  # left by a process killed with SIGKILL: no lock on it
    claim = Claim(tmp_path, "r")
    assert claim.try_acquire() and claim.owner() == str(os.getpid())
    assert not Claim(tmp_path, "r").try_acquire()  # exclusive, even within one process
    claim.release()
    assert list(tmp_path.iterdir()) == []  # lock file and .locks/ removed
    assert Claim(tmp_path, "r").try_acquire()


def test_a_sweep_passes_over_damaged_checkpoints(tmp_path):
    """A full disk used to leave a torn last.ckpt that the sweep kept treating as resumable, failing forever."""
    from attnbench.suite.ledger import cell_status
    from attnbench.training.checkpointing import TRAINING_STATE

    spec, cell = _one_cell_spec(tmp_path)
    run_dir = spec.output_dir / cell.id
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(load_config(list(cell.overrides))))
    write_json(run_dir / "metrics.json", {"status": "failed", "error": "interrupted by SIGTERM (signal 15)"})
    good = {key: {} for key in TRAINING_STATE}
    torch.save(good, run_dir / "checkpoints" / "last.ckpt")
    whole = (run_dir / "checkpoints" / "last.ckpt").read_bytes()

    def status():
        return cell_status(cell, spec.output_dir, {}, spec.hashes[cell.id])

    assert status().resumable and "resuming from its last checkpoint" in status().reason
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(whole[: len(whole) // 2])  # torn by a full disk
    assert not status().resumable and "no usable checkpoint, starting over" in status().reason
    torch.save(good, run_dir / "checkpoints" / "best-epoch=0-step=5.ckpt")
    assert status().resumable and "resuming from best-epoch=0-step=5.ckpt" in status().reason
