"""Optimizer and learning-rate schedule shared by every task module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ConstantLR, LinearLR, SequentialLR


def configure_optimizer(params, optim: Mapping[str, Any], total_steps: int, fused: bool = True) -> dict:
    """AdamW, then a linear warm-up of `warmup_ratio * total_steps` followed by the chosen decay, stepped per batch.

    AdamW is the fused kernel where every parameter lives on a CPU or a CUDA device (one pass over each tensor
    instead of about ten elementwise ops): on this project's 2-core CPU the update of a 20k x 300 embedding table
    took 28 ms per step with the default implementation and 3 ms fused, which was half of an SST-2 BiLSTM step.
    fused=False keeps torch's default (for a gradient scaler that must unscale before clipping)."""
    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=optim["lr"], weight_decay=optim["weight_decay"], fused=fused and _fusable(params))
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


def _fusable(params: list) -> bool:
    """Whether torch's fused AdamW takes these parameters (a dict of param groups is left to the default)."""
    tensors = [p for p in params if isinstance(p, torch.Tensor)]
    return (len(tensors) == len(params) > 0 and len({p.device.type for p in tensors}) == 1
            and tensors[0].device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in tensors))
