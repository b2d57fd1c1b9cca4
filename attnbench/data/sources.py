"""Where a task's examples come from: the local jsonl copies or the Hugging Face hub.

Both sources end in the same canonical split: one column per canonical field of the task's column map
(`text` and `label` for classification; `src` and `tgt` for seq2seq, whatever the file or hub columns are
called: `document`/`summary`, `en`/`de`, and swapping them reverses a translation direction), `label` as an
index into `task.labels` for classification, and `id` = the row's position in the split, so predictions can
be written and compared by id. Every row is checked before use and the first bad one stops the run with a one-line
DataError that names the file (or hub dataset), the line (or row) and the field.

Cache layout under `cache_dir`:
  datasets/<task>/<dataset>/<split>-<key>/   local splits as Arrow (`Dataset.save_to_disk`); the key hashes
                                             the file's bytes, column map, labels and row limit, so an
                                             edited file or a different limit never reuses a stale copy
  hub/                                       `datasets.load_dataset`'s own cache for hub downloads
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
from datasets import Dataset, Features, Value
from omegaconf import OmegaConf
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from attnbench.config import TaskConfig
from attnbench.errors import DataError
from attnbench.netcheck import unreachable_reason

Source = Literal["local", "hub"]
SPLITS = ("train", "validation", "test")
LAYOUT = "<data_dir>/<task>/<dataset>/<split>.jsonl[.gz]"
HUB_TIMEOUT_S = 3.0
# Bump when the canonical format changes, so older cached splits are not mistaken for current ones.
CACHE_FORMAT = 1


def resolve_source(task: TaskConfig, data_dir: str | None) -> Source:
    if task.source == "hub":
        return "hub"
    if task.source == "local" or data_dir:
        if not data_dir:
            raise DataError(
                f"task.source=local needs a data folder: pass data_dir=/path/to/data or set ATTNBENCH_DATA_DIR "
                f"(layout {LAYOUT})"
            )
        return "local"
    if task.source == "auto" and not _hub_path(task):
        raise DataError(
            f"task {task.name} has no hub source (no task.hub block in its YAML) and no local data folder is set: "
            f"set ATTNBENCH_DATA_DIR or pass data_dir=/path/to/data (layout {LAYOUT}), or add a hub: block"
        )
    return "hub"


def split_limit(task: TaskConfig, split: str) -> int | None:
    # SplitLimits names train/validation/test only; extra splits (e.g. test_2017_flickr) are never limited.
    return getattr(task.limits, split, None)


def load_split(task: TaskConfig, split: str, data_dir: str | None, cache_dir: str) -> Dataset:
    """One canonical, validated split as a memory-mapped Arrow dataset (first `task.limits[split]` rows)."""
    source = resolve_source(task, data_dir)
    if source == "local":
        dataset = _load_local(task, split, Path(data_dir), Path(cache_dir))
    else:
        dataset = _load_hub(task, split, Path(cache_dir))
    if len(dataset) == 0:
        raise DataError(_no_examples(f"hub dataset {_hub_path(task)}" if source == "hub" else split_file(
            task, split, Path(data_dir)), split))
    return dataset


def _no_examples(where: Path | str, split: str) -> str:
    return (f"{where}: the {split} split has no examples (empty, or only blank lines): fix the data; every split "
            "needs at least one example")


def dataset_fingerprint(task: TaskConfig, data_dir: str | None, splits: Sequence[str] | None = None) -> str:
    """Short hash of what the loaded data depends on: file bytes (or hub coordinates), column map, labels, limits.

    Independent of where the data folder lives, so the same files give the same fingerprint on every machine.
    """
    source = resolve_source(task, data_dir)
    spec = _spec(task, source)
    chosen = sorted(splits if splits is not None else spec["splits"])
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "source": source,
        "columns": spec["columns"],
        "labels": _labels(task),
        "limits": {split: split_limit(task, split) for split in chosen},
    }
    if source == "local":
        parts["files"] = {}
        for split in chosen:
            path = split_file(task, split, Path(data_dir))
            parts["files"][split] = [path.name, _file_sha256(path)]
    else:
        parts["hub"] = {"path": spec["path"], "name": spec["name"], "revision": spec["revision"],
                        "splits": {split: spec["splits"][split] for split in chosen}}
        holdout = _holdout(task)
        if holdout is not None:
            parts["hub"]["holdout"] = holdout
    return _short_hash(parts)


def test_fingerprint(task: TaskConfig, data_dir: str | None) -> str:
    """dataset_fingerprint of the test split alone: runs with equal ones were scored on the same examples, whatever
    they trained on (the leaderboard pools and compares only such runs)."""
    return dataset_fingerprint(task, data_dir, splits=["test"])


def split_sources(task: TaskConfig, data_dir: str | None) -> dict[str, str]:
    """What each canonical split is, in words, for the run record (e.g. which split "test" really is)."""
    source = resolve_source(task, data_dir)
    if source == "local":
        return {split: f"local {task.name}/{task.local.dataset}/{split_file(task, split, Path(data_dir)).name}"
                for split in SPLITS}
    spec = _spec(task, "hub")
    name = spec["path"] + (f"/{spec['name']}" if spec["name"] else "")
    described = {split: f"hub {name} split '{spec['splits'][split]}'" for split in SPLITS}
    holdout = _holdout(task)
    if holdout is not None:
        origin = f"hub {name} split '{spec['splits']['train']}'"
        described["train"] = f"{origin} minus {holdout['size']} held-out rows (seed {holdout['seed']})"
        described[holdout["split"]] = f"{origin}: {holdout['size']} held-out rows (seed {holdout['seed']})"
    return described


def split_file(task: TaskConfig, split: str, data_dir: Path) -> Path:
    stem = _split_name(task, "local", split)
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


# ---- local jsonl -------------------------------------------------------------------------------------------


def _load_local(task: TaskConfig, split: str, data_dir: Path, cache_dir: Path) -> Dataset:
    path = split_file(task, split, data_dir)
    columns = _columns(task, "local")
    limit = split_limit(task, split)
    key = _short_hash({"format": CACHE_FORMAT, "file": _file_sha256(path), "columns": columns,
                       "labels": _labels(task), "limit": limit})
    target = cache_dir / "datasets" / task.name / task.local.dataset / f"{split}-{key}"
    if not (target / "state.json").is_file():
        rows = [_canonical(record, columns, _labels(task), f"{path} line {line}")
                for line, record in _read_jsonl(path, limit)]
        if not rows:
            raise DataError(_no_examples(path, split))
        _save_atomic(_to_dataset(rows, columns), target)
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


# ---- hub ---------------------------------------------------------------------------------------------------


def _load_hub(task: TaskConfig, split: str, cache_dir: Path) -> Dataset:
    spec = _spec(task, "hub")
    hub_split = _split_name(task, "hub", split)
    columns = _columns(task, "hub")
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
    missing = [key for key in columns.values() if key not in raw.column_names]
    if missing:
        raise DataError(
            f"{where} has no column '{missing[0]}'; its columns are {', '.join(raw.column_names)}: fix task.hub.columns"
        )
    holdout = _holdout(task)
    if holdout is not None and split in ("train", holdout["split"]):
        held_out = _held_out_rows(len(raw), holdout, where)
        rows = held_out if split == holdout["split"] else sorted(set(range(len(raw))) - set(held_out))
        raw = raw.select(rows)
        where += f" ({'held-out rows' if split == holdout['split'] else 'minus the held-out rows'})"
    limit = split_limit(task, split)
    if limit is not None and limit < len(raw):
        raw = raw.select(range(limit))
    return canonicalize(raw, columns, _labels(task), where)


def _holdout(task: TaskConfig) -> dict[str, Any] | None:
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


def canonicalize(raw: Dataset, columns: Mapping[str, str], labels: Sequence[str] | None, where: str) -> Dataset:
    """A hub-shaped dataset in canonical columns, every row validated (errors name `where`, row and field)."""
    columns = dict(columns)
    labels = list(labels) if labels is not None else None

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [
            _canonical({key: batch[key][i] for key in columns.values()}, columns, labels, f"{where} row {index}", "hub")
            for i, index in enumerate(indices)
        ]
        return {**{name: [row[name] for row in rows] for name in columns}, "id": list(indices)}

    # Dataset.map caches the result next to the hub download, keyed by the source fingerprint and arguments.
    return raw.map(convert, batched=True, with_indices=True, remove_columns=raw.column_names,
                   features=_features(columns), desc=f"checking {where}")


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


# ---- shared ------------------------------------------------------------------------------------------------


def _canonical(record: Mapping[str, Any], columns: Mapping[str, str], labels: Sequence[str] | None,
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


def _to_dataset(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> Dataset:
    data = {name: [row[name] for row in rows] for name in columns}
    data["id"] = list(range(len(rows)))
    return Dataset.from_dict(data, features=_features(columns))


def _features(columns: Mapping[str, str]) -> Features:
    spec = {name: Value("int64") if name == "label" else Value("string") for name in columns}
    spec["id"] = Value("int64")
    return Features(spec)


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


def _hub_path(task: TaskConfig) -> str | None:
    """task.hub.path, or None when the task's YAML has no hub block (a required key left unset)."""
    if OmegaConf.is_config(task.hub) and OmegaConf.is_missing(task.hub, "path"):
        return None
    return task.hub.path or None


