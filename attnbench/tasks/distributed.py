"""What a task module needs when Lightning runs it on several processes (DDP): every rank evaluates its shard of
the examples, so per-example outputs are gathered and sums are reduced before anything is scored or logged."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...]; [obj] in a single process."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_dict(local: dict) -> dict:
    """The union of every rank's {example id: output} (ids are disjoint: each example is on one rank)."""
    merged: dict = {}
    for part in gather_objects(local):
        merged.update(part)
    return merged


def sum_over_ranks(module, tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over ranks (the tensor itself on one process)."""
    if world_size() == 1:
        return tensor
    return module.trainer.strategy.reduce(tensor.clone(), reduce_op="sum")
