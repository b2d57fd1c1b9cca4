"""LightningModule for sequence classification (sentiment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnbench.data.datamodule import ClassificationDataModule
from attnbench.metrics.scoring import classification_metrics, classification_signatures
from attnbench.models import build_classifier
from attnbench.tasks.base import TaskModule
from attnbench.tasks.distributed import gather_dict
from attnbench.tasks.families import Family, Scores, containers
from attnbench.tasks.probes import ProbeMaps


class ClassificationTask(TaskModule):
    """Cross-entropy training; accuracy and macro-F1 on validation and test; test predictions kept by id."""

    def __init__(self, model: nn.Module, *, label_names: list[str], optim: Mapping[str, Any], loss_window: int = 10) -> None:
        super().__init__(model, optim=optim, loss_window=loss_window)
        self.label_names = list(label_names)
        num_labels = len(self.label_names)
        self.signatures = classification_signatures(num_labels)
        self.val_metrics = classification_metrics(num_labels).clone(prefix="val/")
        self.test_metrics = classification_metrics(num_labels).clone(prefix="test/")
        self.test_predictions: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: dict[str, torch.Tensor], need_weights: bool = False):
        return self.model(batch["input_ids"], batch["mask"], need_weights=need_weights)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, _ = self(batch)
        loss = F.cross_entropy(logits, batch["labels"])
        self.record_step(loss, batch["mask"].sum(), batch["labels"].numel())
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, _ = self(batch)
        loss = F.cross_entropy(logits, batch["labels"])
        self.val_metrics.update(logits, batch["labels"])
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["labels"].numel(), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_predictions = []
        self.test_rows: dict[int, tuple[int, int]] = {}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, _ = self(batch)
        self.test_metrics.update(logits, batch["labels"])
        self.log("test/loss", F.cross_entropy(logits, batch["labels"]), batch_size=batch["labels"].numel(),
                 sync_dist=True)
        self.test_predictions.append((batch["ids"], logits.argmax(-1), batch["labels"]))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)  # equal on all ranks: torchmetrics reduced them
        self.test_metrics.reset()
        local = {
            int(i): (int(p), int(g))
            for ids, preds, golds in self.test_predictions
            for i, p, g in zip(ids.tolist(), preds.tolist(), golds.tolist())
        }
        self.test_rows = gather_dict(local)

    def predictions(self) -> list[dict[str, int]]:
        """Test predictions of every rank as records {id, prediction, gold}, sorted by example id."""
        return [{"id": i, "prediction": p, "gold": g} for i, (p, g) in sorted(self.test_rows.items())]

    def probe_maps(self, batch: dict[str, torch.Tensor], examples: list[dict[str, Any]]) -> list[ProbeMaps]:
        """Every attention map of the probe examples: pooling (H, 1, T), and self-attention (H, T, T) per layer."""
        logits, maps = self(batch, need_weights=True)
        predictions = logits.argmax(-1).tolist()
        probes = []
        for i, example in enumerate(examples):
            tokens, n = example["tokens"], len(example["tokens"])
            probe = ProbeMaps(
                id=example["id"], caption=example["text"],
                title=f"gold {self.label_names[example['label']]}, predicted {self.label_names[predictions[i]]}",
            )
            for name, weights in maps.items():
                pooling = weights.size(-2) == 1
                probe.maps[name] = weights[i, :, :, :n].float().cpu().numpy() if pooling else \
                    weights[i, :, :n, :n].float().cpu().numpy()  # (H, 1|T, T) real tokens only
                probe.queries[name] = ["query"] if pooling else tokens
                probe.keys[name] = tokens
            probes.append(probe)
        return probes

    def metric_signatures(self) -> dict[str, str]:
        """How each reported metric was computed (library, version, settings)."""
        return self.signatures


# ---- the family entry (config/families.py names this module) -------------------------------------------------


def _model(cfg: DictConfig, data: ClassificationDataModule) -> nn.Module:
    return build_classifier(*containers(cfg), vocab_size=data.vocab_size, num_labels=data.num_labels,
                            pad_id=data.pad_id)


def _task(cfg: DictConfig, data: ClassificationDataModule, model: nn.Module) -> TaskModule:
    return ClassificationTask(model, label_names=data.label_names, optim=OmegaConf.to_container(cfg.optim))


def _score(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> Scores:
    num_labels = len(cfg.task.labels)
    metrics = classification_metrics(num_labels)
    metrics.update(torch.tensor(predictions), torch.tensor(golds))
    return {k: float(v) for k, v in metrics.compute().items()}, classification_signatures(num_labels)


FAMILY = Family(ClassificationDataModule, _model, _task, gold="label", score=_score)
