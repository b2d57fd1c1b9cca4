"""W&B's run file (`run-<id>.wandb` in the run's folder): its records, and waiting until a finished run's file is
whole. `run.finish()` can return before wandb-core's writer has flushed the file (measured: 7 bytes, the header
alone, right after the first run of a process finished; whole about half a second later), so a step that reads the
file, `wandb sync` started right after, or a process that exits at once could see an empty run.

The file is W&B's record log: a 7-byte header, then 32 KiB blocks of chunks (crc 4 bytes, length 2, type 1: full,
2: first, 3: middle, 4: last), each whole record a `wandb_internal_pb2.Record`; a finished run's last is `exit`."""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path
from typing import Any

from attnbench.errors import ResourceError

HEADER, BLOCK, CHUNK_HEAD = 7, 32768, 7


def run_file(run: Any) -> Path:
    """Where a live run's record log is (its folder is the parent of `run.dir`, the run's files folder)."""
    return Path(run.dir).parent / f"run-{run.id}.wandb"


def run_records(path: Path) -> list[Any]:
    """The whole records of a run file, in order (a record cut off at the end of a partly written file is left out)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, parts, records = path.read_bytes(), HEADER, b"", []
    while pos + CHUNK_HEAD <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, chunk_type = struct.unpack("<IHB", data[pos:pos + CHUNK_HEAD]) if left >= CHUNK_HEAD else (0, 0, 0)
        if left < CHUNK_HEAD or (length == 0 and chunk_type == 0):  # a block's padding
            pos += left
            continue
        if pos + CHUNK_HEAD + length > len(data):  # still being written
            break
        chunk, pos = data[pos + CHUNK_HEAD:pos + CHUNK_HEAD + length], pos + CHUNK_HEAD + length
        parts = chunk if chunk_type in (1, 2) else parts + chunk
        if chunk_type in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def finish_and_wait(run: Any, exit_code: int | None = None, *, strict: bool = True, timeout: float = 60.0,
                    poll: float = 0.05) -> None:
    """`run.finish(exit_code)`, then wait until its run file holds the `exit` record: whatever reads the file next (a
    test, `wandb sync`, the user) sees the whole run. A file that is not whole after `timeout` seconds is an error
    naming it (`strict`), else a warning (a training run whose record is already written)."""
    path, disabled = run_file(run), bool(getattr(run, "disabled", False))
    run.finish(exit_code=exit_code)
    if disabled:
        return
    deadline = time.monotonic() + timeout
    while not _has_exit(path):
        if time.monotonic() > deadline:
            message = (f"W&B did not finish writing {path} within {timeout:.0f} s: check the disk and "
                       f"{path.parent / 'logs'}")
            if strict:
                raise ResourceError(f"{message}, then rerun")
            warnings.warn(message, stacklevel=2)
            return
        time.sleep(poll)


def _has_exit(path: Path) -> bool:
    try:
        return any(record.WhichOneof("record_type") == "exit" for record in run_records(path))
    except (OSError, ValueError):  # not there yet, or a record half written
        return False
