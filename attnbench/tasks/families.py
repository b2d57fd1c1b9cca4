"""How a run of a task family is built: each family's module defines `FAMILY = Family(...)`, and the family table
(config/families.py: `FAMILIES`) names that module, so adding a family is its module plus one `FAMILIES` line.

A `Family` holds:
  datamodule     the LightningDataModule class, built from the run config (`cfg`)
  build_model    (cfg, data) -> nn.Module: the model for the prepared data module (vocabulary sizes, pad id, ...)
  build_task     (cfg, data, model) -> TaskModule (tasks/base.py): the LightningModule around the model
  gold           the canonical column holding a test example's reference (what trivial baselines are scored on)
  references     the canonical column holding all of an example's references, in splits that have several
                 (seq2seq: refs); where a split has it, baselines are scored on it instead of `gold`
  score          (cfg, predictions, golds) -> (metrics, signatures): test metrics of predictions, computed as the
                 task module computes them (suite/baseline.py scores the trivial baselines with it)

The run pipeline (training/run.py), the harness (perf/harness.py) and the baselines (suite/baseline.py) reach a
family only through `family(cfg)`. The families' modules are imported by name when a run is built, not here: they
import this module for `Family`, and config validation must not need torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnbench.config.families import FAMILIES
from attnbench.errors import DataError
from attnbench.tasks.base import TaskModule

Scores = tuple[dict[str, float], dict[str, str]]


@dataclass(frozen=True)
class Family:
    datamodule: Callable[[DictConfig], pl.LightningDataModule]
    build_model: Callable[[DictConfig, Any], nn.Module]
    build_task: Callable[[DictConfig, Any, nn.Module], TaskModule]
    gold: str
    score: Callable[[DictConfig, list[Any], list[Any]], Scores]
    references: str | None = None

    def golds(self, split: Mapping[str, Sequence[Any]]) -> list[Any]:
        """What a split's predictions are scored against: each example's references where the split has several,
        else its `gold` column."""
        return list(split[self.references if self.references in split else self.gold])


def prediction_row(i: int, prediction: Any, gold: Any) -> dict[str, Any]:
    """One predictions.jsonl row: {id, prediction, gold}, plus `references` (all of them) when `gold` is a list of
    several; `gold` is then the first, so readers of one-reference records keep working."""
    if isinstance(gold, list):
        return {"id": i, "prediction": prediction, "gold": gold[0], "references": gold}
    return {"id": i, "prediction": prediction, "gold": gold}


def containers(cfg: DictConfig) -> tuple[dict, dict]:
    """The model and attention blocks as plain dicts: what the backbone builders take."""
    return OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.attention)


def family(cfg: DictConfig) -> Family:
    name = cfg.task.family
    if name not in FAMILIES:
        raise DataError(f"task.family={name} has no data module: choose one of {', '.join(FAMILIES)}")
    built = getattr(importlib.import_module(FAMILIES[name].module), "FAMILY", None)
    if not isinstance(built, Family):
        raise DataError(f"task.family={name}: module {FAMILIES[name].module} defines no FAMILY = Family(...): "
                        "add one (see attnbench/tasks/families.py)")
    return built


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module for the run config's task family."""
    return family(cfg).datamodule(cfg)
