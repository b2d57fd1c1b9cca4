"""Task families: one entry per family (`task.family` in a task YAML) says how its runs are built, so adding a
family is its modules (a data module, a TaskModule, a model builder) plus one `FAMILIES` line.

A `Family` holds:
  datamodule     the LightningDataModule class, built from the run config (`cfg`)
  build_model    (cfg, data) -> nn.Module: the model for the prepared data module (vocabulary sizes, pad id, ...)
  build_task     (cfg, data, model) -> TaskModule (tasks/base.py): the LightningModule around the model
  gold           the canonical column holding a test example's reference (what trivial baselines are scored on)
  score          (cfg, predictions, golds) -> (metrics, signatures): test metrics of predictions, computed as the
                 task module computes them (suite/baseline.py scores the trivial baselines with it)

The run pipeline (training/run.py), the harness (perf/harness.py) and the baselines (suite/baseline.py) reach a
family only through this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnbench.data.datamodule import ClassificationDataModule, Seq2SeqDataModule
from attnbench.errors import DataError
from attnbench.metrics.scoring import SCORERS, classification_metrics, classification_signatures
from attnbench.models import build_classifier, build_seq2seq
from attnbench.tasks.base import TaskModule
from attnbench.tasks.classification import ClassificationTask
from attnbench.tasks.seq2seq import Seq2SeqTask

Scores = tuple[dict[str, float], dict[str, str]]


@dataclass(frozen=True)
class Family:
    datamodule: Callable[[DictConfig], pl.LightningDataModule]
    build_model: Callable[[DictConfig, Any], nn.Module]
    build_task: Callable[[DictConfig, Any, nn.Module], TaskModule]
    gold: str
    score: Callable[[DictConfig, list[Any], list[Any]], Scores]


def _containers(cfg: DictConfig) -> tuple[dict, dict]:
    return OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.attention)


# ---- classification ------------------------------------------------------------------------------------------


def _classifier(cfg: DictConfig, data: ClassificationDataModule) -> nn.Module:
    return build_classifier(*_containers(cfg), vocab_size=data.vocab_size, num_labels=data.num_labels,
                            pad_id=data.pad_id)


def _classification_task(cfg: DictConfig, data: ClassificationDataModule, model: nn.Module) -> TaskModule:
    return ClassificationTask(model, label_names=data.label_names, optim=OmegaConf.to_container(cfg.optim))


def _score_labels(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> Scores:
    num_labels = len(cfg.task.labels)
    metrics = classification_metrics(num_labels)
    metrics.update(torch.tensor(predictions), torch.tensor(golds))
    return {k: float(v) for k, v in metrics.compute().items()}, classification_signatures(num_labels)


# ---- seq2seq -------------------------------------------------------------------------------------------------


def _seq2seq_model(cfg: DictConfig, data: Seq2SeqDataModule) -> nn.Module:
    return build_seq2seq(*_containers(cfg), src_vocab=data.src_vocab_size, tgt_vocab=data.tgt_vocab_size,
                         pad_id=data.pad_id, shared_vocab=data.shared_vocab)


def _seq2seq_task(cfg: DictConfig, data: Seq2SeqDataModule, model: nn.Module) -> TaskModule:
    return Seq2SeqTask(
        model, optim=OmegaConf.to_container(cfg.optim), label_smoothing=cfg.task.label_smoothing, pad_id=data.pad_id,
        bos_id=data.bos_id, eos_id=data.eos_id, decoding=OmegaConf.to_container(cfg.task.decoding),
        scorer=cfg.task.scorer, decode=data.decode, token=data.tgt_tokenizer.id_to_token,
        references={split: data.references(split) for split in ("validation", "test")},
    )


def _score_text(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> Scores:
    return SCORERS[cfg.task.scorer](predictions, golds)


FAMILIES: dict[str, Family] = {
    "classification": Family(ClassificationDataModule, _classifier, _classification_task, "label", _score_labels),
    "seq2seq": Family(Seq2SeqDataModule, _seq2seq_model, _seq2seq_task, "tgt", _score_text),
}


def family(cfg: DictConfig) -> Family:
    name = cfg.task.family
    if name not in FAMILIES:
        raise DataError(f"task.family={name} has no data module: choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module for the run config's task family."""
    return family(cfg).datamodule(cfg)
