"""`attnbench sweep --launcher slurm` against a real single-node Slurm (tests/slurm_cluster.py, started here).

Covered: a small real sweep (tiny SST-2 cells, one of them DDP on 2 processes) submitted, followed with --status,
finished and turned into a leaderboard; a rerun that submits nothing; a cell requeued mid-training (submitit's
USR2) that resumes from last.ckpt and ends with the record of an uninterrupted run; --cancel; and the bad inputs
(no sbatch, an unknown partition, a time over the partition's limit, an option sbatch refuses): one line, exit 2,
nothing written. Without Slurm's packages the cluster tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnbench.cli import main
from attnbench.errors import ConfigError
from attnbench.suite import slurm
from attnbench.suite.ledger import Ledger
from attnbench.suite.spec import load_spec
from attnbench.tracking.claim import Claim
from tests.helpers import TINY, assert_same_run, record
from tests.slurm_cluster import LocalSlurm, SlurmUnavailable, missing

# Tiny SST-2 cells: seconds of training each on one core.
CELL = [*TINY, "trainer.accelerator=cpu", "task.probes=0"]
DONE_WITHIN_S = 300  # generous: a job waits for cores behind the others on a 2-core node


# ----------------------------------------------------------------------------------------------- no cluster


def test_slurm_times_in_every_format_and_refusals():
    assert [slurm.parse_time(t) for t in ("90", "5:00", "5:01", "4:00:00", "1-12", "1-00:30", "1-00:00:30")] == \
        [90, 5, 6, 240, 2160, 1470, 1441]
    for bad in ("abc", "0", "1:2:3:4", "-5", "", "0:00"):
        with pytest.raises(ConfigError, match="time"):
            slurm.parse_time(bad)


def test_resources_merge_the_spec_block_with_the_flags_and_check_them():
    res = slurm.resources({"partition": "gpu", "time": "2:00:00", "sbatch": {"qos": "low", "--constraint": "a100"}},
                          {"time": "30", "partition": None, "sbatch": {"qos": "high"}, "cpus_per_cell": 4})
    assert (res.partition, res.timeout_min, res.cpus_per_cell) == ("gpu", 30, 4)
    assert res.sbatch == {"qos": "high", "constraint": "a100"}
    with pytest.raises(ConfigError, match="unknown key.*nodes"):
        slurm.resources({"nodes": 2}, {})
    with pytest.raises(ConfigError, match="cpus_per_cell=0 must be an integer >= 1"):
        slurm.resources({}, {"cpus_per_cell": 0})
    with pytest.raises(ConfigError, match="gpus_per_cell"):
        slurm.resources({"gpus_per_cell": "two"}, {})
    assert slurm.parse_sbatch_options(["qos=high", "--begin=now+1hour"]) == {"qos": "high", "begin": "now+1hour"}
    assert slurm.parse_sbatch_options(None) is None
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        slurm.parse_sbatch_options(["qos"])


def test_sbatch_errors_come_down_to_the_line_that_says_why():
    refused = "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    assert slurm.sbatch_error(refused) == "Batch job submission failed: Invalid partition name specified"
    option = ("sbatch: unrecognized option '--bogus=1'\nTry \"sbatch --help\" for more information\n")
    assert slurm.sbatch_error(option) == "sbatch: unrecognized option '--bogus=1'"
    assert slurm.sbatch_error("") == "no message"


def test_partition_limits_read_sinfo():
    limits = slurm.partition_limits("debug* infinite\nshort 5:00\nlong 2-00:00:00\nodd n/a\n")
    assert limits == {slurm.DEFAULT: "debug", "debug": None, "short": 5, "long": 2880, "odd": None}


def test_submitting_leaves_the_processes_logging_alone():
    """submitit's import runs logging.config.dictConfig, which closes every handler the process has (it broke the
    test runner's capture here); the launcher imports it without that."""
    script = """
import logging
class Handler(logging.Handler):
    closed = False
    def close(self):
        Handler.closed = True
        super().close()
logging.getLogger("app").addHandler(Handler())
from attnbench.suite.slurm import _submitit
_submitit().SlurmExecutor
assert not Handler.closed, "a handler of the process was closed"
"""
    done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout


