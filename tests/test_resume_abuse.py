"""Resume promises under abuse: a checkpoint write that fails (full disk) leaves the previous checkpoint whole and says
how to go on; a damaged checkpoint is skipped for an older good one, or refused in one line with the fix; a run
killed at any point after a checkpoint, mid-epoch included, resumes to exactly the metrics of an uninterrupted run;
last.ckpt follows every validation, not only the improving ones."""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import attnbench.training.run
from attnbench.cli import main
from attnbench.data.batching import BucketBatchSampler, ResumableLoader
from attnbench.errors import ResourceError
from attnbench.training.checkpointing import AtomicCheckpointIO, checkpoint_problem, resumable_checkpoint
from tests.helpers import assert_same_run, record

# 400 examples in batches of 32: 13 batches an epoch. val_check_interval=0.5 validates (and checkpoints) after
# batches 6 and 12 of each epoch: at steps 6, 12, 19 and 25, all mid-epoch; training ends at step 26.
VALIDATIONS = [6, 12, 19, 25]


def tiny(data_dir: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["run", f"data_dir={data_dir}", f"cache_dir={cache}", f"output_dir={out}", "task.limits.train=400",
            "task.limits.validation=64", "task.limits.test=96", "task.probes=0", "trainer.max_epochs=2",
            "trainer.batch_size=32", "trainer.val_check_interval=0.5", "model.embed_dim=24", "model.hidden_dim=16",
            "model.dropout=0.3", "trainer.deterministic=true", "trainer.enable_progress_bar=false",
            "wandb.mode=disabled", "trainer.early_stopping_patience=0", "seed=5", "optim.lr=3e-3", *extra]


def global_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def uninterrupted(data_dir, cache, tmp_path_factory):
    """The uninterrupted run of tiny(..., *overrides), made once per module: what an interrupted one must match."""
    runs: dict[tuple[str, ...], Path] = {}

    def run(*overrides: str) -> Path:
        if overrides not in runs:
            out = tmp_path_factory.mktemp("whole")
            assert main([*tiny(data_dir, cache, out, *overrides), "run_id=whole"]) == 0
            runs[overrides] = out / "whole"
        return runs[overrides]

    return run


@pytest.fixture
def whole(uninterrupted) -> Path:
    return uninterrupted()


class Stop(Exception):
    """An in-process interruption (tests that damage files afterwards need no real kill)."""


def with_callback(monkeypatch, callback: pl.Callback) -> None:
    build = attnbench.training.run.build_trainer

    def build_with(*args, **kwargs):
        trainer, cost = build(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer, cost

    monkeypatch.setattr(attnbench.training.run, "build_trainer", build_with)


class StopAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Stop(f"stopped at step {self.step}")


# ---- (10) a kill at any point after a checkpoint -------------------------------------------------------------

# SIGKILL from inside the run, at a given hook and step: no handler runs, no file is closed, like `kill -9`.
KILLER = """
import os, signal, sys
import pytorch_lightning as pl
import attnbench.training.run
from attnbench.cli import main

hook, step = sys.argv[1], int(sys.argv[2])

class Kill(pl.Callback):
    pass

def kill(self, trainer, *args):
    if trainer.global_step == step and not trainer.sanity_checking:
        os.kill(os.getpid(), signal.SIGKILL)

setattr(Kill, hook, kill)
build = attnbench.training.run.build_trainer

def build_and_kill(*args, **kwargs):
    trainer, cost = build(*args, **kwargs)
    trainer.callbacks.append(Kill())
    return trainer, cost

attnbench.training.run.build_trainer = build_and_kill
sys.exit(main(sys.argv[3:]))
"""


def child_env() -> dict[str, str]:
    # Its own W&B service (wandb hands WANDB_SERVICE to child processes), and this process's thread count: CPU
    # kernels sum in another order with another count, which changes the last bit of the weights.
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "ATTNBENCH_RUN_ID")}
    return env | {"OMP_NUM_THREADS": str(torch.get_num_threads())}


