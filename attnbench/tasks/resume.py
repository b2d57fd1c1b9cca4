"""What a checkpoint must carry beyond Lightning's own state so that a resumed run continues exactly where the
interrupted one stopped: the random number generators (dropout, data loader seeds) and the task's running
tallies (training tokens for tokens/s, the loss trace of metrics.json)."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch

KEY = "attnbench"


class ResumableState(pl.Callback):
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[KEY] = {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # Plain types only: checkpoints are read with torch.load(weights_only=True).
            "numpy_rng": _numpy_state(),
            "python_rng": random.getstate(),
            "train_tokens": int(pl_module.train_tokens),
            "loss_trace": pl_module.loss_trace.state_dict(),
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get(KEY)
        if state is None or not trainer.training:  # loading the best weights for test/validate restores nothing
            return
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        name, keys, pos, has_gauss, gauss = state["numpy_rng"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        random.setstate(state["python_rng"])
        pl_module.train_tokens.fill_(state["train_tokens"])
        pl_module.loss_trace.load_state_dict(state["loss_trace"])


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return name, keys.tolist(), int(pos), int(has_gauss), float(gauss)
