"""A spec's `reuse:` folders: completed runs of other sweeps that a cell of identical configuration takes instead of
training again.

A cell's config_hash covers everything that shapes its result, the seed included (not its name, folder, data or
cache location, logging: config.NOT_RESULT_KEYS). An ablation often contains cells of another sweep exactly (the
heads ablation's 8-head cells are the CPU protocol's multihead transformer cells, the scaling ablation's d_k 256
cells its dot, scaled_dot and additive ones); when its spec lists that
sweep's output folder under `reuse`, such a cell with no usable attempt of its own gets a copy of the completed
run folder instead of hours of identical training. The copy is that run: its metrics, predictions, history,
saved attention, explain outputs and provenance (code version, times, cost) are the source's; its checkpoints are
hard links where the file system allows. Only its name changes: config.yaml is the new cell's own configuration
(the same hash; its run_id and output_dir, its settings as its spec spells them), metrics.json and explain.json
say the new run_id, and the record gains `reused_from` (the source folder). The copy is assembled in a hidden
sibling folder under the cell's claim and renamed into place, so a crash leaves no half-copied cell.

    spec.reuse folders -> {config_hash: completed run folder} -> adopt(source, cell) -> <output_dir>/<cell id>/
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from attnbench.config import config_hash, to_yaml
from attnbench.errors import ConfigError
from attnbench.suite.spec import Cell
from attnbench.tracking.claim import Claim
from attnbench.tracking.record import read_record, saved_config_hash, write_atomic, write_json


EXPLAIN = "explain.json"


class Reusable:
    """The completed runs of some output folders, by config hash (scanned once, on first use)."""

    def __init__(self, folders: list[Path]):
        self.folders = list(folders)
        self._index: dict[str, Path] | None = None

    def missing(self) -> list[Path]:
        return [folder for folder in self.folders if not folder.is_dir()]

    def find(self, key: str | None) -> Path | None:
        """A completed run folder of the configuration whose config_hash is `key`, or None."""
        if key is None or not self.folders:
            return None
        if self._index is None:
            self._index = {}
            for folder in self.folders:
                for run_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
                    if run_dir.name.startswith(".") or not run_dir.is_dir():
                        continue
                    record = read_record(run_dir / "metrics.json") or {}
                    if record.get("status") != "completed" or record.get("kind", "model") != "model":
                        continue
                    found = saved_config_hash(run_dir)
                    if found is not None:
                        self._index.setdefault(found, run_dir)
        return self._index.get(key)


def adopt(source: Path, cell: Cell, output_dir: Path, config: DictConfig) -> Path:
    """Copy the completed run `source` in as `cell`'s folder (which must not exist), with the cell's own `config`
    (of the same config hash) as its config.yaml; returns the new folder."""
    run_dir = output_dir / cell.id
    staging = output_dir / f".reuse-{cell.id}"
    with Claim(output_dir, cell.id) as claim:
        if not claim.try_acquire():
            raise ConfigError(f"{run_dir} is being written by another process (pid {claim.owner()}): nothing copied")
        if run_dir.exists():
            raise ConfigError(f"{run_dir} exists: move it aside before copying {source} in")
        shutil.rmtree(staging, ignore_errors=True)  # a copy a crash left half-made
        try:
            shutil.copytree(source, staging, copy_function=_link_or_copy,
                            ignore=shutil.ignore_patterns(".*"))
            if config_hash(config) != saved_config_hash(source):
                raise ConfigError(f"{source} holds another configuration than cell {cell.id}: nothing copied")
            # The cell's configuration, not the source's: the same hash, but the settings as this sweep spells them
            # (attention.head_dim=256 stays 256 rather than the null it equals), which the leaderboard's rows show.
            write_atomic(staging / "config.yaml", to_yaml(config))
            record = read_record(staging / "metrics.json")
            if record is None or record.get("status") != "completed":
                raise ConfigError(f"{source}/metrics.json is no longer a completed record: nothing copied")
            record["run_id"] = cell.id
            record["reused_from"] = str(source)
            write_json(staging / "metrics.json", record)
            # `attnbench explain`'s results belong to the run too; the leaderboard matches them by run_id.
            explained = read_record(staging / EXPLAIN)
            if explained is not None:
                explained["run_id"] = cell.id
                write_json(staging / EXPLAIN, explained)
            os.rename(staging, run_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return run_dir


def _link_or_copy(src: str, dst: str) -> None:
    """Hard link (checkpoints are large and read-only once written), else copy; files rewritten later are replaced
    atomically (write_atomic), so the source is never changed through a link."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
