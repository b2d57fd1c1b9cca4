"""What a checkpoint must carry beyond Lightning's own state so that a resumed run continues exactly where the
interrupted one stopped: the random number generators (dropout), the task's running tallies (training tokens for
tokens/s, the loss trace of metrics.json) and the train loader's place in the epoch.

The loader's place is in Lightning's state too (the fit loop's `combined_loader`), but Lightning drops it on resume
when `configure_optimizers` reads `trainer.estimated_stepping_batches`, as our tasks do for the schedule: that sets
the train loader up before the checkpoint is restored, and the fit loop then never loads the saved state
(Lightning issue #20550). So it travels here as well, and goes back into the loader when training starts.
"""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch

from attnbench.data.batching import ResumableLoader

KEY = "attnbench"


class ResumableState(pl.Callback):
    """Under DDP every rank has its own RNG states (its batches draw different amounts of dropout noise) and its
    own token count (summed at the end): the checkpoint keeps one entry per rank, gathered when it is saved (every
    rank takes part in a save), and each rank restores its own."""

    def __init__(self) -> None:
        self._loader_state: dict | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        loader = trainer.train_dataloader
        local = {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # Plain types only: checkpoints are read with torch.load(weights_only=True).
            "numpy_rng": _numpy_state(),
            "python_rng": random.getstate(),
            "train_tokens": int(pl_module.train_tokens),
            "loss_trace": pl_module.loss_trace.state_dict(),
        }
        checkpoint[KEY] = {
            "ranks": _gather(trainer, local),
            "train_loader": loader.state_dict() if isinstance(loader, ResumableLoader) else None,
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get(KEY)
        if state is None or not trainer.training:  # loading the best weights for test/validate restores nothing
            return
        ranks = state.get("ranks") or [state]  # checkpoints from before per-rank states hold one, at the top
        mine = ranks[trainer.global_rank] if trainer.global_rank < len(ranks) else ranks[0]
        torch.set_rng_state(mine["torch_rng"])
        if mine["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(mine["cuda_rng"])
        name, keys, pos, has_gauss, gauss = mine["numpy_rng"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        random.setstate(mine["python_rng"])
        pl_module.train_tokens.fill_(mine["train_tokens"])
        pl_module.loss_trace.load_state_dict(mine["loss_trace"])
        self._loader_state = state.get("train_loader")  # the same on every rank (batching.ResumableLoader)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the fit loop made the train loader (and its lazy iterator), before the first batch.
        loader = trainer.train_dataloader
        if self._loader_state is not None and isinstance(loader, ResumableLoader):
            loader.load_state_dict(self._loader_state)
        self._loader_state = None


def _gather(trainer: pl.Trainer, local: dict) -> list[dict]:
    """Every rank's `local`, in rank order (a collective: all ranks call it together)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return [local]
    states: list[dict | None] = [None] * trainer.world_size
    torch.distributed.all_gather_object(states, local)
    return states


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return name, keys.tolist(), int(pos), int(has_gauss), float(gauss)