def _spec(task: TaskConfig, source: Source) -> dict[str, Any]:
    block = task.local if source == "local" else task.hub
    spec = {"columns": _columns(task, source), "splits": dict(block.splits)}
    if source == "hub":
        spec.update(path=block.path, name=block.name, revision=block.revision)
    return spec


def _columns(task: TaskConfig, source: Source) -> dict[str, str]:
    columns = dict((task.local if source == "local" else task.hub).columns)
    if not columns:
        raise DataError(f"task.{source}.columns is empty: map each canonical field to a column, e.g. "
                        f"task.{source}.columns={{text: text, label: label}}")
    if task.family == "classification" and "label" not in columns:
        raise DataError(f"task.{source}.columns has no 'label' entry: a classification task needs its label column")
    missing = [name for name in ("src", "tgt") if name not in columns]
    if task.family == "seq2seq" and missing:
        raise DataError(f"task.{source}.columns has no '{missing[0]}' entry (it has {', '.join(columns)}): a seq2seq "
                        f"task maps src and tgt, e.g. task.{source}.columns={{src: en, tgt: de}}")
    return columns


def _split_name(task: TaskConfig, source: Source, split: str) -> str:
    splits = dict((task.local if source == "local" else task.hub).splits)
    if split not in splits:
        raise DataError(f"task.{source}.splits has no '{split}' entry (it has {', '.join(splits) or 'none'}): "
                        f"add one, e.g. task.{source}.splits.{split}={split}")
    return splits[split]


def _labels(task: TaskConfig) -> list[str] | None:
    return list(task.labels) if task.family == "classification" else None


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    # Keyed by size and mtime too, so a file rewritten during a session is hashed again.
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _short_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
