"""Data: sources (local jsonl or hub) -> tokenizer -> tokenized Arrow cache -> length-bucketed batches.

Which data module a run uses is its task family's (tasks/families.py: build_datamodule).

The names below are imported on first use (PEP 562): importing one submodule, e.g. `attnbench.data.sources` for
the sweep's baselines, must not import Lightning through the data modules (seconds before any input is checked).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BucketBatchSampler": "batching", "collate_classification": "batching", "collate_seq2seq": "batching",
    "pad": "batching", "padding_fraction": "batching",
    "ClassificationDataModule": "datamodule", "Seq2SeqDataModule": "datamodule",
    "check_hub_reachable": "sources", "dataset_fingerprint": "sources", "load_split": "sources",
    "resolve_source": "sources",
    "SPECIAL_TOKENS": "tokenizer", "build_tokenizer": "tokenizer", "tokenizer_hash": "tokenizer",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
