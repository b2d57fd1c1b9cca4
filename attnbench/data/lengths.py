"""How long the examples are and how many the length limits cut: recorded with every run, warned about when large.

Lengths are in tokens as the tokenizer produces them before truncation, special tokens (BOS/EOS) excluded. A
source is truncated when it has more than `task.max_length` tokens; a seq2seq target when it has more than
`task.max_target_length - 1` (the limit counts BOS or EOS, one of which every decoder row carries).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A split of which more than this share is truncated gets a warning (and the leaderboard's footer a line).
WARN_SHARE = 0.05
PERCENTILES = (50, 90, 99)


def length_stats(lengths: Sequence[int], limit: int) -> dict[str, float | int]:
    """{"truncated": share of lengths over `limit`, "p50", "p90", "p99", "max"} of full lengths in tokens."""
    values = np.asarray(lengths, dtype=np.int64)
    if values.size == 0:
        return {"truncated": 0.0, **{f"p{q}": 0 for q in PERCENTILES}, "max": 0}
    stats: dict[str, float | int] = {"truncated": round(float(np.mean(values > limit)), 4)}
    stats.update({f"p{q}": round(float(np.percentile(values, q)), 1) for q in PERCENTILES})
    stats["max"] = int(values.max())
    return stats


def truncation_block(splits: Mapping[str, Mapping[str, Sequence[int]]], limits: Mapping[str, int],
                     max_length: int, max_target_length: int | None) -> dict[str, Any]:
    """The record's "data" block: per split, the example count and the length statistics of each side.

    `splits[split][side]` are the full lengths of side "source" (or "target"), `limits[side]` its token limit.
    """
    block: dict[str, Any] = {"max_length": max_length, "max_target_length": max_target_length,
                             "warn_share": WARN_SHARE, "splits": {}}
    for split, sides in splits.items():
        columns = {side: list(lengths) for side, lengths in sides.items()}  # Arrow columns -> plain lists
        entry: dict[str, Any] = {"examples": len(next(iter(columns.values()), []))}
        for side, lengths in columns.items():
            entry[side] = length_stats(lengths, limits[side])
        block["splits"][split] = entry
    return block


def truncation_warnings(block: Mapping[str, Any], dataset: str) -> list[str]:
    """One line per split and side whose truncated share exceeds WARN_SHARE, naming the setting to raise."""
    keys = {"source": "task.max_length", "target": "task.max_target_length"}
    lines = []
    for split, entry in block["splits"].items():
        for side, key in keys.items():
            stats = entry.get(side)
            if stats and stats["truncated"] > block["warn_share"]:
                lines.append(
                    f"{dataset} {split}: {100 * stats['truncated']:.1f}% of {side}s are longer than {key} and are cut "
                    f"(p90 {stats['p90']:.0f}, p99 {stats['p99']:.0f}, max {stats['max']} tokens): raise {key} "
                    "if the cut text matters"
                )
    return lines


def warn_truncation(block: Mapping[str, Any], dataset: str) -> None:
    for line in truncation_warnings(block, dataset):
        print(f"attnbench: warning: {line}", file=sys.stderr)
