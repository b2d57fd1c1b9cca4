"""Short real training runs on an SST-2 slice: one per attention variant x backbone, through the CLI code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from attnbench.cli import main
from attnbench.config import load_saved_config
from attnbench.training.precision import choose_precision

VARIANTS = ["additive", "dot", "general", "scaled_dot", "multihead"]
BACKBONES = {
    "rnn": ["model.embed_dim=48", "model.hidden_dim=32"],
    "transformer": ["model.embed_dim=32", "model.ff_dim=64", "model.num_layers=1", "model.dropout=0.1"],
}


def tiny_run(data_dir: Path, cache_dir: Path, out: Path, *overrides: str) -> list[str]:
    """A run that finishes in seconds on 2 CPU cores but still learns (loss must fall)."""
    return [
        "run", f"data_dir={data_dir}", f"cache_dir={cache_dir}", f"output_dir={out}",
        "task.limits.train=2000", "task.limits.validation=128", "task.limits.test=160", "task.probes=2",
        "trainer.max_epochs=2", "trainer.batch_size=32", "trainer.enable_progress_bar=false",
        "trainer.early_stopping_patience=0", "optim.lr=1e-2", "optim.scheduler=constant", "wandb.mode=offline", *overrides,
    ]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One tokenizer/tokenized-data cache for the whole session, as a user's ~/.cache would be."""
    return tmp_path_factory.mktemp("cache")