def killed_run(args: list[str], hook: str, step: int, script_dir: Path) -> None:
    # A script file, not -c: under DDP Lightning starts the other ranks by running the same script again.
    script = script_dir / "killer.py"
    script.write_text(KILLER)
    child = subprocess.run([sys.executable, str(script), hook, str(step), *args], env=child_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]


# One validation an epoch, at its end (the default), with early stopping: checkpoints at steps 13, 26, 39.
EPOCH_END = ("trainer.val_check_interval=1.0", "trainer.max_epochs=3", "trainer.early_stopping_patience=1")


@pytest.mark.parametrize("config, workers, hook, step, resumed_at", [
    ((), 0, "on_train_batch_start", 6, 6),  # right after the first checkpoint, mid-epoch
    ((), 1, "on_train_batch_start", 15, 12),  # in the next epoch, from the last (mid-epoch) checkpoint before it
    ((), 0, "on_validation_batch_start", 25, 19),  # during a validation, before its checkpoint
    (EPOCH_END, 0, "on_train_batch_start", 15, 13),  # in the next epoch, from the checkpoint at an epoch's end
], ids=["after-mid-epoch-checkpoint", "next-epoch-with-workers", "mid-validation", "after-epoch-end-checkpoint"])
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_metrics(config, workers, hook, step, resumed_at,
                                                                     uninterrupted, data_dir, cache, tmp_path):
    whole = uninterrupted(*config)
    args = tiny(data_dir, cache, tmp_path, *config, f"trainer.num_workers={workers}", "run_id=cut")
    killed_run(args, hook, step, tmp_path)
    cut = tmp_path / "cut"
    assert not (cut / "metrics.json").exists()
    assert global_step(cut / "checkpoints" / "last.ckpt") == resumed_at

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "resume=auto"]) == 0
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert record(cut)["resumed_from"] == "checkpoints/last.ckpt"
    assert_same_run(cut, whole)


