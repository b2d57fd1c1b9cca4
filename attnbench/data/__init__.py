"""Data: sources (local jsonl or hub) -> tokenizer -> tokenized Arrow cache -> length-bucketed batches."""

from __future__ import annotations

from omegaconf import DictConfig

from attnbench.data.batching import (
    BucketBatchSampler, collate_classification, collate_seq2seq, pad, padding_fraction,
)
from attnbench.data.datamodule import ClassificationDataModule, Seq2SeqDataModule
from attnbench.data.sources import check_hub_reachable, dataset_fingerprint, load_split, resolve_source
from attnbench.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, tokenizer_hash
from attnbench.errors import DataError

__all__ = [
    "BucketBatchSampler", "ClassificationDataModule", "SPECIAL_TOKENS", "Seq2SeqDataModule", "build_datamodule",
    "build_tokenizer", "check_hub_reachable", "collate_classification", "collate_seq2seq", "dataset_fingerprint",
    "load_split", "pad", "padding_fraction", "resolve_source", "tokenizer_hash",
]


DATAMODULES = {"classification": ClassificationDataModule, "seq2seq": Seq2SeqDataModule}


def build_datamodule(cfg: DictConfig) -> ClassificationDataModule | Seq2SeqDataModule:
    """The data module for the run config's task family."""
    if cfg.task.family not in DATAMODULES:
        raise DataError(f"task.family={cfg.task.family} has no data module: choose one of {', '.join(DATAMODULES)}")
    return DATAMODULES[cfg.task.family](cfg)
