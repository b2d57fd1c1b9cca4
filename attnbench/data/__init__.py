"""Data: sources (local jsonl or hub) -> tokenizer -> tokenized Arrow cache -> length-bucketed batches."""

from __future__ import annotations

import pytorch_lightning as pl
from omegaconf import DictConfig

from attnbench.data.batching import BucketBatchSampler, collate_classification, pad, padding_fraction
from attnbench.data.datamodule import ClassificationDataModule
from attnbench.data.sources import check_hub_reachable, dataset_fingerprint, load_split, resolve_source
from attnbench.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, tokenizer_hash
from attnbench.errors import DataError

__all__ = [
    "BucketBatchSampler", "ClassificationDataModule", "SPECIAL_TOKENS", "build_datamodule", "build_tokenizer",
    "check_hub_reachable", "collate_classification", "dataset_fingerprint", "load_split", "pad",
    "padding_fraction", "resolve_source", "tokenizer_hash",
]


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module for the run config's task family."""
    if cfg.task.family == "classification":
        return ClassificationDataModule(cfg)
    raise DataError(
        f"task {cfg.task.name} is a {cfg.task.family} task, which has no data module yet: "
        "only classification tasks (task=sentiment) can run for now"
    )
