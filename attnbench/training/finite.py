"""Stop a run whose training loss stops being finite, instead of training on NaN to the end or recording it as
completed."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn


class FiniteLoss(pl.Callback):
    """Notes the first step whose training loss is NaN/inf in a device tensor (no host sync in the step) and reads
    it where the host waits anyway: every `every` steps (when Lightning reads the loss for logging), before every
    validation (so no checkpoint of a diverged model is kept) and at the end of training (so a run shorter than
    `every` steps is checked too). A non-finite loss raises, and the run is recorded as failed with the step."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self._first_bad: torch.Tensor | None = None  # step of the first non-finite loss; -1: none so far

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss.detach()).all()
        self._first_bad.masked_fill_(bad & (self._first_bad < 0), trainer.global_step)
        if trainer.global_step % self.every == 0:
            self.check()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # validation inside fit, not the final trainer.validate()
            self.check()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()

    def check(self) -> None:
        if self._first_bad is None:
            return
        step = int(self._first_bad.item())
        if step >= 0:
            raise FloatingPointError(
                f"training loss became non-finite (NaN/inf) at step {step}: lower optim.lr, keep "
                "trainer.gradient_clip_val on, or use trainer.precision=32-true; the run stopped"
            )
