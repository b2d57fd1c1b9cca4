"""Optimizer and learning-rate schedule shared by every task module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ConstantLR, LinearLR, SequentialLR


def configure_optimizer(params, optim: Mapping[str, Any], total_steps: int) -> dict:
    """AdamW, then a linear warm-up of `warmup_ratio * total_steps` followed by the chosen decay, stepped per batch."""
    optimizer = torch.optim.AdamW(params, lr=optim["lr"], weight_decay=optim["weight_decay"])
    total_steps = max(1, int(total_steps))
    warmup = int(optim["warmup_ratio"] * total_steps)
    rest = max(1, total_steps - warmup)
    decay = {
        "constant": lambda: ConstantLR(optimizer, factor=1.0, total_iters=rest),
        "linear": lambda: LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=rest),
        "cosine": lambda: CosineAnnealingLR(optimizer, T_max=rest),
    }[optim["scheduler"]]()
    if warmup:
        scheduler = SequentialLR(
            optimizer, [LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup), decay], milestones=[warmup]
        )
    else:
        scheduler = decay
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
