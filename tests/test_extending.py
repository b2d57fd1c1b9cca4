"""Extending attnbench from outside: each test adds one thing the way README's "Extending attnbench" says (its
own code here, one registry entry) and trains or checks it through the public entry points, with no edit to
attnbench's files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from attnbench.attention import ATTENTION
from attnbench.cli import main
from attnbench.models.backbones import BACKBONES, Backbone
from attnbench.testing import check_attention
from tests.custom_attention import GatedDot

TINY = ["task.limits.train=200", "task.limits.validation=32", "task.limits.test=32", "task.probes=1",
        "trainer.max_epochs=1", "trainer.batch_size=32", "trainer.enable_progress_bar=false", "wandb.mode=disabled",
        "trainer.early_stopping_patience=0", "model.embed_dim=16", "model.hidden_dim=16"]


def _record(out: Path) -> dict:
    (path,) = out.glob("*/metrics.json")
    return json.loads(path.read_text())


def test_a_variant_is_a_class_and_one_registry_line(monkeypatch, data_dir, tmp_path):
    monkeypatch.setitem(ATTENTION, "gated_dot", GatedDot)  # what an entry point of your package does for good
    check_attention(GatedDot)
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", "attention=gated_dot", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'cache'}", f"output_dir={out}", *TINY]) == 0
    assert _record(out)["attention"] == "gated_dot"


class ConvEncoder(nn.Module):
    """A backbone of our own: embeddings and one same-padded convolution; the classifier pools its states."""

    def __init__(self, vocab_size: int, dim: int, pad_id: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1)
        self.out_dim = dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, need_weights: bool = False):
        x = self.embed(ids) * mask[..., None]  # (B, T, D)
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2), {}


def _conv_classifier(model, attention, *, vocab_size: int, pad_id: int) -> nn.Module:
    return ConvEncoder(vocab_size, model["embed_dim"], pad_id)


def _no_decoder(model, attention, **sizes) -> nn.Module:
    raise ValueError("the conv backbone has no decoder: use it for classification")


def test_a_backbone_is_a_module_and_one_registry_line(monkeypatch, data_dir, tmp_path):
    monkeypatch.setitem(BACKBONES, "conv", Backbone(
        "1-D convolution encoder + attention pooling (an example backbone)", _conv_classifier, _no_decoder,
        width=lambda model: model["embed_dim"], width_key="model.embed_dim", projected=False))
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", "model.name=conv", "attention=additive", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'cache'}", f"output_dir={out}", *TINY]) == 0
    record = _record(out)
    assert record["status"] == "completed" and record["model"] == "conv"
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0


def test_a_metric_is_one_registry_line(monkeypatch):
    """A metric's direction, producer, display and resampling are its METRICS entry: config validation, the
    leaderboard's number format and its bootstrap statistics all read it."""
    import numpy as np
    import pytest

    from attnbench.config import load_config
    from attnbench.errors import ConfigError
    from attnbench.metrics.registry import METRICS, Metric, example_statistics, resamplable, score_from_sums
    from attnbench.suite.formats import format_metric

    def errors(predictions, golds):
        return np.array([[float(p != g)] for p, g in zip(predictions, golds)])

    monkeypatch.setitem(METRICS, "error_rate", Metric(
        "min", "classification", percent=True, statistics=errors, from_sums=lambda sums, n: sums[:, 0] / n))
    with pytest.raises(ConfigError, match="task.monitor=error_rate is better when lower: pass task.monitor_mode=min"):
        load_config(["task.monitor=error_rate", "task.monitor_mode=max"])
    assert load_config(["task.monitor=error_rate", "task.monitor_mode=min"]).task.monitor == "error_rate"
    assert format_metric("error_rate", 0.125) == "12.50" and resamplable("error_rate")
    stats = example_statistics("error_rate", [1, 0, 1, 1], [1, 1, 1, 0])
    assert score_from_sums("error_rate", stats.sum(0, keepdims=True), 4)[0] == pytest.approx(0.5)
