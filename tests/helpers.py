"""Small helpers shared by the data tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from attnbench.config import load_config


def config(data_dir: Path | None, cache_dir: Path, *overrides: str):
    base = [f"cache_dir={cache_dir}"] + ([f"data_dir={data_dir}"] if data_dir is not None else [])
    return load_config([*base, *overrides])


def first_lines(path: Path, n: int) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


# Overrides of a tiny real run (seconds on 2 cores): a slice of each split, one epoch, small widths.
TINY = ["task.limits.train=200", "task.limits.validation=32", "task.limits.test=32", "task.probes=1",
        "trainer.max_epochs=1", "trainer.batch_size=32", "trainer.enable_progress_bar=false", "wandb.mode=disabled",
        "trainer.early_stopping_patience=0", "model.embed_dim=16", "model.hidden_dim=16"]


def run_record(out: Path) -> dict:
    (path,) = out.glob("*/metrics.json")
    return json.loads(path.read_text())


def assert_one_line_naming(message: str, *parts: str) -> None:
    """A data error is one line that names every one of `parts` (the file, the line, the field, the fix)."""
    for part in parts:
        assert part in message, (part, message)
    assert "\n" not in message


def wandb_records(path: Path, kind: str) -> list[dict]:
    """The `kind` records ("summary", "history") of an offline W&B run file (run-<id>.wandb) as {key: JSON value}."""
    from attnbench.tracking.wandb_file import run_records

    out = []
    for record in run_records(path):
        if record.WhichOneof("record_type") == kind:
            items = record.summary.update if kind == "summary" else record.history.item
            out.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return out