def test_a_ddp_run_killed_mid_epoch_resumes_to_the_uninterrupted_metrics(data_dir, cache, tmp_path):
    # 600 examples in batches of 32 on 2 ranks: 10 steps an epoch; checkpoints at steps 5, 10, 15 and 20.
    args = tiny(data_dir, cache, tmp_path, "task.limits.train=600", "trainer.accelerator=cpu", "trainer.devices=2")

    def cli(*extra: str) -> None:
        done = subprocess.run([sys.executable, "-m", "attnbench", *args, *extra], env=child_env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    cli("run_id=whole")
    killed_run([*args, "run_id=cut"], "on_train_batch_start", 7, tmp_path)  # every rank, like a killed job
    assert global_step(tmp_path / "cut" / "checkpoints" / "last.ckpt") == 5
    cli("run_id=cut", "resume=auto")
    assert record(tmp_path / "cut")["resumed_from"] == "checkpoints/last.ckpt"
    # Each rank continues its own shard, with its own RNG states (dropout) and token count.
    assert_same_run(tmp_path / "cut", tmp_path / "whole")


def test_the_train_loader_resumes_mid_epoch_with_and_without_workers():
    lengths = [(i * 7) % 23 + 1 for i in range(200)]

    def loader(workers: int) -> ResumableLoader:
        sampler = BucketBatchSampler(lengths, batch_size=8, max_tokens=None, shuffle=True, seed=4, pool_batches=3)
        return ResumableLoader(list(range(200)), batch_sampler=sampler, collate_fn=list, num_workers=workers,
                               persistent_workers=workers > 0)

    reference = loader(0)
    reference.batch_sampler.set_epoch(2)
    epoch2 = list(reference)
    reference.batch_sampler.set_epoch(3)
    epoch3 = list(reference)
    for workers in (0, 1):
        first = loader(workers)
        first.batch_sampler.set_epoch(2)
        taken = [batch for _, batch in zip(range(5), first)]  # workers have read further ahead than that
        state = first.state_dict()
        assert state == {"epoch": 2, "batches": 5} and taken == epoch2[:5]
        # As Lightning does: load the state, make the iterator, then set the epoch.
        second = loader(workers)
        second.load_state_dict(state)
        rest = iter(second)
        second.batch_sampler.set_epoch(2)
        assert list(rest) == epoch2[5:]
        assert len(second) == len(epoch2)  # Lightning counts the batches before the resume itself
        # A checkpoint at the end of epoch 2 resumes at the start of epoch 3.
        third = loader(workers)
        third.load_state_dict({"epoch": 2, "batches": len(epoch2)})
        rest = iter(third)
        third.batch_sampler.set_epoch(3)
        assert list(rest) == epoch3


def test_every_rank_resumes_its_own_shard_from_rank_0s_state():
    lengths = [(i * 5) % 17 + 1 for i in range(150)]

    def loader(rank: int) -> ResumableLoader:
        sampler = BucketBatchSampler(lengths, batch_size=8, max_tokens=None, shuffle=True, seed=2, num_replicas=2,
                                     rank=rank)
        sampler.set_epoch(1)
        return ResumableLoader(list(range(150)), batch_sampler=sampler, collate_fn=list)

    rank0 = loader(0)
    taken = [batch for _, batch in zip(range(3), rank0)]
    state = rank0.state_dict()  # only rank 0's state is checkpointed
    for rank in (0, 1):
        shard = list(loader(rank))
        resumed = loader(rank)
        resumed.load_state_dict(state)
        assert list(resumed) == shard[3:]
    assert taken == list(loader(0))[:3]


# ---- (11) last.ckpt after every validation --------------------------------------------------------------------


class LastCheckpointSteps(pl.Callback):
    """After each validation (at the next batch, and when training ends): (that validation's step, last.ckpt's)."""

    def __init__(self, folder: Path) -> None:
        self.last, self.validated, self.seen = folder / "last.ckpt", None, []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validated = trainer.global_step

    def on_train_batch_start(self, trainer, *args) -> None:
        if self.validated is not None:
            self.seen.append((self.validated, global_step(self.last)))
            self.validated = None

    on_train_end = on_train_batch_start


def test_last_checkpoint_follows_every_validation_even_without_improvement(data_dir, cache, tmp_path, monkeypatch):
    # A learning rate too small to change a float32 weight: the validation accuracy never improves on the first one.
    probe = LastCheckpointSteps(tmp_path / "flat" / "checkpoints")
    with_callback(monkeypatch, probe)
    assert main([*tiny(data_dir, cache, tmp_path, "optim.lr=1e-12"), "run_id=flat"]) == 0
    assert record(tmp_path / "flat")["best_checkpoint"] == "checkpoints/best-epoch=0-step=6.ckpt"  # never improved
    assert probe.seen == [(step, step) for step in VALIDATIONS]
    assert global_step(tmp_path / "flat" / "checkpoints" / "last.ckpt") == VALIDATIONS[-1]


# ---- (5) full disk and damaged checkpoints --------------------------------------------------------------------


def fake_checkpoint(path: Path, **drop: bool) -> Path:
    state = {"state_dict": {"w": torch.arange(4096.0)}, "optimizer_states": [], "lr_schedulers": [], "loops": {},
             "callbacks": {}, "global_step": 3}
    torch.save({k: v for k, v in state.items() if not drop.get(k)}, path)
    return path


def test_checker_tells_whole_checkpoints_from_damaged_ones(tmp_path):
    good = fake_checkpoint(tmp_path / "good.ckpt")
    assert checkpoint_problem(good) is None
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in checkpoint_problem(truncated)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\0" * 1000)
    assert "truncated" in checkpoint_problem(garbage)
    torn = tmp_path / "torn.ckpt"  # a block of the tensor data lost (zeroed), the archive's structure intact
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        member = next(info for info in archive.infolist() if "/data/" in info.filename)
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26: member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length  # the member's data, past its local header
    data[start + 100: start + 200] = bytes(100)
    torn.write_bytes(bytes(data))
    assert "CRC" in checkpoint_problem(torn)
    weights_only = fake_checkpoint(tmp_path / "weights.ckpt", optimizer_states=True, loops=True)
    assert checkpoint_problem(weights_only) == "no training state (missing optimizer_states, loops)"
    assert checkpoint_problem(tmp_path / "missing.ckpt") is not None


def test_resumable_checkpoint_prefers_a_good_last_then_the_newest_good_other(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert resumable_checkpoint(tmp_path) is None
    old = fake_checkpoint(folder / "best-epoch=0-step=6.ckpt")
    new = fake_checkpoint(folder / "best-epoch=1-step=19.ckpt")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    last = fake_checkpoint(folder / "last.ckpt")
    assert resumable_checkpoint(tmp_path) == last
    last.write_bytes(last.read_bytes()[:100])
    assert resumable_checkpoint(tmp_path) == new
    new.write_bytes(b"not a checkpoint")
    assert resumable_checkpoint(tmp_path) == old
    old.unlink()
    assert resumable_checkpoint(tmp_path) is None


def test_a_checkpoint_write_that_hits_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResourceError, match="no space left.*previous checkpoints are intact.*resume=auto"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_a_run_whose_disk_fills_fails_in_one_line_and_resumes(whole, data_dir, cache, tmp_path, monkeypatch, capsys):
    args = tiny(data_dir, cache, tmp_path, "run_id=full")
    checkpoints = tmp_path.resolve() / "full" / "checkpoints"
    fsync = os.fsync

    def full_after_the_first_checkpoints(fd: int) -> None:
        # The disk fills once the first validation's checkpoints are written: the next checkpoint write fails.
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(checkpoints)) and (checkpoints / "last.ckpt").exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_the_first_checkpoints)
    assert main(args) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attnbench:")]
    assert len(err) == 1 and "no space left" in err[0] and "resume=auto" in err[0], err
    failed = record(tmp_path / "full")
    assert failed["status"] == "failed" and failed["error"].startswith("ResourceError: no space left")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch=0-step=6.ckpt", "last.ckpt"]  # no torn file
    assert checkpoint_problem(checkpoints / "last.ckpt") is None and global_step(checkpoints / "last.ckpt") == 6

    monkeypatch.setattr(os, "fsync", fsync)  # space freed
    assert main([*args, "resume=auto"]) == 0
    assert_same_run(tmp_path / "full", whole)


