"""Stop a run whose training loss stops being finite, instead of training on NaN to the end."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class FiniteLoss(pl.Callback):
    """Checks the training loss every `every` steps: the steps at which Lightning reads the loss for logging
    anyway, so the check adds no host-device sync of its own. A NaN/inf loss raises, and the run is recorded
    as failed with the step and what to try."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss.detach()).item():
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {trainer.global_step}: lower optim.lr, keep "
                "trainer.gradient_clip_val on, or use trainer.precision=32-true; the run stopped"
            )
