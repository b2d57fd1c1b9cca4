"""The Hugging Face hub source: a dataset split (or a seeded hold-out of its train split), every row checked.

Downloads are cached by `datasets.load_dataset` under <cache_dir>/hub/; reachability is checked first, so an
offline machine fails in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Dataset
from omegaconf import OmegaConf

from attnbench.config import TaskConfig
from attnbench.config.families import FAMILIES
from attnbench.data.canonical import (
    REFS, SPLITS, arrow_features, canonical_row, column_map, several_references, source_keys, source_spec,
    split_limit, split_name, task_labels,
)
from attnbench.errors import DataError
from attnbench.netcheck import unreachable_reason

HUB_TIMEOUT_S = 3.0


def load_hub(task: TaskConfig, split: str, cache_dir: Path) -> Dataset:
    spec = source_spec(task, "hub")
    hub_split = split_name(task, "hub", split)
    columns = column_map(task, "hub")
    where = f"hub dataset {spec['path']}" + (f"/{spec['name']}" if spec["name"] else "") + f" split '{hub_split}'"
    check_hub_reachable()
    try:
        raw = datasets.load_dataset(spec["path"], spec["name"], split=hub_split, revision=spec["revision"],
                                    cache_dir=str(cache_dir / "hub"))
    except Exception as err:  # the hub client raises many types; all mean "this dataset could not be had"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"cannot load {where} from the hub ({reason}); check task.hub.path/name/splits, or use the local copy: "
            f"data_dir=/path/to/data task.source=local"
        ) from None
    missing = [key for key in source_keys(columns) if key not in raw.column_names]
    if missing:
        raise DataError(
            f"{where} has no column '{missing[0]}'; its columns are {', '.join(raw.column_names)}: fix task.hub.columns"
        )
    holdout = hub_holdout(task)
    if holdout is not None and split in ("train", holdout["split"]):
        held_out = _held_out_rows(len(raw), holdout, where)
        rows = held_out if split == holdout["split"] else sorted(set(range(len(raw))) - set(held_out))
        raw = raw.select(rows)
        where += f" ({'held-out rows' if split == holdout['split'] else 'minus the held-out rows'})"
    limit = split_limit(task, split)
    if limit is not None and limit < len(raw):
        raw = raw.select(range(limit))
    return canonicalize(raw, columns, task_labels(task), where, FAMILIES[task.family].references)


def hub_holdout(task: TaskConfig) -> dict[str, Any] | None:
    """The hub hold-out (task.hub.holdout) when it is on, checked against the split map; else None."""
    holdout = task.hub.holdout
    if holdout.size <= 0:
        return None
    splits = dict(task.hub.splits)
    if holdout.split == "train" or holdout.split not in SPLITS:
        raise DataError(f"task.hub.holdout.split={holdout.split} must be validation or test: the held-out rows "
                        "are taken from train")
    if splits.get(holdout.split) != splits.get("train"):
        raise DataError(
            f"task.hub.holdout takes {holdout.split} from the hub's train split '{splits.get('train')}', but "
            f"task.hub.splits.{holdout.split}={splits.get(holdout.split)}: set task.hub.splits.{holdout.split}="
            f"{splits.get('train')} (or task.hub.holdout.size=0 to use that split as it is)"
        )
    return {"split": holdout.split, "size": int(holdout.size), "seed": int(holdout.seed)}


def _held_out_rows(n: int, holdout: dict[str, Any], where: str) -> list[int]:
    """The held-out row indices (sorted) of a split of n rows: the first `size` of a permutation drawn with `seed`."""
    if holdout["size"] >= n:
        raise DataError(f"{where}: task.hub.holdout.size={holdout['size']} leaves no training rows of {n}: "
                        "lower task.hub.holdout.size")
    permutation = np.random.default_rng(holdout["seed"]).permutation(n)
    return sorted(int(i) for i in permutation[: holdout["size"]])


def canonicalize(raw: Dataset, columns: Mapping[str, str | list[str]], labels: Sequence[str] | None, where: str,
                 references: str | None = None) -> Dataset:
    """A hub-shaped dataset in canonical columns, every row validated (errors name `where`, row and field).

    `references`: the canonical field that may hold several references; it does when it maps a list of columns, or
    one column whose hub feature is a list of strings."""
    columns = dict(columns)
    labels = list(labels) if labels is not None else None
    key = columns.get(references) if references else None
    listed = references if isinstance(key, str) and isinstance(raw.features.get(key), datasets.List) else None
    several = several_references(columns, listed)
    names = [*columns, *([REFS] if several else [])]

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [
            canonical_row({key: batch[key][i] for key in source_keys(columns)}, columns, labels,
                          f"{where} row {index}", "hub", listed=listed)
            for i, index in enumerate(indices)
        ]
        return {**{name: [row[name] for row in rows] for name in names}, "id": list(indices)}

    # Dataset.map caches the result next to the hub download, keyed by the source fingerprint and arguments.
    return raw.map(convert, batched=True, with_indices=True, remove_columns=raw.column_names,
                   features=arrow_features(columns, several), desc=f"checking {where}")


def check_hub_reachable(timeout: float = HUB_TIMEOUT_S) -> None:
    """Fail in seconds, not after the hub client's minutes of retries, when the hub cannot be reached."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            _unreachable(f"{variable} is set")
    reason = unreachable_reason(os.environ.get("HF_ENDPOINT") or "https://huggingface.co", timeout)
    if reason:
        _unreachable(reason)


def _unreachable(reason: str) -> None:
    raise DataError(
        f"cannot reach the Hugging Face hub (huggingface.co): {reason}; use the local copy instead: "
        "data_dir=/path/to/data (or set ATTNBENCH_DATA_DIR) task.source=local"
    )


def hub_path(task: TaskConfig) -> str | None:
    """task.hub.path, or None when the task's YAML has no hub block (a required key left unset)."""
    if OmegaConf.is_config(task.hub) and OmegaConf.is_missing(task.hub, "path"):
        return None
    return task.hub.path or None


