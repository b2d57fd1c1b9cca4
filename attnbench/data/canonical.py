"""The canonical split both sources end in: which columns and splits a task maps, and each row validated.

One column per canonical field of the task's column map, `label` as an index into `task.labels` for
classification; a bad row raises a one-line DataError that names where it is and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from datasets import Features, Value

from attnbench.config import TaskConfig
from attnbench.config.families import FAMILIES
from attnbench.errors import DataError

Source = Literal["local", "hub"]
SPLITS = ("train", "validation", "test")


def split_limit(task: TaskConfig, split: str) -> int | None:
    # SplitLimits names train/validation/test only; extra splits (e.g. test_2017_flickr) are never limited.
    return getattr(task.limits, split, None)


def no_examples(where: Path | str, split: str) -> str:
    return (f"{where}: the {split} split has no examples (empty, or only blank lines): fix the data; every split "
            "needs at least one example")


def canonical_row(record: Mapping[str, Any], columns: Mapping[str, str], labels: Sequence[str] | None,
                  where: str, source: Source = "local") -> dict[str, Any]:
    """One validated row in canonical names; `where` locates it for the error message."""
    row: dict[str, Any] = {}
    for name, key in columns.items():
        field = f"field '{key}'" if key == name else f"field '{key}' ({name})"
        if key not in record:
            present = ", ".join(sorted(record)) or "none"
            raise DataError(f"{where}: missing {field}; it has fields {present}: fix the data or task.{source}.columns")
        value = record[key]
        if name == "label" and labels is not None:
            row[name] = _label_index(value, labels, f"{where}: {field}")
        else:
            if not isinstance(value, str):
                raise DataError(f"{where}: {field} must be a string, got {json.dumps(value)[:40]}: fix the data")
            if not value.strip():
                raise DataError(f"{where}: {field} is empty or whitespace only: fix or remove the example")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise DataError(f"{where}: {field} holds {err.object[err.start]!r} at character {err.start + 1}, "
                                "which is not encodable text (a lone surrogate): fix the data") from None
            row[name] = value
    return row


def _label_index(value: Any, labels: Sequence[str], where: str) -> int:
    valid = ", ".join(f"{i}={name}" for i, name in enumerate(labels))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(labels):
            return value
    elif isinstance(value, str) and value in labels:
        return list(labels).index(value)
    hint = " (-1 marks an unlabelled split, such as GLUE's test sets)" if value == -1 else ""
    raise DataError(
        f"{where}: label {json.dumps(value)[:40]} is outside the label set{hint}; valid labels are {valid} "
        "(index or name)"
    )


def arrow_features(columns: Mapping[str, str]) -> Features:
    spec = {name: Value("int64") if name == "label" else Value("string") for name in columns}
    spec["id"] = Value("int64")
    return Features(spec)

def source_spec(task: TaskConfig, source: Source) -> dict[str, Any]:
    block = task.local if source == "local" else task.hub
    spec = {"columns": column_map(task, source), "splits": dict(block.splits)}
    if source == "hub":
        spec.update(path=block.path, name=block.name, revision=block.revision)
    return spec


def column_map(task: TaskConfig, source: Source) -> dict[str, str]:
    columns = dict((task.local if source == "local" else task.hub).columns)
    if not columns:
        raise DataError(f"task.{source}.columns is empty: map each canonical field to a column, e.g. "
                        f"task.{source}.columns={{text: text, label: label}}")
    spec = FAMILIES[task.family]
    missing = [name for name in spec.fields if name not in columns]
    if missing:
        raise DataError(spec.missing_column.format(source=source, missing=missing[0], have=", ".join(columns)))
    return columns


def split_name(task: TaskConfig, source: Source, split: str) -> str:
    splits = dict((task.local if source == "local" else task.hub).splits)
    if split not in splits:
        raise DataError(f"task.{source}.splits has no '{split}' entry (it has {', '.join(splits) or 'none'}): "
                        f"add one, e.g. task.{source}.splits.{split}={split}")
    return splits[split]


def task_labels(task: TaskConfig) -> list[str] | None:
    return list(task.labels) if FAMILIES[task.family].labelled else None

