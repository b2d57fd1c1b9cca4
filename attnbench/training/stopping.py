"""Validate where training stops, also when it stops mid-epoch.

Lightning validates at the end of an epoch (or every `val_check_interval`); a run that reaches
`trainer.max_steps` between two validations would end without a validation of its final weights, so early
stopping has no metric to read, no best checkpoint exists and the test has nothing to load. Asking the trainer
to stop at the last step makes Lightning run the validation loop right there (the path early stopping uses),
so the final weights are validated and checkpointed like any epoch's.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class ValidateAtMaxSteps(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
