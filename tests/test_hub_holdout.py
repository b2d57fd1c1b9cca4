"""Hub SST-2 never picks its checkpoint on the set it reports as test: GLUE's dev set is "test", and validation is a
seeded slice held out of GLUE train. There is no network here, so `datasets.load_dataset` is answered with the
GLUE-shaped rows of the real local copy (columns sentence/label/idx, as the hub serves them); everything after
the download is the real hub code path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pytest

import attnbench.data.hub as hub
from attnbench.cli import main
from attnbench.data.sources import load_split, split_sources
from attnbench.errors import DataError
from tests.helpers import config


def glue_rows(path: Path, limit: int) -> datasets.Dataset:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(limit), f)]
    return datasets.Dataset.from_dict({"sentence": [r["text"] for r in rows], "label": [r["label"] for r in rows],
                                       "idx": list(range(len(rows)))})


@pytest.fixture
def fake_hub(monkeypatch, data_dir):
    folder = data_dir / "sentiment" / "sst2"
    # GLUE's train and dev splits; its test split has label -1 and is never asked for.
    served = {"train": glue_rows(folder / "train.jsonl.gz", 3000), "validation": glue_rows(folder / "validation.jsonl.gz", 872)}
    asked: list[str] = []

    def load_dataset(path, name=None, split=None, **kwargs):
        assert (path, name) == ("glue", "sst2")
        asked.append(split)
        return served[split]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hub, "check_hub_reachable", lambda: None)
    monkeypatch.delenv("ATTNBENCH_DATA_DIR", raising=False)
    return served, asked


def test_validation_is_held_out_of_train_and_test_is_glue_dev(fake_hub, tmp_path):
    served, asked = fake_hub
    cfg = config(None, tmp_path / "cache", "task=sentiment", "task.source=hub")
    train, val, test = (load_split(cfg.task, s, None, cfg.cache_dir) for s in ("train", "validation", "test"))
    assert len(val) == 872 and len(train) == 3000 - 872 and len(test) == 872
    assert set(asked) == {"train", "validation"}
    # Validation rows come from GLUE train, never from the dev set reported as test, and train keeps the others:
    # together they are GLUE train, row for row (SST-2 repeats some phrases, so rows are compared as a multiset).
    glue_train = [(t, l) for t, l in zip(served["train"]["sentence"], served["train"]["label"])]
    rows = lambda d: list(zip(d["text"], d["label"]))  # noqa: E731
    assert sorted(rows(train) + rows(val)) == sorted(glue_train)
    assert list(test["text"]) == list(served["validation"]["sentence"])
    # The same slice for every run (fixed by the data, not the run seed), a different one for another seed.
    again = load_split(config(None, tmp_path / "cache2", "task=sentiment", "task.source=hub", "seed=7").task,
                       "validation", None, str(tmp_path / "cache2"))
    assert list(again["text"]) == list(val["text"])
    other = load_split(config(None, tmp_path / "c3", "task=sentiment", "task.source=hub",
                              "task.hub.holdout.seed=1").task, "validation", None, str(tmp_path / "c3"))
    assert list(other["text"]) != list(val["text"])
    described = split_sources(cfg.task, None)
    assert described["test"] == "hub glue/sst2 split 'validation'"
    assert "872 held-out rows" in described["validation"] and "minus 872" in described["train"]


def test_a_hub_run_records_which_split_test_is(fake_hub, tmp_path):
    code = main(["run", "task.source=hub", f"cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'runs'}",
                 "wandb.mode=offline", "trainer.max_steps=10", "trainer.batch_size=32", "task.probes=0",
                 "trainer.enable_progress_bar=false", "model.embed_dim=16", "model.hidden_dim=8"])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed"
    assert record["provenance"]["splits"]["test"] == "hub glue/sst2 split 'validation'"
    assert record["data"]["splits"]["validation"]["examples"] == 872
    assert record["data"]["splits"]["train"]["examples"] == 3000 - 872


def test_holdout_must_come_from_train(fake_hub, tmp_path):
    cfg = config(None, tmp_path / "cache", "task=sentiment", "task.source=hub", "task.hub.splits.validation=validation")
    with pytest.raises(DataError, match="set task.hub.splits.validation=train"):
        load_split(cfg.task, "validation", None, cfg.cache_dir)
    cfg = config(None, tmp_path / "cache", "task=sentiment", "task.source=hub", "task.hub.holdout.size=5000")
    with pytest.raises(DataError, match="leaves no training rows"):
        load_split(cfg.task, "train", None, cfg.cache_dir)
