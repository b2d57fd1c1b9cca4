"""The learning history a run record keeps (metrics.json "history"), so learning curves need no W&B access.

One entry per validation during fit (the sanity check and the final test/validate passes are not entries):

    {"step": global step, "epoch": epoch, "train_seconds": training seconds so far (the cost clock's: training
     steps only, across resumed attempts), "train_loss": mean training loss of the steps since the previous entry
     (None when none ran), "metrics": {"val/loss": ..., "val/<metric>": ..., "val_slice/<metric>": ...}}

The training losses are summed on the device and read once per validation, so the step never waits for the host.
The entries are checkpointed with the other callback states: a resumed run keeps the entries of its earlier
attempts, and a validation it redoes (same step) replaces the entry instead of adding one. Non-finite values are
written as null (the record is strict JSON).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from attnbench.config import VAL_SLICE
from attnbench.tracking.cost import CostClock

PREFIXES = ("val/", f"{VAL_SLICE}/")  # the logged keys an entry keeps


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class LearningHistory(pl.Callback):
    def __init__(self, clock: CostClock) -> None:
        self.clock = clock
        self.entries: list[dict[str, Any]] = []
        self._loss_sum: torch.Tensor | None = None
        self._losses = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._losses += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = {key: _finite(float(value)) for key, value in sorted(trainer.callback_metrics.items())
                   if key.startswith(PREFIXES) and isinstance(value, (torch.Tensor, float, int)) and
                   (not isinstance(value, torch.Tensor) or value.numel() == 1)}
        train_loss = _finite(float(self._loss_sum) / self._losses) if self._losses else None
        entry = {"step": int(trainer.global_step), "epoch": int(trainer.current_epoch),
                 "train_seconds": round(self.clock.train_seconds, 3), "train_loss": train_loss, "metrics": metrics}
        self.entries = [e for e in self.entries if e["step"] != entry["step"]] + [entry]
        self._loss_sum, self._losses = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {"entries": self.entries}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.entries = list(state_dict.get("entries", []))
