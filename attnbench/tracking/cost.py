"""What a run costs: training time apart from evaluation time, and the training peak of memory apart from the
evaluation peak.

Training time is the time of the training steps, data loading included. The clock runs from `on_train_start` to
`on_train_end` and is paused from the start of each validation until training resumes (the next epoch or
training batch starts), so per-epoch validation (greedy decoding, attention maps) and the checkpoint writing
that follows it are counted as validation, never as training. `clock()` is looked up at every reading, so a test
can replace it with a fake clock.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


def clock() -> float:
    return time.perf_counter()


class CostClock(pl.Callback):
    """Seconds spent training and validating during fit, across resumed attempts (its state is checkpointed)."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.validation_seconds = 0.0
        self._training_since: float | None = None
        self._validating_since: float | None = None

    def _stop_validation(self) -> None:
        if self._validating_since is not None:
            self.validation_seconds += clock() - self._validating_since
            self._validating_since = None

    def _start_training(self) -> None:
        self._stop_validation()
        if self._training_since is None:
            self._training_since = clock()

    def _stop_training(self) -> None:
        if self._training_since is not None:
            self.train_seconds += clock() - self._training_since
            self._training_since = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_training()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_training()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start_training()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:  # before training starts: neither training nor a model-selection pass
            return
        self._stop_training()
        if self._validating_since is None:
            self._validating_since = clock()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_training()
        self._stop_validation()

    def state_dict(self) -> dict[str, float]:
        return {"train_seconds": self.train_seconds, "validation_seconds": self.validation_seconds}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.train_seconds = float(state_dict["train_seconds"])
        self.validation_seconds = float(state_dict["validation_seconds"])


class Timed:
    """`with Timed() as t: ...` then `t.seconds`, read from the same replaceable `clock()`."""

    def __enter__(self) -> "Timed":
        self.seconds = 0.0
        self._start = clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = clock() - self._start


# ---- peak memory ---------------------------------------------------------------------------------------------

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakMemory:
    """The peak memory of one phase (training, evaluation): reset at its start, read at its end.

    On a GPU: torch's peak of allocated CUDA memory (`max_memory_allocated`, reset with
    `reset_peak_memory_stats`). On a CPU under Linux: the process's peak resident set (`VmHWM`), which writing
    5 to /proc/self/clear_refs resets; it includes the Python process, libraries and loaded data, not the model
    alone. Elsewhere the lifetime peak (`ru_maxrss`), which cannot be reset, and `kind` says so.
    """

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu and torch.cuda.is_available()
        self.resettable = self.gpu or _clear_refs_works()

    @property
    def kind(self) -> str:
        if self.gpu:
            return "cuda max_memory_allocated"
        if self.resettable:
            return "process peak RSS (VmHWM)"
        return "process lifetime peak RSS (ru_maxrss; cannot be reset here)"

    def reset(self) -> None:
        if self.gpu:
            torch.cuda.reset_peak_memory_stats()
        elif self.resettable:
            _CLEAR_REFS.write_text("5")

    def read_mb(self) -> float:
        if self.gpu:
            return torch.cuda.max_memory_allocated() / 2**20
        if self.resettable:
            match = re.search(r"VmHWM:\s+(\d+)\s*kB", _STATUS.read_text())
            if match:
                return int(match.group(1)) / 1024
        import resource  # here: a Unix-only module, and only this fallback needs it

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _clear_refs_works() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return "VmHWM" in _STATUS.read_text()
    except OSError:
        return False


class TrainingPeak(pl.Callback):
    """Resets the peak when training starts and reads it when training ends (validation during fit included)."""

    def __init__(self, memory: PeakMemory) -> None:
        self.memory = memory
        self.peak_mb: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.memory.reset()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.peak_mb = self.memory.read_mb()
