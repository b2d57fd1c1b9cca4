"""The contract between the run pipeline and a task module: what `attnbench run` (training/run.py), resume
(training/resume.py), the attention-map callback (tracking/attention_maps.py) and the harness (perf/harness.py)
read from a task, written once.

A task family's LightningModule subclasses `TaskModule`. The base owns the hooks every family shares (the
optimizer and schedule, the training-token tally summed over ranks at the end, the loss trace); a family writes
its steps and the four methods below. What the pipeline reads:

  model                  the nn.Module (torch.compile wraps it; the harness trains it directly)
  train_tokens           (,) long buffer: real tokens trained on, summed on the device (tokens/s); summed over ranks
                         in on_train_end; saved and restored by resume
  loss_trace             LossTrace: first/last training losses for metrics.json `train`; saved and restored by resume
  train_loss_summary()   {"loss_start", "loss_end"} from the loss trace
  predictions()          test predictions [{id, prediction, gold}] by example id, after trainer.test (plus
                         `references` where an example has several: families.prediction_row)
  metric_signatures()    {metric: how it was computed} for metrics.json provenance
  probe_maps(batch, ex)  the attention maps of the probe examples (tracking/attention_maps.py)
  special / label_smoothing   (seq2seq) what the harness's plain loop needs to compute the same loss

Logged names: train/loss per step; val/<metric> (and val_slice/<metric> for decoded seq2seq metrics) per
validation; test/<metric> after the test. `task.monitor` names one of them (config.monitor_key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from attnbench.tasks.distributed import sum_over_ranks
from attnbench.tasks.loss_trace import LossTrace
from attnbench.tasks.optim import configure_optimizer
from attnbench.tasks.probes import ProbeMaps


class TaskModule(pl.LightningModule):
    """Base of every task family's LightningModule (see the module docstring for what the pipeline reads)."""

    def __init__(self, model: nn.Module, *, optim: Mapping[str, Any], loss_window: int = 10) -> None:
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        # Summed on the device; read once after training, so the step never waits for the host.
        self.register_buffer("train_tokens", torch.zeros((), dtype=torch.long), persistent=False)
        self.loss_trace = LossTrace(loss_window)

    def record_step(self, loss: torch.Tensor, tokens: torch.Tensor, batch_size: int) -> None:
        """The training step's bookkeeping: token tally, loss trace, the logged train/loss."""
        self.train_tokens += tokens
        self.loss_trace.add(loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)

    def on_train_end(self) -> None:
        self.train_tokens = sum_over_ranks(self, self.train_tokens)

    def train_loss_summary(self) -> dict[str, float]:
        return self.loss_trace.summary()

    def configure_optimizers(self):
        # 16-mixed's gradient scaler unscales inside a fused step, after clipping would have seen scaled gradients.
        return configure_optimizer(self.parameters(), self.optim, self.trainer.estimated_stepping_batches,
                                   fused=not _scales_gradients(self.trainer.precision))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip by norm ourselves unless a gradient scaler is in play: Lightning's mixed-precision plugin refuses to
        clip for any optimizer that could unscale internally (the fused AdamW), bf16 included, where nothing is
        scaled. The same call Lightning makes (clip_grad_norm_ over the parameters), so the training is unchanged."""
        if _scales_gradients(self.trainer.precision) or (gradient_clip_algorithm not in (None, "norm")):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        if gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)

    # ---- what each family writes ----------------------------------------------------------------------------

    def predictions(self) -> list[dict[str, Any]]:
        """Test predictions of every rank as {id, prediction, gold}, sorted by example id."""
        raise NotImplementedError

    def metric_signatures(self) -> dict[str, str]:
        """How each reported metric was computed (library, version, settings)."""
        raise NotImplementedError

    def probe_maps(self, batch: dict[str, torch.Tensor], examples: list[dict[str, Any]]) -> list[ProbeMaps]:
        """Every attention map of the probe examples, for tracking/attention_maps.py."""
        raise NotImplementedError


def _scales_gradients(precision: str) -> bool:
    """Whether Lightning trains this precision with a gradient scaler (fp16 mixed precision)."""
    return str(precision) in ("16-mixed", "16")
