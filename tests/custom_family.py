"""A task family written outside attnbench: binary classification as logistic regression (one logit, so the
softmax over [0, z] is sigmoid(z) and its cross-entropy is the BCE of z). It reuses attnbench's classification
data module and classifier backbones; its own parts are the one-logit model and the task around it.

Registered by the test as `FAMILIES["binary"] = FamilySpec(..., module="tests.custom_family")`: the one line a
package adds to attnbench.config.families.FAMILIES.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnbench.data import ClassificationDataModule
from attnbench.metrics.scoring import classification_metrics, classification_signatures
from attnbench.models import build_classifier
from attnbench.tasks import ClassificationTask, TaskModule
from attnbench.tasks.families import Family, Scores, containers


class BinaryTask(ClassificationTask):
    """ClassificationTask on one logit z: the two-class logits [0, z] make every step, metric and probe map
    the logistic model's."""

    def forward(self, batch: dict[str, torch.Tensor], need_weights: bool = False):
        z, maps = self.model(batch["input_ids"], batch["mask"], need_weights=need_weights)  # z: (B, 1)
        return torch.cat([torch.zeros_like(z), z], dim=-1), maps  # (B, 2)


def _model(cfg: DictConfig, data: ClassificationDataModule) -> nn.Module:
    if data.num_labels != 2:
        raise ValueError(f"the binary family needs two labels, got {data.num_labels}")
    return build_classifier(*containers(cfg), vocab_size=data.vocab_size, num_labels=1, pad_id=data.pad_id)


def _task(cfg: DictConfig, data: ClassificationDataModule, model: nn.Module) -> TaskModule:
    return BinaryTask(model, label_names=data.label_names, optim=OmegaConf.to_container(cfg.optim))


def _score(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> Scores:
    metrics = classification_metrics(2)
    metrics.update(torch.tensor(predictions), torch.tensor(golds))
    return {k: float(v) for k, v in metrics.compute().items()}, classification_signatures(2)


FAMILY = Family(ClassificationDataModule, _model, _task, gold="label", score=_score)