def write_spec(path: Path, out: Path, data_dir: Path, cache: Path, axes: str, rules: str = "", base=(),
               extra: str = "") -> Path:
    overrides = [f"data_dir={data_dir}", f"cache_dir={cache}", *CELL, *base]
    path.write_text(f"name: {path.stem}\noutput_dir: {out}\nbase: {json.dumps(overrides)}\naxes:\n{axes}\n"
                    + (f"rules:\n{rules}\n" if rules else "") + extra)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def grid(tmp_path, data_dir, cache) -> Path:
    """Two cells: additive on one process, dot as DDP on two (its own job array: another task count; evaluation
    batches are split between the ranks, so it gets two of each)."""
    return write_spec(tmp_path / "grid.yaml", tmp_path / "runs", data_dir, cache, "  attention: [additive, dot]",
                      "  - when: {attention: dot}\n    set: [trainer.devices=2, task.limits.validation=64, "
                      "task.limits.test=64]")


@pytest.fixture
def sweep(capsys):
    """`attnbench sweep <spec> --launcher slurm <flags>` as a user runs it (in this process): code, out, err."""

    def run(spec: Path, *flags: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["sweep", str(spec), "--launcher", "slurm", *flags])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def assert_refused(result: tuple[int, str, str], out: Path, *words: str) -> None:
    code, stdout, stderr = result
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnbench: error:"), stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


def test_dry_run_shows_each_array_and_writes_nothing(grid, tmp_path, sweep):
    code, out, err = sweep(grid, "--dry-run", "--cpus-per-cell", "2", "--time", "1:30:00", "--sbatch", "qos=high")
    assert code == 0, err
    assert "2 would be submitted" in out
    assert "#SBATCH --ntasks-per-node=2" in out and "#SBATCH --ntasks-per-node=1" in out
    assert "#SBATCH --cpus-per-task=2" in out and "#SBATCH --cpus-per-task=1" in out
    assert "#SBATCH --time=90" in out and "#SBATCH --qos=high" in out
    assert "trainer.devices=2" in out
    assert not (tmp_path / "runs").exists()


def test_the_spec_slurm_block_gives_the_resources_and_is_checked(tmp_path, data_dir, cache, sweep):
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "res.yaml", out, data_dir, cache, "  attention: [additive]",
                      extra="slurm: {time: '2:00:00', mem: 4G, sbatch: {qos: low}}\n")
    code, stdout, err = sweep(spec, "--dry-run", "--mem", "6G")
    assert code == 0, err
    assert "#SBATCH --time=120" in stdout and "#SBATCH --qos=low" in stdout and "#SBATCH --mem=6G" in stdout
    bad = write_spec(tmp_path / "bad.yaml", out, data_dir, cache, "  attention: [additive]", extra="slurm: {nodes: 2}\n")
    assert_refused(sweep(bad, "--dry-run"), out, "unknown key(s) nodes", "partition")


def test_without_sbatch_on_path_the_sweep_is_refused_in_one_line(grid, tmp_path, sweep, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert_refused(sweep(grid), tmp_path / "runs", "sbatch", "not found on PATH")


@pytest.mark.parametrize("flags, words", [
    (["--time", "abc"], ["time='abc'", "HH:MM:SS"]),
    (["--sbatch", "noequals"], ["not KEY=VALUE"]),
    (["--cpus-per-cell", "0"], ["cpus_per_cell=0"]),
])
def test_bad_resources_are_refused_before_slurm_is_asked(grid, tmp_path, sweep, flags, words):
    assert_refused(sweep(grid, *flags), tmp_path / "runs", *words)


def test_a_job_requeued_after_its_cell_completed_keeps_the_record_and_runs_nothing(tmp_path, data_dir, cache,
                                                                                    monkeypatch):
    """A preemption signal in a cell's last moments requeues a job whose cell has already finished: the restart
    must keep the completed record, not move the folder aside and train again."""
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "late.yaml", out, data_dir, cache, "  attention: [additive]")
    (cell,) = load_spec(spec).cells()
    out.mkdir()
    log = out / "cell.log"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    first = slurm.CellJob(cell.id, cell.overrides, str(out), None, str(log))()
    assert first["status"] == "completed", log.read_text()
    metrics = out / cell.id / "metrics.json"
    before = (metrics.read_bytes(), metrics.stat().st_mtime_ns)

    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    again = slurm.CellJob(cell.id, cell.overrides, str(out), None, str(log))()
    assert again == first
    assert (metrics.read_bytes(), metrics.stat().st_mtime_ns) == before
    assert log.read_text().count("$ ") == 1 and "completed before the requeue" in log.read_text()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [cell.id, "cell.log"]