def only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_run_writes_complete_record(variant, backbone, data_dir, shared_cache, tmp_path):
    heads = ["attention.heads=4"] if variant == "multihead" else []
    code = main(tiny_run(data_dir, shared_cache, tmp_path, f"attention={variant}", f"model={backbone}",
                         *BACKBONES[backbone], *heads))
    assert code == 0
    run_dir = only_run_dir(tmp_path)

    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    assert (record["task"], record["dataset"], record["attention"], record["model"]) == (
        "sentiment", "sst2", variant, backbone)
    for split in ("val", "test"):
        assert 0.0 <= record["metrics"][split]["accuracy"] <= 1.0
        assert 0.0 <= record["metrics"][split]["f1"] <= 1.0
    # It learned: the mean loss of the last steps is below that of the first steps.
    train = record["metrics"]["train"]
    assert train["loss_end"] < train["loss_start"] - 0.05, train
    cost = record["cost"]
    assert cost["params"] > 0 and cost["tokens_per_second"] > 0
    # The learning history: one entry per validation (one an epoch), the clock running, and the best entry's
    # monitored metric is the validation score the record keeps for the best checkpoint.
    history = record["history"]
    assert [(e["epoch"], e["step"]) for e in history] == [(0, cost["steps"] // 2), (1, cost["steps"])]
    seconds = [e["train_seconds"] for e in history]
    assert 0 < seconds[0] <= seconds[1] <= cost["train_seconds"] + 1e-3
    assert max(e["metrics"]["val/accuracy"] for e in history) == pytest.approx(record["metrics"]["val"]["accuracy"])
    assert all(e["train_loss"] > 0 and set(e["metrics"]) == {"val/loss", "val/accuracy", "val/f1"} for e in history)
    # Two full epochs of batches of at most 32 covering all 2000 examples.
    assert cost["epochs"] == 2 and cost["steps"] % 2 == 0 and cost["steps"] // 2 >= 2000 // 32
    assert cost["train_seconds"] > 0 and cost["peak_memory_mb"] > 0 and 0.0 <= cost["padding_fraction"] < 0.5
    prov = record["provenance"]
    for key in ("git_sha", "git_dirty", "config_hash", "dataset_fingerprint", "tokenizer_hash", "versions",
                "device", "precision", "precision_reason", "deterministic", "started_at", "finished_at"):
        assert key in prov, key
    # trainer.precision=auto: this machine's choice, with its reason (bf16-mixed where the CPU has native bf16)
    expected = choose_precision(load_saved_config(run_dir / "config.yaml"), gpu=False)
    assert (prov["precision"], prov["precision_reason"]) == expected and "accuracy" in prov["metric_signatures"]

    # The saved config repeats the run.
    saved = load_saved_config(run_dir / "config.yaml")
    assert saved.attention.name == variant and saved.run_id == record["run_id"]

    # Predictions: every test example once, with gold labels from the data.
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == list(range(160))
    assert all(r["prediction"] in (0, 1) and r["gold"] in (0, 1) for r in rows)
    assert np.mean([r["prediction"] == r["gold"] for r in rows]) == pytest.approx(record["metrics"]["test"]["accuracy"])

    # Attention maps of the best checkpoint: PNGs and raw weights with their token labels.
    maps = np.load(run_dir / "attention" / "attention.npz")
    expected = {"pooling"} | ({"self_attention.layer0"} if backbone == "transformer" else set())
    assert len(maps["ids"]) == 2
    for probe in maps["ids"]:
        pooling = maps[f"probe{probe}.pooling"]  # (H, 1, T) over the real tokens
        tokens = maps[f"probe{probe}.pooling.keys"]
        assert pooling.shape == (4 if variant == "multihead" else 1, 1, len(tokens)) and all(tokens)
        np.testing.assert_allclose(pooling.sum(-1), 1.0, atol=1e-5)
        if backbone == "transformer":
            layer = maps[f"probe{probe}.self_attention.layer0"]  # (H, T, T)
            assert layer.shape[1:] == (len(tokens), len(tokens))
            np.testing.assert_allclose(layer.sum(-1), 1.0, atol=1e-5)
        assert all(f"probe{probe}.{name}" in maps.files for name in expected)
    pngs = sorted((run_dir / "attention").glob("*.png"))
    assert len(pngs) == 2 * len(expected)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    # The W&B offline run: its data file, its config and the logged attention images.
    wandb_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    (data_file,) = wandb_runs[0].glob("run-*.wandb")
    logged = data_file.read_bytes()  # protobuf records: config and metric keys appear as plain strings
    for needle in (record["run_id"], f'{{"name":"{variant}"', "val/accuracy", "test/accuracy", "train/loss"):
        assert needle.encode() in logged, needle
    images = list((wandb_runs[0] / "files" / "media" / "images").rglob("*.png"))
    probes_logged = {p.parent.name for p in images}  # media/images/attention/probe<id>/<map>_<step>_<hash>.png
    assert len(images) >= 2 * len(expected) and len(probes_logged) == 2, images

    # Checkpoints are saved, and no temp file is left behind.
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert not list(run_dir.rglob(".*.tmp"))


def test_custom_variant_trains_through_the_cli(data_dir, shared_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # and a relative output_dir, as users write it
    code = main(tiny_run(data_dir, shared_cache, Path("runs"), "attention=custom",
                         "attention.impl=tests.custom_attention:GatedDot", "attention.kwargs.init_temperature=0.5",
                         "model.embed_dim=48", "model.hidden_dim=32"))
    assert code == 0
    record = json.loads((only_run_dir(tmp_path / "runs") / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    assert record["attention"] == "tests.custom_attention:GatedDot"
    assert (tmp_path / "runs" / record["run_id"] / record["best_checkpoint"]).is_file()
    assert record["metrics"]["train"]["loss_end"] < record["metrics"]["train"]["loss_start"]


def test_custom_variant_as_multihead_score(data_dir, shared_cache, tmp_path):
    code = main(tiny_run(data_dir, shared_cache, tmp_path, "attention=multihead", "attention.heads=2",
                         "attention.score=tests.custom_attention:GatedDot", "model=transformer",
                         *BACKBONES["transformer"], "trainer.max_epochs=1", "task.limits.train=320"))
    assert code == 0
    record = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert record["attention"] == "multihead-tests.custom_attention:GatedDot"


def test_crash_during_training_records_failure(data_dir, shared_cache, tmp_path, capsys):
    code = main(tiny_run(data_dir, shared_cache, tmp_path, "attention=custom",
                         "attention.impl=tests.custom_attention:FailsInTraining",
                         "model.embed_dim=48", "model.hidden_dim=32"))
    assert code == 1
    assert "injected failure" in capsys.readouterr().err
    run_dir = only_run_dir(tmp_path)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert "injected failure" in record["error"]
    assert record["provenance"]["finished_at"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["attention"]["name"] == "custom"
    assert not (run_dir / "predictions.jsonl").exists()


def test_atomic_records_are_readable_like_ordinary_files(tmp_path):
    import os

    from attnbench.tracking.record import write_json

    write_json(tmp_path / "metrics.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def test_compiled_model_trains_through_the_cli(data_dir, shared_cache, tmp_path):
    """trainer.compile=true wraps the model in torch.compile; the eager backend traces it with dynamo without
    needing a C++ compiler, so this checks the plumbing (training, evaluation, beam-free record) on any CPU."""
    code = main(tiny_run(data_dir, shared_cache, tmp_path, "attention=additive", "model=rnn", *BACKBONES["rnn"],
                         "trainer.compile=true", "trainer.compile_backend=eager", "trainer.max_epochs=1"))
    assert code == 0
    record = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert record["status"] == "completed" and 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0
    saved = load_saved_config(only_run_dir(tmp_path) / "config.yaml")
    assert saved.trainer.compile is True


def test_nan_loss_stops_the_run_as_failed(data_dir, shared_cache, tmp_path, capsys):
    code = main(tiny_run(data_dir, shared_cache, tmp_path, "attention=custom",
                         "attention.impl=tests.custom_attention:NaNInTraining", "model.embed_dim=48",
                         "model.hidden_dim=32", "trainer.log_every_n_steps=1"))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "training loss became non-finite (NaN/inf) at step" in err[-1] and "lower optim.lr" in err[-1]
    record = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("FloatingPointError: training loss became non-finite")
    assert not (only_run_dir(tmp_path) / "predictions.jsonl").exists()


def test_disk_full_gives_one_line_and_no_partial_file(data_dir, shared_cache, tmp_path, capsys, monkeypatch):
    import errno
    import os

    from attnbench.tracking import record

    def full(fd: int, data: bytes) -> None:
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record, "_write", full)
    code = main(tiny_run(data_dir, shared_cache, tmp_path, "trainer.max_epochs=1"))
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attnbench:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0] and "output_dir=" in errors[0]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []  # no half-written config, record or temp file
