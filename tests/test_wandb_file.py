"""W&B's run file: read back record by record, and whole when attnbench's own runs return (tracking/wandb_file.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from attnbench.errors import ResourceError
from attnbench.tracking.wandb_file import finish_and_wait, run_file, run_records


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_a_finished_run_file_is_whole_when_finish_and_wait_returns(offline, tmp_path):
    import wandb

    run = wandb.init(project="attnbench-test", dir=str(tmp_path), mode="offline",
                     settings=wandb.Settings(init_timeout=60, silent=True))
    run.log({"x": 1.5})
    run.summary.update({"answer": 42})
    path = run_file(run)
    finish_and_wait(run)
    kinds = [record.WhichOneof("record_type") for record in run_records(path)]
    assert kinds[0] == "header" and kinds[-1] == "exit" and "history" in kinds and "summary" in kinds
    # a file cut in the middle of a record yields the whole records before it, never a half-parsed one
    data = path.read_bytes()
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(data[: len(data) - 3])
    assert [r.WhichOneof("record_type") for r in run_records(cut)] == kinds[: len(run_records(cut))]
    assert len(run_records(cut)) < len(kinds)


def test_a_run_file_that_never_becomes_whole_is_one_error_naming_it(tmp_path):
    """A run whose file stops at its header (what W&B leaves when its writer has not flushed): an error with the
    file's path when strict, a warning otherwise; the run is finished either way."""
    folder = tmp_path / "offline-run-x"
    (folder / "files").mkdir(parents=True)
    (folder / "run-abc.wandb").write_bytes(b":W&B\x00\x00\x00")  # a 7-byte header alone
    finished = []
    run = SimpleNamespace(dir=str(folder / "files"), id="abc", finish=lambda exit_code=None: finished.append(exit_code))
    with pytest.raises(ResourceError, match=r"W&B did not finish writing .*run-abc\.wandb within 0 s"):
        finish_and_wait(run, 1, timeout=0.0)
    with pytest.warns(UserWarning, match="run-abc.wandb"):
        finish_and_wait(run, 0, strict=False, timeout=0.0)
    assert finished == [1, 0]


def test_runs_after_a_chdir_find_their_whole_run_file_under_a_relative_run_folder(offline, tmp_path, monkeypatch):
    """wandb-core (one service per process) resolves a relative folder against the folder it started in, so a run
    given `runs/<id>` after a chdir (a test, a notebook, a sweep in one process) would have its file written elsewhere
    and finish_and_wait time out looking for it; attnbench hands W&B absolute folders."""
    from attnbench.config.compose import load_config
    from attnbench.tracking.wandb_setup import log_to_run

    for where in (tmp_path / "first", tmp_path / "second"):
        (where / "runs" / "r").mkdir(parents=True)
        monkeypatch.chdir(where)
        log_to_run(load_config(["wandb.mode=offline", "run_id=r"]), Path("runs/r"), f"r-{where.name}", {"x": 1.0}, {})
        files = list((where / "runs" / "r" / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, files
        assert run_records(files[0])[-1].WhichOneof("record_type") == "exit"
