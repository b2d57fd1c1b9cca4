"""Checkpoints that survive a full disk, a kill mid-write and a late kill, and the choice of the one to resume from.

Writing. `AtomicCheckpointIO` writes every checkpoint the way the run record's files are written
(tracking/record.py `write_atomic`): to a temp file in the same folder, fsync'd, then renamed over the old file.
Lightning's own writer truncates the target and writes into it, so a full disk or a kill mid-write left a torn
file in place of the last good one. A full disk is a ResourceError naming the fix.

`LastCheckpoint` writes checkpoints/last.ckpt after every validation. Lightning's `save_last=True` rewrites it
only at a step where a top-k checkpoint was saved (ModelCheckpoint.on_validation_end: `_last_global_step_saved ==
trainer.global_step`), that is when the monitored metric improved, so a run killed late would redo every epoch
since its best one.

Reading. `checkpoint_problem` says why a file cannot be resumed from; `resumable_checkpoint` picks the checkpoint
a resume continues from (what a sweep asks to decide whether a cell is resumable); `resume_checkpoint` is the
same for `attnbench run resume=...`, reporting damaged files instead of passing them to torch.load.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.plugins import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_only

from attnbench.errors import ConfigError, ResourceError
from attnbench.tracking.record import write_atomic

LAST = "last.ckpt"
# What a checkpoint needs to continue training, beyond the weights (Lightning's weights-only files lack them).
TRAINING_STATE = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks", "global_step")


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves replace the old file in one step, or not at all."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        # Serialized in memory first (as Lightning's own writer does): a failing write is then an OSError with
        # its errno, not torch's zip writer's RuntimeError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        try:
            write_atomic(path, buffer.getvalue())
        except ResourceError:
            raise ResourceError(
                f"no space left on the device writing the checkpoint {path} (the previous checkpoints are intact): "
                f"free disk space and continue with resume=auto, or pass output_dir=<a folder on another disk>"
            ) from None


class LastCheckpoint(Checkpoint):
    """`<dirpath>/last.ckpt` after every validation during fit: where a killed run continues.

    A `Checkpoint` so that Lightning calls it after every other callback (callback_connector._reorder_callbacks,
    keeping the order among checkpoint callbacks): the state it saves then includes this validation's update of
    ModelCheckpoint (the best path) and of early stopping, provided both act at validation end too
    (`save_on_train_epoch_end=False`, `check_on_train_epoch_end=False`; with one validation an epoch they would
    otherwise act after it, at the epoch's end, which a run resumed from this checkpoint never replays). Listed
    after the ModelCheckpoint, which stays `trainer.checkpoint_callback`.
    """

    def __init__(self, dirpath: Path) -> None:
        self.path = Path(dirpath) / LAST

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path)


def checkpoint_problem(path: Path) -> str | None:
    """Why training cannot resume from the checkpoint at `path`, in a few words; None when it can.

    Two passes, each cheap next to the resume itself: zipfile checks the archive (a torch checkpoint is a zip
    file whose central directory comes last, so a truncated write loses it) and every member's CRC-32, in one
    sequential read; then torch.load with mmap=True and weights_only=True (as Lightning loads it) unpickles the
    structure without copying tensor data, and its keys show whether it holds the whole training state.
    """
    try:
        if not zipfile.is_zipfile(path):
            return "truncated or not a checkpoint (no zip archive)"
        with zipfile.ZipFile(path) as archive:
            torn = archive.testzip()
        if torn is not None:
            return f"damaged ({torn} fails its CRC check)"
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # whatever stops it loading (zip, pickle, torch errors) makes it unusable
        lines = str(err).strip().splitlines()
        return f"unreadable ({type(err).__name__}{': ' + lines[0] if lines else ''})"
    if not isinstance(checkpoint, dict):
        return "not a Lightning checkpoint"
    missing = [key for key in TRAINING_STATE if key not in checkpoint]
    return f"no training state (missing {', '.join(missing)})" if missing else None


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoint files in the order a resume tries them: last.ckpt, then the others newest first."""
    folder = Path(run_dir) / "checkpoints"
    others = [p for p in folder.glob("*.ckpt") if p.name != LAST and p.is_file()]
    last = [folder / LAST] if (folder / LAST).is_file() else []
    return last + sorted(others, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def resumable_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a resume of `run_dir` continues from: a good last.ckpt, else the newest good other one
    (best-*.ckpt holds the whole training state too), else None. Never raises over a damaged file."""
    return next((path for path in checkpoints(run_dir) if checkpoint_problem(path) is None), None)


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `attnbench run resume=...` continues `run_dir` from; None when it has none yet (it starts over).

    A damaged last.ckpt with a good older checkpoint: a warning, and the older one. Checkpoints that are all
    damaged: a ConfigError naming them and the fix. Temp files a kill left mid-write are removed.
    """
    folder = Path(run_dir) / "checkpoints"
    for leftover in folder.glob(".*.ckpt.*.tmp"):
        leftover.unlink(missing_ok=True)
    problems: list[str] = []
    for path in checkpoints(run_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            if problems and rank_zero_only.rank == 0:
                print(f"attnbench: warning: skipping damaged checkpoints ({'; '.join(problems)}): resuming from "
                      f"{path.name}, so the steps after it are trained again", file=sys.stderr)
            return path
        problems.append(f"{path.name}: {problem}")
    if problems:
        raise ConfigError(f"cannot resume {run_dir}: every checkpoint is damaged ({'; '.join(problems)}): remove "
                          f"{folder} to train this run again from the start (resume=auto then starts over in place)")
    return None
