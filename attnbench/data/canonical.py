"""The canonical split both sources end in: which columns and splits a task maps, and each row validated.

One column per canonical field of the task's column map, `label` as an index into `task.labels` for
classification; a bad row raises a one-line DataError that names where it is and the field. A seq2seq target with
several references (`tgt: [ref1, ref2]`, or a column holding a list of strings) keeps the first as `tgt` and adds
`refs`, the list of all of them; one-reference splits have no `refs` column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from datasets import Features, List, Value
from omegaconf import ListConfig

from attnbench.config import TaskConfig
from attnbench.config.families import FAMILIES
from attnbench.errors import DataError

Source = Literal["local", "hub"]
SPLITS = ("train", "validation", "test")
# The canonical column of all references of an example, in splits that have several (the first is also the target
# field); splits with one reference per example have no such column, exactly as before multi-reference support.
REFS = "refs"


def split_limit(task: TaskConfig, split: str) -> int | None:
    # SplitLimits names train/validation/test only; extra splits (e.g. test_2017_flickr) are never limited.
    return getattr(task.limits, split, None)


def no_examples(where: Path | str, split: str) -> str:
    return (f"{where}: the {split} split has no examples (empty, or only blank lines): fix the data; every split "
            "needs at least one example")


def canonical_row(record: Mapping[str, Any], columns: Mapping[str, str | list[str]], labels: Sequence[str] | None,
                  where: str, source: Source = "local", listed: str | None = None) -> dict[str, Any]:
    """One validated row in canonical names; `where` locates it for the error message.

    A field mapped to a list of columns, or the field `listed` (whose one column holds a list of strings in every
    row), has several references: the row gets the first as that field and all of them as `REFS`.
    """
    row: dict[str, Any] = {}
    for name, key in columns.items():
        if isinstance(key, list):
            references = [_text(_value(record, column, name, where, source), where,
                                 f"field '{column}' ({name} reference {i})") for i, column in enumerate(key, 1)]
            row[name], row[REFS] = references[0], references
            continue
        field = f"field '{key}'" if key == name else f"field '{key}' ({name})"
        value = _value(record, key, name, where, source)
        if name == "label" and labels is not None:
            row[name] = _label_index(value, labels, f"{where}: {field}")
        elif name == listed:
            if not isinstance(value, list):
                raise DataError(f"{where}: {field} must be a list of reference strings, as in the split's first row, "
                                f"got {json.dumps(value)[:40]}: fix the data")
            if not value:
                raise DataError(f"{where}: {field} holds no references: give the example at least one, or remove it")
            references = [_text(text, where, f"{field} reference {i}") for i, text in enumerate(value, 1)]
            row[name], row[REFS] = references[0], references
        else:
            hint = ("; the split's first row holds a single reference string, so every row must (or give every row "
                    "a list)") if isinstance(value, list) and name in _reference_fields() else ""
            row[name] = _text(value, where, field, hint)
    return row


def _reference_fields() -> set[str]:
    return {spec.references for spec in FAMILIES.values() if spec.references}


def _value(record: Mapping[str, Any], key: str, name: str, where: str, source: Source) -> Any:
    if key not in record:
        field = f"field '{key}'" if key == name else f"field '{key}' ({name})"
        present = ", ".join(sorted(record)) or "none"
        raise DataError(f"{where}: missing {field}; it has fields {present}: fix the data or task.{source}.columns")
    return record[key]


def _text(value: Any, where: str, field: str, hint: str = "") -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: {field} must be a string, got {json.dumps(value)[:40]}{hint}: fix the data")
    if not value.strip():
        raise DataError(f"{where}: {field} is empty or whitespace only: fix or remove the example")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(f"{where}: {field} holds {err.object[err.start]!r} at character {err.start + 1}, "
                        "which is not encodable text (a lone surrogate): fix the data") from None
    return value


def listed_field(columns: Mapping[str, str | list[str]], field: str | None,
                 first: Mapping[str, Any] | None) -> str | None:
    """`field` when its one column holds a list in the split's first row (a list-valued reference column), else None:
    the first row decides, and every other row must have the same shape."""
    if field is None or first is None or not isinstance(columns.get(field), str):
        return None
    return field if isinstance(first.get(columns[field]), list) else None


def several_references(columns: Mapping[str, str | list[str]], listed: str | None) -> bool:
    """Whether the split's rows carry a `REFS` column (a field mapped to several columns, or a list-valued one)."""
    return listed is not None or any(isinstance(key, list) for key in columns.values())


def source_keys(columns: Mapping[str, str | list[str]]) -> list[str]:
    """Every file or hub column the map reads, in order."""
    return [column for key in columns.values() for column in (key if isinstance(key, list) else [key])]


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


def arrow_features(columns: Mapping[str, str | list[str]], several: bool = False) -> Features:
    spec = {name: Value("int64") if name == "label" else Value("string") for name in columns}
    if several:
        spec[REFS] = List(Value("string"))
    spec["id"] = Value("int64")
    return Features(spec)

def source_spec(task: TaskConfig, source: Source) -> dict[str, Any]:
    block = task.local if source == "local" else task.hub
    spec = {"columns": column_map(task, source), "splits": dict(block.splits)}
    if source == "hub":
        spec.update(path=block.path, name=block.name, revision=block.revision)
    return spec


def column_map(task: TaskConfig, source: Source) -> dict[str, str | list[str]]:
    # Plain values: a list of reference columns arrives as an OmegaConf ListConfig; a scalar as its string, as the
    # Dict[str, str] schema this replaced coerced it.
    columns = {name: [str(c) for c in key] if isinstance(key, (list, ListConfig)) else str(key)
               for name, key in (task.local if source == "local" else task.hub).columns.items()}
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

