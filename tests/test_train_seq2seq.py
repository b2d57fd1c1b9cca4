"""Short real seq2seq runs through the CLI: translation (Multi30k) and summarization (CNN/DM) x backbone."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from attnbench.cli import main

SMALL = {
    "rnn": ["model.embed_dim=48", "model.hidden_dim=48"],
    "rnn-luong": ["model=rnn", "model.decoder_style=luong", "model.embed_dim=48", "model.hidden_dim=48"],
    "transformer": ["model.embed_dim=48", "model.ff_dim=96", "model.num_layers=2", "attention=multihead",
                    "attention.heads=4"],
}
TASKS = {
    "translation": ["task.tokenizer.vocab_size=800", "trainer.batch_size=32"],
    "summarization": ["task.tokenizer.vocab_size=800", "task.max_length=120", "task.max_target_length=40",
                      "task.decoding.min_length=3", "task.decoding.max_len_b=30", "trainer.batch_size=16"],
}
CASES = [("translation", "rnn"), ("translation", "rnn-luong"), ("translation", "transformer"),
         ("summarization", "rnn"), ("summarization", "transformer")]


@pytest.fixture(scope="session")
def seq2seq_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("seq2seq-cache")


def read_references(data_dir: Path, task: str, dataset: str, field: str, n: int) -> list[str]:
    with gzip.open(data_dir / task / dataset / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)[field] for _, line in zip(range(n), f)]


@pytest.mark.parametrize(("task", "backbone"), CASES)
def test_seq2seq_run_scores_and_maps(task, backbone, data_dir, seq2seq_cache, tmp_path):
    model = [] if backbone == "rnn-luong" else [f"model={backbone}"]
    code = main([
        "run", f"task={task}", *model, *SMALL[backbone], *TASKS[task], f"data_dir={data_dir}",
        f"cache_dir={seq2seq_cache}", f"output_dir={tmp_path}", "task.limits.train=600", "task.limits.validation=16",
        "task.limits.test=16", "task.decoding.val_examples=8", "task.probes=2", "trainer.max_epochs=2",
        "optim.lr=3e-3", "optim.scheduler=constant", "trainer.early_stopping_patience=0",
        "trainer.enable_progress_bar=false", "wandb.mode=offline",
    ])
    assert code == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    metrics = record["metrics"]
    assert metrics["train"]["loss_end"] < metrics["train"]["loss_start"] - 0.3, metrics["train"]
    names = ("bleu", "chrf") if task == "translation" else ("rouge1", "rouge2", "rougeL", "rougeLsum")
    for split in ("val", "test"):
        assert metrics[split]["ppl"] == pytest.approx(np.exp(metrics[split]["loss"]), rel=1e-4)
    # Decoded metrics: the whole test split, and the greedy validation slice under its own name.
    assert set(metrics["val"]) == {"loss", "ppl"} and set(metrics["val_slice"]) == set(names)
    # Its learning history keeps the model-selection metric (the greedy validation slice) per validation.
    assert [e["epoch"] for e in record["history"]] == [0, 1]
    assert all({f"val_slice/{n}" for n in names} | {"val/loss", "val/ppl"} <= set(e["metrics"]) for e in record["history"])
    for split in ("val_slice", "test"):
        for name in names:
            assert 0.0 <= metrics[split][name] <= 100.0
    signatures = record["provenance"]["metric_signatures"]
    assert set(signatures) == set(names)
    assert "version:" in signatures.get("bleu", "version:") and "stemmer:porter" in signatures.get("rouge1", "stemmer:porter")

    # Predictions are detokenized text next to the raw references, and the score is reproducible from them.
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(16))
    dataset, field = ("multi30k_en_de", "tgt") if task == "translation" else ("cnn_dailymail", "summary")
    assert [r["gold"] for r in rows] == read_references(data_dir, task, dataset, field, 16)
    assert all(isinstance(r["prediction"], str) and "[PAD]" not in r["prediction"] for r in rows)
    if task == "translation":
        bleu = sacrebleu.corpus_bleu([r["prediction"] for r in rows], [[r["gold"] for r in rows]]).score
        assert metrics["test"]["bleu"] == pytest.approx(bleu, abs=1e-6)

    # Cross-attention maps (generated x source tokens) per layer; multi-head figures carry every head.
    maps = np.load(run_dir / "attention" / "attention.npz")
    layers = 2 if backbone == "transformer" else 1
    for probe in maps["ids"]:
        for layer in range(layers):
            key = f"probe{probe}.cross_attention.layer{layer}"
            weights = maps[key]  # (H, generated + EOS, source)
            assert weights.shape == (4 if backbone == "transformer" else 1, len(maps[f"{key}.queries"]),
                                     len(maps[f"{key}.keys"]))
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-4)
            assert maps[f"{key}.queries"][-1] == "</s>"
    pngs = list((run_dir / "attention").glob("probe*_cross_attention.layer*.png"))
    assert len(pngs) == 2 * layers
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_early_stopping_can_watch_the_loss_while_bleu_picks_the_checkpoint(data_dir, seq2seq_cache, tmp_path):
    """trainer.early_stopping_monitor=loss: EarlyStopping follows val/loss (min) and ModelCheckpoint still keeps the
    best greedy slice BLEU; both states, saved in last.ckpt, match the run's learning history."""
    import torch

    code = main([
        "run", "task=translation", *SMALL["rnn"], *TASKS["translation"], f"data_dir={data_dir}",
        f"cache_dir={seq2seq_cache}", f"output_dir={tmp_path}", "task.limits.train=300", "task.limits.validation=16",
        "task.limits.test=8", "task.decoding.val_examples=8", "task.probes=0", "trainer.max_epochs=3",
        "optim.lr=3e-3", "optim.scheduler=constant", "trainer.early_stopping_patience=5",
        "trainer.early_stopping_monitor=loss", "trainer.enable_progress_bar=false", "wandb.mode=disabled",
    ])
    assert code == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    losses = [e["metrics"]["val/loss"] for e in record["history"]]
    bleus = [e["metrics"]["val_slice/bleu"] for e in record["history"]]
    assert len(losses) == 3
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["callbacks"]
    (stopping,) = [v for k, v in state.items() if k.startswith("EarlyStopping")]
    (checkpoint,) = [v for k, v in state.items() if k.startswith("ModelCheckpoint")]
    assert [k for k in state if k.startswith("EarlyStopping")] == ["EarlyStopping{'monitor': 'val/loss', 'mode': 'min'}"]
    assert float(stopping["best_score"]) == pytest.approx(min(losses), rel=1e-5)
    assert float(checkpoint["best_model_score"]) == pytest.approx(max(bleus), rel=1e-5)
    assert checkpoint["monitor"] == "val_slice/bleu"
