"""A researcher's own attention variant, written outside attnbench (no import of its internals).

Used by the tests to prove that `attention=custom attention.impl=tests.custom_attention:GatedDot` trains
through the CLI and that `attnbench.testing.check_attention` accepts a correct custom class;
`FailsInTraining` crashes on purpose, to test that a failed run is recorded as failed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GatedDot(nn.Module):
    """Scaled dot-product attention with a learned temperature (log-parametrised, so it stays positive)."""

    description = "dot-product attention with a learned temperature (example custom variant)"

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0,
                 init_temperature: float = 1.0) -> None:
        super().__init__()
        if query_dim != key_dim:
            raise ValueError(f"GatedDot needs query_dim == key_dim, got {query_dim} and {key_dim}")
        self.log_temperature = nn.Parameter(torch.tensor(math.log(init_temperature)))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = value_dim

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = query @ key.transpose(-1, -2) / (math.sqrt(query.size(-1)) * self.log_temperature.exp())  # (B,Tq,Tk)
        keep = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
        if causal:
            keep = keep & torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        weights = F.softmax(scores.masked_fill(~keep, torch.finfo(scores.dtype).min), dim=-1)
        weights = torch.where(keep.any(-1, keepdim=True), weights, torch.zeros_like(weights))  # empty row -> 0
        out = self.dropout(weights) @ value  # (B, Tq, Dv)
        return out, weights.unsqueeze(1) if need_weights else None


class _MisbehavesInTraining(GatedDot):
    """Behaves until its third training call, then `misbehave`s: for testing how failed runs are recorded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += self.training
        out, weights = super().forward(*args, **kwargs)
        return self.misbehave(out, weights) if self.calls > 2 else (out, weights)

    def misbehave(self, out, weights):
        raise NotImplementedError


class FailsInTraining(_MisbehavesInTraining):
    """Raises on the third training step: a crashed run must leave status "failed" with this error."""

    description = "fails on purpose"

    def misbehave(self, out, weights):
        raise RuntimeError("injected failure in attention forward")


class NaNInTraining(_MisbehavesInTraining):
    """Returns NaN from the third training step on: the run must stop as failed, naming the NaN loss."""

    description = "turns NaN on purpose"

    def misbehave(self, out, weights):
        return out * float("nan"), weights


class SignalsInTraining(_MisbehavesInTraining):
    """Sends its own process `signum` (SIGTERM by default) at the third training step, as `kill` or a cluster's
    scheduler would: the run must stop, record itself as interrupted by that signal and exit 128 + signum."""

    description = "signals its own process on purpose"

    def __init__(self, *args, signum: int = 15, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.signum, self.sent = signum, False

    def misbehave(self, out, weights):
        import os

        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
        return out, weights
