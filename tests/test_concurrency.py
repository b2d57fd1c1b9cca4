"""Several processes, one results folder: records never corrupt each other and readers never see half a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from attnbench.tracking.record import write_json

TINY = ["task.limits.train=300", "task.limits.validation=64", "task.limits.test=64", "task.probes=0",
        "trainer.max_epochs=1", "trainer.batch_size=32", "model.embed_dim=16", "model.hidden_dim=16",
        "trainer.enable_progress_bar=false", "wandb.mode=offline", "trainer.early_stopping_patience=0"]


def start(data_dir: Path, cache: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "attnbench", "run", f"data_dir={data_dir}", f"cache_dir={cache}",
                             f"output_dir={out}", *TINY, *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_into_one_folder(data_dir, tmp_path):
    out, cache = tmp_path / "runs", tmp_path / "cache"
    # Warm the shared tokenizer/data cache first, as a second run on a machine would find it.
    warm = start(data_dir, cache, tmp_path / "warm", "seed=9")
    assert warm.wait(timeout=300) == 0
    first, second = start(data_dir, cache, out, "seed=1"), start(data_dir, cache, out, "seed=2")
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    records = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    assert sorted(r["seed"] for r in records) == [1, 2] and all(r["status"] == "completed" for r in records)
    for run_dir in out.iterdir():
        assert len((run_dir / "predictions.jsonl").read_text().splitlines()) == 64


def test_same_run_id_twice_at_once_one_wins_the_other_is_refused(data_dir, tmp_path):
    out, cache = tmp_path / "runs", tmp_path / "cache"
    runs = [start(data_dir, cache, out, "run_id=same", f"seed={s}") for s in (1, 2)]
    codes = sorted(r.wait(timeout=300) for r in runs)
    assert codes == [0, 2]
    loser = next(r for r in runs if r.returncode == 2)
    error = loser.stderr.read()
    # Refused by the winner's claim while it runs, or by the folder once it is done.
    assert "is being created by another process" in error or "already exists" in error, error
    record = json.loads((out / "same" / "metrics.json").read_text())
    assert record["status"] == "completed" and [p.name for p in out.iterdir()] == ["same"]  # no claim left


def test_a_reader_never_sees_a_partial_record(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"n": 0, "pad": "x" * 200_000})
    stop, bad = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except ValueError as err:  # a torn read would be invalid JSON
                bad.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(200):
        write_json(path, {"n": n, "pad": "x" * (200_000 + n)})
    stop.set()
    reader.join()
    assert bad == [] and json.loads(path.read_text())["n"] == 199
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp files left
