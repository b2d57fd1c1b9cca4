"""Extending attnbench from outside: each test adds one thing the way README's "Extending attnbench" says (its
own code here, one registry entry) and trains or checks it through the public entry points, with no edit to
attnbench's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from attnbench.attention import ATTENTION
from attnbench.cli import main
from attnbench.config import load_config
from attnbench.config.families import FAMILIES, FamilySpec
from attnbench.data.canonical import column_map
from attnbench.errors import DataError
from attnbench.models.backbones import BACKBONES, Backbone
from attnbench.testing import check_attention
from tests.custom_attention import GatedDot
from tests.helpers import TINY, run_record



def test_a_variant_is_a_class_and_one_registry_line(monkeypatch, data_dir, tmp_path):
    monkeypatch.setitem(ATTENTION, "gated_dot", GatedDot)  # what an entry point of your package does for good
    check_attention(GatedDot)
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", "attention=gated_dot", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'cache'}", f"output_dir={out}", *TINY]) == 0
    assert run_record(out)["attention"] == "gated_dot"


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
    record = run_record(out)
    assert record["status"] == "completed" and record["model"] == "conv"
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0


def test_a_task_family_is_a_module_and_one_registry_line(monkeypatch, data_dir, tmp_path):
    """tests/custom_family.py is the family's module (FAMILY: data module, model, task, scoring); the FAMILIES
    line is all attnbench needs to validate, load, train and score it."""
    monkeypatch.setitem(FAMILIES, "binary", FamilySpec(
        fields=("label",), labelled=True, module="tests.custom_family",
        missing_column="task.{source}.columns has no '{missing}' entry: a binary task needs its label column"))
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", "task.family=binary", "attention=additive", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'cache'}", f"output_dir={out}", *TINY]) == 0
    record = run_record(out)
    assert record["status"] == "completed"
    assert "family: binary" in next(out.glob("*/config.yaml")).read_text()
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0
    (predictions,) = out.glob("*/predictions.jsonl")
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 32 and {row["prediction"] for row in rows} <= {0, 1}
    task = load_config(["task=sentiment", "task.family=binary"]).task
    task.local.columns = {"text": "text"}
    with pytest.raises(DataError, match="task.local.columns has no 'label' entry: a binary task needs its label"):
        column_map(task, "local")


def test_a_metric_is_one_registry_line(monkeypatch):
    """A metric's direction, producer, display and resampling are its METRICS entry: config validation, the
    leaderboard's number format and its bootstrap statistics all read it."""
    import numpy as np

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


# Each layer may import only the layers before it (README, "Architecture"); names in one tuple are peers that do not
# import each other.
LAYERS = [("errors", "netcheck", "plotting"), ("attention", "metrics"), ("testing", "models"), ("config",), ("data",), ("tasks",),
          ("tracking",), ("training",), ("explain",), ("suite", "perf"), ("cli",), ("__main__",)]


def test_imports_point_one_way():
    """Every attnbench import, function-level ones included, goes to the same package or an earlier layer: the tree
    has no cycle to hide, so adding an entry never needs an import inside a function to break one."""
    import ast

    root = Path(__file__).resolve().parents[1] / "attnbench"
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    packages = {p.stem for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()} - {"__init__"}
    assert packages <= set(rank), f"place {sorted(packages - set(rank))} in LAYERS"
    wrong = []
    for path in root.rglob("*.py"):
        here = path.relative_to(root).parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "attnbench" and len(parts) > 1 and parts[1] != here and rank[parts[1]] >= rank[here]:
                    wrong.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)
