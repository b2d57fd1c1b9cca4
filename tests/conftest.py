"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N` the workers share the cores: one thread each (and in the runs they start), or the
    # intra-op threads of N processes wait on each other.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark copies ($ATTNBENCH_DATA_DIR): skipped when unset, except on CI (CI=true), where it fails."""
    value = os.environ.get("ATTNBENCH_DATA_DIR")
    on_ci = os.environ.get("CI", "").strip().lower() == "true"
    if not value:
        message = "ATTNBENCH_DATA_DIR is not set: point it at the benchmark data folder (../shared/data)"
        if on_ci:
            pytest.fail(f"{message}; CI must run the real-data tests")
        pytest.skip(message)
    path = Path(value)
    if not (path / "sentiment").is_dir():
        # Set but wrong is a mistake to report everywhere, not a reason to skip.
        pytest.fail(f"ATTNBENCH_DATA_DIR={value} has no sentiment/ folder: point it at the benchmark data folder")
    return path
