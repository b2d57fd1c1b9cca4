"""The local source: <data_dir>/<task>/<dataset>/<split>.jsonl[.gz], read line by line and every row checked.

A checked split is cached as Arrow under <cache_dir>/datasets/<task>/<dataset>/<split>-<key>/, the key hashing
the file's bytes, column map, labels and row limit, so an edited file or a different limit never reuses a
stale copy.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from attnbench.config import TaskConfig
from attnbench.config.families import FAMILIES
from attnbench.data.canonical import (
    REFS, arrow_features, canonical_row, column_map, listed_field, no_examples, several_references, split_limit,
    split_name, task_labels,
)
from attnbench.data.fingerprints import CACHE_FORMAT, file_sha256, short_hash
from attnbench.errors import DataError

LAYOUT = "<data_dir>/<task>/<dataset>/<split>.jsonl[.gz]"


def split_file(task: TaskConfig, split: str, data_dir: Path) -> Path:
    stem = split_name(task, "local", split)
    folder = data_dir / task.name / task.local.dataset
    candidates = [folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz"]
    found = [path for path in candidates if path.is_file()]
    if len(found) == 1:
        return found[0]
    if len(found) == 2:
        # Two copies could differ; picking one silently would make results depend on an accident.
        raise DataError(f"both {found[0]} and {found[1]} exist for split '{split}': keep only one of them")
    if not data_dir.is_dir():
        raise DataError(
            f"data folder {data_dir} does not exist: pass data_dir=/path/to/data or set ATTNBENCH_DATA_DIR "
            f"(layout {LAYOUT})"
        )
    raise DataError(
        f"no file for split '{split}' of {task.name}/{task.local.dataset}: tried {candidates[0]} and "
        f"{candidates[1].name}; the layout must be {LAYOUT}"
    )


def load_local(task: TaskConfig, split: str, data_dir: Path, cache_dir: Path) -> Dataset:
    path = split_file(task, split, data_dir)
    columns = column_map(task, "local")
    limit = split_limit(task, split)
    key = short_hash({"format": CACHE_FORMAT, "file": file_sha256(path), "columns": columns,
                       "labels": task_labels(task), "limit": limit})
    target = cache_dir / "datasets" / task.name / task.local.dataset / f"{split}-{key}"
    if not (target / "state.json").is_file():
        records = _read_jsonl(path, limit)
        first = next(records, None)
        # A reference column holding a list in the first row holds one in every row (several references).
        listed = listed_field(columns, FAMILIES[task.family].references, first[1] if first else None)
        rows = [canonical_row(record, columns, task_labels(task), f"{path} line {line}", listed=listed)
                for line, record in itertools.chain([first] if first else [], records)]
        if not rows:
            raise DataError(no_examples(path, split))
        _save_atomic(_to_dataset(rows, columns, several_references(columns, listed)), target)
    return datasets.load_from_disk(str(target))


def _read_jsonl(path: Path, limit: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for each non-blank line, stopping after `limit` objects."""
    opener = gzip.open if path.name.endswith(".gz") else open
    line = 0
    count = 0
    try:
        with opener(path, "rb") as f:
            for line, raw in enumerate(f, start=1):
                if limit is not None and count >= limit:
                    return
                if not raw.strip():
                    continue  # a blank line carries no example; line numbers still count it
                yield line, _parse_line(raw, path, line)
                count += 1
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(
            f"{path} line {line + 1}: truncated or corrupt gzip ({err}); copy the file again"
        ) from None


def _parse_line(raw: bytes, path: Path, line: int) -> dict[str, Any]:
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark some editors write
    raw = raw.rstrip(b"\r\n")  # so JSON error columns count within this line
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} line {line}: {_undecodable(raw, err)}; re-encode the file as UTF-8") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path} line {line}: invalid JSON ({err.msg} at column {err.colno}); each line must be one JSON object"
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"{path} line {line}: expected a JSON object, got {type(record).__name__}; "
                        "each line must be one JSON object")
    return record


def _undecodable(raw: bytes, err: UnicodeDecodeError) -> str:
    """Name the field that holds the bad bytes: undecodable bytes survive as lone surrogates in its value."""
    bad = raw[err.start : err.start + 1].hex()
    where = f"byte 0x{bad} at column {err.start + 1} is not valid UTF-8"
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError:
        return where
    if isinstance(record, dict):
        for key, value in record.items():
            if isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value):
                return f"field '{key}': {where}"
    return where


def _to_dataset(rows: list[dict[str, Any]], columns: Mapping[str, str | list[str]], several: bool) -> Dataset:
    data = {name: [row[name] for row in rows] for name in [*columns, *([REFS] if several else [])]}
    data["id"] = list(range(len(rows)))
    return Dataset.from_dict(data, features=arrow_features(columns, several))


def _save_atomic(dataset: Dataset, target: Path) -> None:
    """Write to a sibling folder and rename it, so a crash or a parallel run never leaves half a split."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _no_progress_bars():
            dataset.save_to_disk(str(staging))
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "state.json").is_file():  # not a finished copy from a parallel run
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    # Saving a few MB takes milliseconds; its progress bar is noise in every run's log.
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


