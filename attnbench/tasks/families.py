"""How a run of a task family is built: each family's module defines `FAMILY = Family(...)`, and the family table
(config/families.py: `FAMILIES`) names that module, so adding a family is its module plus one `FAMILIES` line.

A `Family` holds:
  datamodule     the LightningDataModule class, built from the run config (`cfg`)
  build_model    (cfg, data) -> nn.Module: the model for the prepared data module (vocabulary sizes, pad id, ...)
  build_task     (cfg, data, model) -> TaskModule (tasks/base.py): the LightningModule around the model
  gold           the canonical column holding a test example's reference (what trivial baselines are scored on)
  score          (cfg, predictions, golds) -> (metrics, signatures): test metrics of predictions, computed as the
                 task module computes them (suite/baseline.py scores the trivial baselines with it)

The run pipeline (training/run.py), the harness (perf/harness.py) and the baselines (suite/baseline.py) reach a
family only through `family(cfg)`. The families' modules are imported by name when a run is built, not here: they
import this module for `Family`, and config validation must not need torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
