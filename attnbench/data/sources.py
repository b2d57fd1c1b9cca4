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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from attnbench.config import TaskConfig
from attnbench.data.canonical import SPLITS, Source, no_examples, source_spec, split_limit, task_labels
from attnbench.data.fingerprints import CACHE_FORMAT, file_sha256, short_hash
from attnbench.data.hub import HUB_TIMEOUT_S, canonicalize, check_hub_reachable, hub_holdout, hub_path, load_hub
from attnbench.data.local import LAYOUT, load_local, split_file
from attnbench.errors import DataError

# Names other modules import from here, where they have always been.
__all__ = [
    "CACHE_FORMAT", "HUB_TIMEOUT_S", "LAYOUT", "SPLITS", "Source", "canonicalize", "check_hub_reachable",
    "dataset_fingerprint", "load_split", "resolve_source", "split_file", "split_limit", "split_sources",
    "test_fingerprint",
]


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
    if task.source == "auto" and not hub_path(task):
        raise DataError(
            f"task {task.name} has no hub source (no task.hub block in its YAML) and no local data folder is set: "
            f"set ATTNBENCH_DATA_DIR or pass data_dir=/path/to/data (layout {LAYOUT}), or add a hub: block"
        )
    return "hub"


def load_split(task: TaskConfig, split: str, data_dir: str | None, cache_dir: str) -> Dataset:
    """One canonical, validated split as a memory-mapped Arrow dataset (first `task.limits[split]` rows)."""
    source = resolve_source(task, data_dir)
    if source == "local":
        dataset = load_local(task, split, Path(data_dir), Path(cache_dir))
    else:
        dataset = load_hub(task, split, Path(cache_dir))
    if len(dataset) == 0:
        raise DataError(no_examples(f"hub dataset {hub_path(task)}" if source == "hub" else split_file(
            task, split, Path(data_dir)), split))
    return dataset


def dataset_fingerprint(task: TaskConfig, data_dir: str | None, splits: Sequence[str] | None = None) -> str:
    """Short hash of what the loaded data depends on: file bytes (or hub coordinates), column map, labels, limits.

    Independent of where the data folder lives, so the same files give the same fingerprint on every machine.
    """
    source = resolve_source(task, data_dir)
    spec = source_spec(task, source)
    chosen = sorted(splits if splits is not None else spec["splits"])
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "source": source,
        "columns": spec["columns"],
        "labels": task_labels(task),
        "limits": {split: split_limit(task, split) for split in chosen},
    }
    if source == "local":
        parts["files"] = {}
        for split in chosen:
            path = split_file(task, split, Path(data_dir))
            parts["files"][split] = [path.name, file_sha256(path)]
    else:
        parts["hub"] = {"path": spec["path"], "name": spec["name"], "revision": spec["revision"],
                        "splits": {split: spec["splits"][split] for split in chosen}}
        holdout = hub_holdout(task)
        if holdout is not None:
            parts["hub"]["holdout"] = holdout
    return short_hash(parts)


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
    spec = source_spec(task, "hub")
    name = spec["path"] + (f"/{spec['name']}" if spec["name"] else "")
    described = {split: f"hub {name} split '{spec['splits'][split]}'" for split in SPLITS}
    holdout = hub_holdout(task)
    if holdout is not None:
        origin = f"hub {name} split '{spec['splits']['train']}'"
        described["train"] = f"{origin} minus {holdout['size']} held-out rows (seed {holdout['seed']})"
        described[holdout["split"]] = f"{origin}: {holdout['size']} held-out rows (seed {holdout['seed']})"
    return described

