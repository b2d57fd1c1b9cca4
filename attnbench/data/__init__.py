"""Data: sources (local jsonl or hub) -> tokenizer -> tokenized Arrow cache -> length-bucketed batches.

Which data module a run uses is its task family's (tasks/families.py: build_datamodule)."""

from __future__ import annotations

from attnbench.data.batching import (
    BucketBatchSampler, collate_classification, collate_seq2seq, pad, padding_fraction,
)
from attnbench.data.datamodule import ClassificationDataModule, Seq2SeqDataModule
from attnbench.data.sources import check_hub_reachable, dataset_fingerprint, load_split, resolve_source
from attnbench.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, tokenizer_hash

__all__ = [
    "BucketBatchSampler", "ClassificationDataModule", "SPECIAL_TOKENS", "Seq2SeqDataModule", "build_tokenizer", "check_hub_reachable", "collate_classification", "collate_seq2seq", "dataset_fingerprint",
    "load_split", "pad", "padding_fraction", "resolve_source", "tokenizer_hash",
]

