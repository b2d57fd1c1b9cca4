"""More than one process: DDP with 2 CPU processes (gloo). The bucketed sampler shards batches without dropping or
duplicating evaluation examples, metrics and predictions are reduced over ranks, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from attnbench.data.batching import BucketBatchSampler


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("max_tokens", [None, 40])
def test_evaluation_shards_cover_every_example_exactly_once(replicas, max_tokens):
    lengths = np.random.default_rng(0).integers(1, 20, size=101).tolist()
    shards = [BucketBatchSampler(lengths, batch_size=8, max_tokens=max_tokens, shuffle=False, seed=1,
                                 num_replicas=replicas, rank=r) for r in range(replicas)]
    seen = sorted(i for s in shards for batch in s for i in batch)
    assert seen == list(range(101))
    whole = BucketBatchSampler(lengths, batch_size=8, max_tokens=max_tokens, shuffle=False, seed=1)
    assert sum(len(s) for s in shards) == len(whole)


@pytest.mark.parametrize("replicas", [2, 3])
def test_training_shards_are_equal_and_cover_everything(replicas):
    lengths = np.random.default_rng(1).integers(1, 30, size=203).tolist()
    for epoch in (0, 1):
        shards = []
        for r in range(replicas):
            sampler = BucketBatchSampler(lengths, batch_size=8, max_tokens=None, shuffle=True, seed=3,
                                         num_replicas=replicas, rank=r)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        assert len({len(s) for s in shards}) == 1  # every rank runs the same number of steps
        covered = {i for s in shards for batch in s for i in batch}
        assert covered == set(range(203))
        whole = BucketBatchSampler(lengths, batch_size=8, max_tokens=None, shuffle=True, seed=3)
        whole.set_epoch(epoch)
        assert sum(len(s) for s in shards) - len(whole) < replicas  # only the padding batches repeat


def test_bad_shard_is_refused():
    with pytest.raises(ValueError, match="rank 2 of 2"):
        BucketBatchSampler([1, 2], batch_size=1, max_tokens=None, shuffle=False, seed=0, num_replicas=2, rank=2)


def ddp_run(tmp_path: Path, data_dir: Path, *overrides: str) -> Path:
    """`attnbench run` on 2 CPU processes; Lightning re-runs the command for rank 1, so it runs as a subprocess."""
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env.pop("ATTNBENCH_RUN_ID", None)
    command = [sys.executable, "-m", "attnbench", "run", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}",
               f"output_dir={out}", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.enable_progress_bar=false",
               "trainer.early_stopping_patience=0", *overrides]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("completed:") == 1  # one rank reports
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # one run folder for both ranks
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from rank 0
    return run_dir


def test_ddp_sentiment_run_writes_one_complete_record(data_dir, tmp_path):
    run_dir = ddp_run(tmp_path, data_dir, "task.limits.train=600", "task.limits.validation=101",
                      "task.limits.test=157", "trainer.max_epochs=2", "trainer.batch_size=32", "model.embed_dim=16",
                      "model.hidden_dim=16", "task.probes=2")
    record = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(157))  # every test example once, from both ranks
    accuracy = np.mean([r["prediction"] == r["gold"] for r in rows])
    assert record["metrics"]["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)  # reduced over ranks
    # 600 examples in batches of 32 = 19 batches, padded to 20 and split: 10 steps per rank and epoch.
    assert record["cost"]["steps"] == 20 and record["cost"]["tokens_per_second"] > 0
    assert sorted(p.name for p in (run_dir / "attention").iterdir())  # maps written once, by rank 0


def test_ddp_translation_run_gathers_every_hypothesis(data_dir, tmp_path):
    run_dir = ddp_run(tmp_path, data_dir, "task=translation", "model=transformer", "attention=multihead",
                      "attention.heads=2", "model.embed_dim=32", "model.ff_dim=64", "model.num_layers=1",
                      "task.limits.train=300", "task.limits.validation=17", "task.limits.test=23",
                      "task.decoding.val_examples=9", "task.decoding.beam_size=2", "task.probes=1",
                      "trainer.max_epochs=1", "trainer.batch_size=16")
    record = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(23))
    bleu = BLEU().corpus_score([r["prediction"] for r in rows], [[r["gold"] for r in rows]]).score
    assert record["metrics"]["test"]["bleu"] == pytest.approx(bleu, abs=1e-4)
    assert np.isfinite(record["metrics"]["test"]["ppl"]) and np.isfinite(record["metrics"]["val"]["loss"])
