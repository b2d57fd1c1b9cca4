"""Signals that stop a run: each becomes an exception, so the run records itself as interrupted and the process
exits 128 + the signal's number (the shell's convention), never 0.

Lightning turns Ctrl-C during fit into a graceful shutdown and `SystemExit(1)`, and SIGTERM into a
`SIGTERMException`, a `SystemExit` without a code; neither says which signal it was, so the handler notes it here
first. Lightning's own SIGTERM handler calls the one installed before it, so this one runs inside fit too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Iterator

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Raised by the handler; a KeyboardInterrupt, so Lightning shuts down as it does for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Turn the stopping signals into `Interrupted` inside the block (main thread); the previous handlers after."""
    _received.clear()
    previous = {signum: signal.signal(signum, _handler) for signum in STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _handler(signum: int, frame) -> None:
    if _received:  # a second signal while the first is being handled: let the record be written
        return
    _received.append(signum)
    raise Interrupted(signum)


def received() -> int | None:
    """The first stopping signal received in the current handling() block, or None."""
    return _received[0] if _received else None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold the stopping signals back while a record is written; one that arrived meanwhile is handled after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def name(signum: int) -> str:
    return signal.Signals(signum).name


def describe(signum: int) -> str:
    return f"{name(signum)} (signal {signum})"


def exit_code(signum: int) -> int:
    return 128 + signum


PARENT_ENV = "ATTNBENCH_SWEEP_PID"


def die_with_parent() -> None:
    """In a cell process: ask Linux to kill us when the sweep that started us dies (no orphan that would write
    into a folder the next sweep moves aside). SIGKILL, not SIGTERM: Lightning catches SIGTERM and may finish."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return
    # The sweep stops its cells with SIGINT; a cell inherits an ignored SIGINT from a backgrounded sweep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the sweep died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
