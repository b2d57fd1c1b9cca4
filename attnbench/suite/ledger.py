"""What a sweep knows of its cells: each cell's state on disk, the ledger of attempts, and moving old folders aside.

A cell's run record lives at <output_dir>/<cell id>/ and is the truth about it (see suite/sweep.py); the ledger
(<output_dir>/.sweep/<name>.json) keeps each cell's history: attempts, times, errors, log file.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from attnbench.config import config_hash, load_config
from attnbench.errors import ConfigError
from attnbench.suite.reuse import Reusable, adopt
from attnbench.suite.spec import Cell
from attnbench.training.checkpointing import LAST, resumable_checkpoint
from attnbench.tracking.claim import Claim, held_elsewhere
from attnbench.tracking.record import now, read_record, saved_config_hash, write_json


# ----------------------------------------------------------------------------------------------- status


@dataclass
class CellStatus:
    cell: Cell
    state: str  # done | live | missing | failed | interrupted | changed | reusable
    reason: str
    resumable: bool = False  # interrupted with checkpoints/last.ckpt: continued with resume=auto
    source: Path | None = None  # reusable: the completed run of the same configuration in a `reuse:` folder

    @property
    def pending(self) -> bool:
        """To be run by this sweep: not done, and not being written by another process (live)."""
        return self.state not in ("done", "live")


def cell_status(cell: Cell, output_dir: Path, ledger: dict, expected_hash: str | None = None,
                reusable: Reusable | None = None) -> CellStatus:
    """The cell's state on disk; `expected_hash` is its config hash when already known (Spec.hashes). A cell that
    would be trained from scratch is "reusable" instead when `reusable` (the spec's `reuse:` folders) holds a
    completed run of its configuration."""
    if reusable is not None and expected_hash is None:  # needed either way: composed once
        expected_hash = config_hash(load_config(list(cell.overrides)))
    status = _disk_status(cell, output_dir, ledger, expected_hash)
    if reusable is None or not status.pending:
        return status
    source = reusable.find(expected_hash)
    if source is None:
        return status
    return CellStatus(cell, "reusable", f"{status.reason}; the same configuration completed in {source}: copied, "
                      "not trained again", source=source)


def _disk_status(cell: Cell, output_dir: Path, ledger: dict, expected_hash: str | None) -> CellStatus:
    run_dir = output_dir / cell.id
    record_path = run_dir / "metrics.json"
    owner = held_elsewhere(output_dir, cell.id)
    if owner is not None:
        return CellStatus(cell, "live", f"being written by another process (pid {owner}) now; left alone: run the "
                          "sweep again once it has finished")
    if not run_dir.exists():
        return CellStatus(cell, "missing", "no run folder yet")
    expected = expected_hash or config_hash(load_config(list(cell.overrides)))
    if saved_config_hash(run_dir) != expected:
        return CellStatus(cell, "changed", "its folder holds another configuration (the spec changed); running again")
    record = read_record(record_path)
    status, error = (record or {}).get("status"), (record or {}).get("error") or ""
    if status == "completed":
        return CellStatus(cell, "done", f"completed ({record_path})")
    if status == "failed" and not error.startswith("interrupted"):
        return CellStatus(cell, "failed", f"last attempt failed: {error or 'no error recorded'}")
    attempts = ledger.get(cell.id, {}).get("attempts", 0)
    how = "interrupted" if status == "failed" else "stopped without a record"
    # A torn or damaged checkpoint (a full disk, a kill mid-write) is passed over for an older good one; with none
    # good, the cell starts over (its folder moved aside) instead of failing on it again and again.
    checkpoint = resumable_checkpoint(run_dir)
    if checkpoint is None:
        then = "no usable checkpoint, starting over"
    elif checkpoint.name == LAST:
        then = "resuming from its last checkpoint"
    else:
        then = f"resuming from {checkpoint.name} (checkpoints/{LAST} is missing or damaged)"
    return CellStatus(cell, "interrupted", f"attempt {attempts} {how}; {then}", resumable=checkpoint is not None)


# ----------------------------------------------------------------------------------------------- ledger


class Ledger:
    """<output_dir>/.sweep/<name>.json: per cell attempts, state, times, error and log; one writer (the sweep)."""

    def __init__(self, output_dir: Path, name: str):
        self.dir = output_dir / ".sweep"
        self.name = name
        self.path = self.dir / f"{name}.json"
        # One lock per output folder, not per spec: two specs writing one folder would move each other's cells.
        self.lock_path = self.dir / "sweep.lock"
        self.logs = self.dir / "logs" / name
        self.cells: dict[str, dict] = {}
        self._lock_file = None
        self._mutex = threading.Lock()

    def read(self) -> dict[str, dict]:
        record = read_record(self.path) or {}
        self.cells = record.get("cells", {}) if isinstance(record.get("cells"), dict) else {}
        return self.cells

    def acquire(self) -> None:
        """One sweep per output folder at a time: a second one (of this spec or another) would run cells twice or
        move the first one's live cells aside."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.lock_path, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "pid unknown"
            self._lock_file.close()
            raise ConfigError(f"another sweep is already running into {self.dir.parent} ({owner}): wait for it to "
                              "finish, or give this spec another output_dir") from None
        self._lock_file.truncate(0)
        self._lock_file.write(f"sweep {self.name}, pid {os.getpid()}")
        self._lock_file.flush()

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def update(self, cell_id: str, **fields: Any) -> None:
        with self._mutex:
            self.cells.setdefault(cell_id, {}).update(fields)
            write_json(self.path, {"cells": self.cells})


def archive(run_dir: Path, output_dir: Path) -> Path:
    """Move an unfinished or outdated run folder out of the records, keeping it for inspection; never one that a
    live process is writing (it holds the folder's claim, which the move holds too)."""
    with Claim(output_dir, run_dir.name) as claim:
        if not claim.try_acquire():
            raise ConfigError(f"{run_dir} is being written by another process (pid {claim.owner()}): not moved; "
                              "run the sweep again once it has finished")
        attempts = output_dir / ".attempts"
        attempts.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            target = attempts / f"{run_dir.name}.{n}"
            if not target.exists():
                shutil.move(str(run_dir), str(target))
                return target
    raise AssertionError("unreachable")


def take_reused(status: CellStatus, config: DictConfig, output_dir: Path, ledger: Ledger, say) -> str | None:
    """A "reusable" cell (of configuration `config`): its own earlier attempt moved aside, the completed run of the
    same configuration copied in (suite/reuse.py) and the ledger told; returns the error, or None."""
    cell, run_dir = status.cell, output_dir / status.cell.id
    assert status.source is not None
    try:
        if run_dir.exists():
            say(f"  {cell.id}: previous attempt ({status.reason.split(';')[0]}) moved to {archive(run_dir, output_dir)}")
        adopt(status.source, cell, output_dir, config)
    except (ConfigError, OSError) as err:
        say(f"  failed {cell.id}: {err}")
        ledger.update(cell.id, state="failed", finished_at=now(), error=str(err))
        return str(err)
    ledger.update(cell.id, state="done", finished_at=now(), error=None, reused_from=str(status.source))
    say(f"  reused {cell.id}: copied from {status.source}")
    return None
