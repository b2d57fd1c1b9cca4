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