# ----------------------------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Slurm for this module; SLURM_CONF points this process and the ones it starts at it."""
    on_ci = os.environ.get("CI", "").strip().lower() == "true"
    reason = missing()
    if reason is None:
        try:
            instance = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
        except SlurmUnavailable as err:
            reason = str(err)
    if reason is not None:
        if on_ci:
            pytest.fail(f"no local Slurm: {reason}; CI must run the Slurm tests (.ci/run installs the packages)")
        pytest.skip(f"no local Slurm: {reason}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(instance.conf)
    try:
        yield instance
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        instance.stop()


def states(spec: Path) -> dict[str, str]:
    s = load_spec(spec)
    return {cell.id: state for cell, state, *_ in slurm.SlurmLauncher(s, slurm.resources({}, {})).status()}


def wait_for(what: str, check, timeout: float = DONE_WITHIN_S, spec: Path | None = None, poll: float = 0.5):
    """Poll a real cluster (jobs start and end on Slurm's schedule) until `check()` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f"; cells {states(spec)}" if spec else ""))


def pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits to be delivered to process `pid` (a stopped process takes none until SIGCONT)."""
    masks = [int(line.split()[1], 16) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
             if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask >> (signum - 1) & 1 for mask in masks)


def ended(spec: Path) -> bool:
    return all(state in ("done", "failed", "cancelled", "unknown") for state in states(spec).values())


def test_a_sweep_submitted_finished_and_read_and_a_rerun_submits_nothing(cluster, grid, tmp_path, sweep):
    out = tmp_path / "runs"
    code, stdout, err = sweep(grid, "--cpus-per-cell", "2", "--time", "10")
    assert code == 0, err
    assert "2 cells, 2 to submit" in stdout and "submitted 2 cell(s)" in stdout
    ledger = Ledger(out, "grid").read()
    assert {entry["state"] for entry in ledger.values()} == {"submitted"} and len(ledger) == 2
    assert all(entry["job_id"] and entry["launcher"] == "slurm" for entry in ledger.values())
    # Two arrays (1 task and 2 tasks per cell): two different job ids before the underscore.
    assert len({entry["job_id"].split("_")[0] for entry in ledger.values()}) == 2

    wait_for("both cells ended", lambda: ended(grid), spec=grid)
    code, stdout, err = sweep(grid, "--status")
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == "sweep grid: 2 done", stdout
    # --status wrote what it found into the ledger: the ledger follows the jobs, the records stay the truth.
    assert {entry["state"] for entry in Ledger(out, "grid").read().values()} == {"done"}
    single, ddp = record(out / "additive"), record(out / "dot")
    assert single["status"] == ddp["status"] == "completed"
    # The DDP cell ran as 2 processes in one allocation: each saw half the data, so half the optimizer steps.
    import torch

    ranks = torch.load(out / "dot" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)["attnbench"]["ranks"]
    assert len(ranks) == 2
    assert ddp["cost"]["steps"] < single["cost"]["steps"] <= 2 * ddp["cost"]["steps"] + 1
    log = Path(Ledger(out, "grid").read()["dot"]["log"]).read_text()
    assert "rank 0" in log and "rank 1" in log

    jobs = {cell: entry["job_id"] for cell, entry in Ledger(out, "grid").read().items()}
    code, stdout, err = sweep(grid)
    assert code == 0, err
    assert "2 cells, 0 to submit" in stdout and "job array" not in stdout
    assert {cell: entry["job_id"] for cell, entry in Ledger(out, "grid").read().items()} == jobs

    board = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(out), "--out", str(board), "--wandb", "disabled"]) == 0
    table = (board / "leaderboard.md").read_text()
    assert "| additive" in table and "| dot" in table and "majority class" in table

    # Another sweep of the same cells elsewhere, listing this one under `reuse`: both are copied on the login node
    # (the DDP cell too), nothing is submitted.
    later = tmp_path / "later.yaml"
    later.write_text(grid.read_text().replace(f"output_dir: {out}", f"output_dir: {tmp_path / 'later'}")
                     .replace("name: grid", "name: later") + f"reuse: [{out}]\n")
    code, stdout, err = sweep(later)
    assert code == 0, err
    assert "2 cells, 0 to submit" in stdout and "reuse  dot: reusable: no run folder yet" in stdout
    assert f"reused additive: copied from {out / 'additive'}" in stdout and "job array" not in stdout
    assert record(tmp_path / "later" / "dot")["reused_from"] == str(out / "dot")
    assert {entry["state"] for entry in Ledger(tmp_path / "later", "later").read().values()} == {"done"}


REQUEUE = ["task.limits.train=2000", "task.limits.validation=64", "task.limits.test=96", "trainer.max_epochs=2",
           "trainer.val_check_interval=0.5", "trainer.deterministic=true", "seed=5", "optim.lr=3e-3",
           "model.embed_dim=24", "model.hidden_dim=16", "model.dropout=0.3"]