def test_a_damaged_last_checkpoint_is_skipped_for_the_best_one(whole, data_dir, cache, tmp_path, monkeypatch, capsys):
    args = tiny(data_dir, cache, tmp_path, "run_id=torn")
    with_callback(monkeypatch, StopAt(20))
    assert main(args) == 1
    monkeypatch.undo()
    last = tmp_path / "torn" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as the old writer left it on a full disk
    capsys.readouterr()

    (best,) = last.parent.glob("best-*.ckpt")
    assert main([*args, "resume=auto"]) == 0
    assert "skipping damaged checkpoints (last.ckpt: truncated" in capsys.readouterr().err
    assert record(tmp_path / "torn")["resumed_from"] == f"checkpoints/{best.name}"
    assert_same_run(tmp_path / "torn", whole)


def test_checkpoints_all_damaged_are_refused_in_one_line_with_the_fix(whole, data_dir, cache, tmp_path, monkeypatch,
                                                                      capsys):
    args = tiny(data_dir, cache, tmp_path, "run_id=wreck")
    with_callback(monkeypatch, StopAt(8))
    assert main(args) == 1
    monkeypatch.undo()
    checkpoints = tmp_path / "wreck" / "checkpoints"
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:5000])
    (checkpoints / "best-epoch=0-step=6.ckpt").write_bytes(b"")
    capsys.readouterr()

    assert main([*args, "resume=auto"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every checkpoint is damaged" in err[0] and f"remove {checkpoints}" in err[0], err
    assert "Traceback" not in err[0]
    # The fix it names: without checkpoints, resume=auto trains the run again from the start, in place.
    for path in checkpoints.iterdir():
        path.unlink()
    checkpoints.rmdir()
    assert main([*args, "resume=auto"]) == 0
    assert_same_run(tmp_path / "wreck", whole)
