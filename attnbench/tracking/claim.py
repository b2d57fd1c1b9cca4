"""Exclusive claims on run folders: while a process writes <output_dir>/<run_id>/, it holds an flock on
<output_dir>/.locks/<run_id>.lock, so no other run resumes into the folder and no sweep moves it aside.

The claim is taken before the folder is created (or resumed) and held until the run ends; the kernel releases it
when the process ends, however it ends (SIGKILL included), so a stale claim cannot exist: a lock file a killed
process leaves is free to take. A release removes the lock file (and an empty .locks/). The lock file holds the
owner's pid, for messages only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCKS = ".locks"


class Claim:
    def __init__(self, output_dir: Path, run_id: str) -> None:
        self.path = Path(output_dir) / LOCKS / f"{run_id}.lock"
        self._file = None

    def try_acquire(self) -> bool:
        """Take the claim if no other process holds it; True when this process now holds it."""
        if self._file is not None:
            return True
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle = open(self.path, "a+")
            except FileNotFoundError:  # .locks/ removed by a releasing holder meanwhile
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            # A holder releasing meanwhile unlinks the file it locked: then this lock is on a file no one else
            # sees, and the claim is taken again on the current one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    def owner(self) -> str:
        """The pid of the process holding the claim (as far as its lock file says)."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        """Give the claim up and remove its lock file (and .locks/ when it is empty): nothing is left behind."""
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no one holds a lock on a file being removed
        try:
            self.path.parent.rmdir()
        except OSError:  # other claims live there
            pass
        self._file.close()
        self._file = None

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def held_elsewhere(output_dir: Path, run_id: str) -> str | None:
    """The pid of another process writing <output_dir>/<run_id> now, or None when no one is."""
    claim = Claim(output_dir, run_id)
    if not claim.path.exists():
        return None
    if claim.try_acquire():
        claim.release()
        return None
    return claim.owner()