def test_a_cell_requeued_mid_training_resumes_and_matches_an_uninterrupted_run(cluster, tmp_path, sweep, data_dir,
                                                                             cache):
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "requeue.yaml", out, data_dir, cache, "  attention: [additive]", base=REQUEUE)
    (cell,) = load_spec(spec).cells()
    # The uninterrupted run, on this machine meanwhile: one thread, as the job's one core gives it.
    whole_out = tmp_path / "whole"
    whole = subprocess.Popen([sys.executable, "-m", "attnbench", "run", *cell.overrides, f"output_dir={whole_out}",
                              "run_id=whole"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    code, stdout, err = sweep(spec, "--time", "10")
    assert code == 0, err
    job_id = Ledger(out, "requeue").read()[cell.id]["job_id"]
    last = out / cell.id / "checkpoints" / "last.ckpt"
    wait_for("the first checkpoint", last.exists, spec=spec, poll=0.02)
    # The cell's training process is frozen the moment its first checkpoint appears (its remaining training takes
    # about a second, less than a signal's way through Slurm under load), so the preemption lands mid-training
    # every time: the lock file names the `attnbench run` process that writes the folder.
    pid = int(Claim(out, cell.id).owner())
    assert b"attnbench" in Path(f"/proc/{pid}/cmdline").read_bytes()
    os.kill(pid, signal.SIGSTOP)
    try:
        done = out / cell.id / "metrics.json"
        assert not done.exists() or record(out / cell.id)["status"] != "completed", "finished before it was frozen"
        # What Slurm does to a preempted job under submitit: USR2 to the job; submitit checkpoints and requeues it,
        # its checkpoint hook first sending the cell process SIGINT.
        subprocess.run(["scancel", "--signal", "USR2", job_id], check=True, env=cluster.env)
        wait_for("the cell process sent SIGINT", lambda: pending(pid, signal.SIGINT), timeout=60, spec=spec)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for("the requeued cell ended", lambda: ended(spec), spec=spec)
    assert whole.wait(timeout=DONE_WITHIN_S) == 0, whole.stdout.read()

    resumed = record(out / cell.id)
    assert resumed.get("resumed_from") == "checkpoints/last.ckpt", resumed.get("resumed_from")
    log = Path(Ledger(out, "requeue").read()[cell.id]["log"]).read_text()
    assert "restart 0" in log and "restart 1" in log and "resume=auto" in log
    assert_same_run(out / cell.id, whole_out / "whole")
    assert states(spec) == {cell.id: "done"}


def test_cancel_stops_the_jobs_and_a_rerun_submits_them_again(cluster, tmp_path, sweep, data_dir, cache):
    out = tmp_path / "runs"
    spec = write_spec(tmp_path / "later.yaml", out, data_dir, cache, "  attention: [additive]")
    (cell,) = load_spec(spec).cells()
    later = ["--sbatch", "begin=now+1hour"]  # stays pending: nothing runs, nothing to wait for
    assert sweep(spec, *later)[0] == 0
    wait_for("the job pending", lambda: states(spec)[cell.id] == "pending", timeout=30, spec=spec)

    code, stdout, err = sweep(spec, *later)
    assert code == 0, err
    assert "0 to submit" in stdout and "left alone" in stdout

    code, stdout, err = sweep(spec, "--cancel")
    assert code == 0, err
    assert "cancelled 1 job(s)" in stdout
    wait_for("the job cancelled", lambda: states(spec)[cell.id] == "cancelled", timeout=60, spec=spec)
    assert Ledger(out, "later").read()[cell.id]["state"] == "cancelled"

    code, stdout, err = sweep(spec, *later)
    assert code == 0, err
    assert "1 to submit" in stdout
    entry = Ledger(out, "later").read()[cell.id]
    assert entry["attempts"] == 2 and entry["state"] == "submitted"
    code, stdout, err = sweep(spec, "--cancel")
    assert code == 0 and "cancelled 1 job(s)" in stdout, (stdout, err)


@pytest.mark.parametrize("flags, words", [
    (["--partition", "nosuch"], ["partition 'nosuch' does not exist", "debug", "short"]),
    (["--partition", "short", "--time", "10"], ["over partition 'short'", "limit of 5 min"]),
    (["--sbatch", "bogus=1"], ["sbatch refused the submission", "bogus"]),
])
def test_submissions_slurm_would_refuse_are_refused_in_one_line(cluster, grid, tmp_path, sweep, flags, words):
    assert_refused(sweep(grid, *flags), tmp_path / "runs", *words)
