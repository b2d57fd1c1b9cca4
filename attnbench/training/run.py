"""One run, top-down: config -> data -> model -> logger -> fit -> test -> record.

Everything that can be refused (config, data, output folder, W&B key) is checked before the run folder
exists, so bad input leaves nothing in results/. Once the folder exists, the run ends with a
metrics.json whose status is "completed" or "failed" (with the error), never with half a file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from attnbench.training import signals
from attnbench.config import (VAL_SLICE, attention_label, check_machine, check_run_id, config_hash, monitor_key,
                              stopping_monitor, to_yaml)
from attnbench.errors import ConfigError
from attnbench.data.batching import padding_fraction
from attnbench.data.lengths import warn_truncation
from attnbench.data.sources import split_sources, test_fingerprint
from attnbench.tasks.base import TaskModule
from attnbench.tasks.families import build_datamodule, family
from attnbench.training.checkpointing import AtomicCheckpointIO, LastCheckpoint, resume_checkpoint
from attnbench.training.finite import FiniteLoss
from attnbench.training.precision import choose_precision
from attnbench.training.resume import ResumableState
from attnbench.training.stopping import ValidateAtMaxSteps
from attnbench.tracking.attention_maps import AttentionMaps
from attnbench.tracking.claim import Claim
from attnbench.tracking.cost import CostClock, PeakMemory, Timed, TrainingPeak
from attnbench.tracking.history import LearningHistory
from attnbench.tracking.record import (
    check_writable, create_run_dir, device_name, git_state, new_run_id, now, read_record,
    saved_config_hash, versions, write_atomic, write_json, write_jsonl,
)
from attnbench.tracking.wandb_file import finish_and_wait
from attnbench.tracking.wandb_setup import check_wandb, make_logger


def run(cfg: DictConfig) -> Path:
    """Train, test on the best checkpoint and write the run record; returns the run folder."""
    started_at = now()
    output_dir = Path(cfg.output_dir)
    check_writable(output_dir)
    check_machine(cfg)
    check_wandb(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    data = build_datamodule(cfg)
    data.setup("fit")
    task = build_task(cfg, data)

    # Under DDP, Lightning starts ranks 1..N-1 at trainer.fit by re-running this command; they find the run id
    # rank 0 chose in the environment, use its folder, and write nothing (rank 0 writes every file).
    rank0 = rank_zero_only.rank == 0
    # Rank 0 holds the folder's claim (tracking/claim.py) from before it exists or is resumed until the process ends.
    resume_dir, claim = find_resumable(cfg, output_dir) if cfg.resume and rank0 else (None, None)
    cfg.run_id = (resume_dir.name if resume_dir else None) or cfg.run_id or os.environ.get(RUN_ID_ENV) or new_run_id(
        cfg.task.name, cfg.model.name, attention_label(cfg).rsplit(":", 1)[-1], cfg.seed)
    try:
        check_run_id(cfg.run_id)
        record = base_record(cfg, data, task, started_at)
        if rank0:
            warn_truncation(record["data"], f"{cfg.task.name}/{cfg.task.dataset}")
        if resume_dir is not None or not rank0:
            run_dir = output_dir / cfg.run_id
        else:
            claim = claim_new(output_dir, cfg.run_id)
            run_dir = create_run_dir(output_dir, cfg.run_id)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    logger = None
    learning: LearningHistory | None = None  # the fit's validations, also of a run that fails or is stopped
    history: list[dict] | None = None
    # From here on the folder exists, so whatever stops the run (an error, a signal) ends in a metrics.json.
    try:
        if resume_dir is None and rank0:
            write_atomic(run_dir / "config.yaml", to_yaml(cfg))
        # Skips or refuses torn files. Ranks > 0 have no resume_dir (rank 0 alone claims the folder) but must load
        # the checkpoint rank 0 loads: the same files give the same choice.
        resume_path = resume_checkpoint(run_dir) if cfg.resume and (resume_dir is not None or not rank0) else None
        resume_from = str(resume_path) if resume_path is not None else None
        logger = make_logger(cfg, run_dir)
        if cfg.trainer.devices > 1 and rank0:
            os.environ[RUN_ID_ENV] = cfg.run_id
        trainer, cost = build_trainer(cfg, run_dir, logger, data)
        learning = cost.history
        trainer.fit(task, datamodule=data, ckpt_path=resume_from)
        # Kept now: test and validate load the best checkpoint, callback states included, which would put the
        # history back to that checkpoint's validation.
        history = list(cost.history.entries)
        # Read before test/validate load the best checkpoint, whose tallies (and the cost clock's state, restored
        # with it) are those of an earlier epoch.
        train_tokens, train_loss = int(task.train_tokens), task.train_loss_summary()
        train_seconds, fit_validation_seconds = cost.clock.train_seconds, cost.clock.validation_seconds
        if resume_from:
            record["resumed_from"] = _relative(resume_from, run_dir)
        cost.memory.reset()
        # The ModelCheckpoint's best by path: "best" would make Lightning warn about the LastCheckpoint callback.
        best = trainer.checkpoint_callback.best_model_path or "best"
        with Timed() as testing:
            test = trainer.test(task, datamodule=data, ckpt_path=best, verbose=False)[0]
        # Before validate(): it reuses the task's output buffers. Seq2seq knows its signatures once scored.
        if rank0:
            write_jsonl(run_dir / "predictions.jsonl", task.predictions())
        record["provenance"]["metric_signatures"] = task.metric_signatures()
        with Timed() as validating:
            val = trainer.validate(task, datamodule=data, ckpt_path=best, verbose=False)[0]
        metrics = {"val": _strip(val, "val/"), "test": _strip(test, "test/"), "train": train_loss}
        check_finite(metrics)
        if any(key.startswith(f"{VAL_SLICE}/") for key in val):
            metrics[VAL_SLICE] = _strip(val, f"{VAL_SLICE}/")
            record["metrics_notes"] = {
                "val": "the whole validation split (loss, perplexity) of the best checkpoint",
                VAL_SLICE: f"greedy decoding of the first {cfg.task.decoding.val_examples} validation examples "
                       "(task.decoding.val_examples) only, not the whole split: the per-epoch model-selection metric",
                "test": "the whole test split, beam search (task.decoding), best checkpoint",
            }
        record.update(status="completed", metrics=metrics)
        record["cost"].update(
            # Training steps only (data loading included); validation during fit and the final pass apart.
            train_seconds=round(train_seconds, 3),
            validation_seconds=round(fit_validation_seconds + validating.seconds, 3),
            test_seconds=round(testing.seconds, 3),
            tokens_per_second=round(train_tokens / max(train_seconds, 1e-9), 1),
            peak_memory_mb=round(cost.peak.peak_mb, 1) if cost.peak.peak_mb is not None else None,
            eval_peak_memory_mb=round(cost.memory.read_mb(), 1),
            peak_memory_kind=cost.memory.kind,
            # What the leaderboard's peak memory column shows.
            peak_memory_phase="training: reset when training starts, validation during fit included "
                              "(eval_peak_memory_mb: test and the final validation)",
            epochs=trainer.current_epoch,
            steps=trainer.global_step,
        )
        record["best_checkpoint"] = _relative(trainer.checkpoint_callback.best_model_path, run_dir)
    except BaseException as err:
        record.update(status="failed", error=describe_failure(err))
        if signals.received() is not None:
            record["interrupted"] = signals.name(signals.received())
        err.attnbench_run_dir = run_dir  # where the CLI says the status went (cli.py)
        raise
    finally:
        os.environ.pop(RUN_ID_ENV, None)
        record["provenance"]["finished_at"] = now()
        if history is not None or learning is not None:
            record["history"] = history if history is not None else learning.entries
        if logger is not None and rank0:  # later steps (attnbench explain) log into the same W&B run
            record["provenance"]["wandb_run_id"] = logger.version
        try:
            with signals.deferred():  # a signal now would lose the record: it is handled once the record is written
                if rank0:
                    write_json(run_dir / "metrics.json", record)
                if logger is not None:
                    import wandb

                    if wandb.run is not None:  # its run file whole before the command returns (tracking/wandb_file.py)
                        finish_and_wait(wandb.run, 0 if record["status"] == "completed" else 1, strict=False)
        finally:  # even when the record cannot be written (a full disk)
            if claim is not None:
                claim.release()
    return run_dir


def describe_failure(err: BaseException) -> str:
    """The record's error: "interrupted by <signal>" for a stop by signal (Lightning reports Ctrl-C as
    SystemExit(1) and SIGTERM as a SystemExit without a code), else the exception."""
    if signals.received() is not None:
        return f"interrupted by {signals.describe(signals.received())}"
    error = f"{type(err).__name__}: {err}"
    return f"interrupted ({error})" if isinstance(err, (KeyboardInterrupt, SystemExit)) else error


def check_finite(metrics: dict[str, dict[str, float]]) -> None:
    """A completed record has finite metrics only: a NaN/inf one fails the run instead (never a leaderboard row)."""
    bad = [f"{split}/{name}={value}" for split, values in metrics.items() for name, value in values.items()
           if not math.isfinite(value)]
    if bad:
        raise FloatingPointError(f"non-finite metrics {', '.join(bad)}: the model diverged or produced NaN; lower "
                                 "optim.lr or use trainer.precision=32-true; the run is not counted as completed")


RUN_ID_ENV = "ATTNBENCH_RUN_ID"


def find_resumable(cfg: DictConfig, output_dir: Path) -> tuple[Path | None, Claim | None]:
    """resume=auto: the unfinished run of this configuration to continue, claimed, or (None, None) to start fresh.

    With run_id set, that folder (refused if another process is writing it, it already completed, or it holds
    another configuration); without, the newest folder in output_dir with the same configuration hash, no
    completed record and no live process. The claim is taken before the record is read, so two resumes of one
    run cannot both pass the checks.
    """
    expected = config_hash(cfg)

    def finished(run_dir: Path) -> bool:
        return (read_record(run_dir / "metrics.json") or {}).get("status") == "completed"

    def same_config(run_dir: Path) -> bool:
        return saved_config_hash(run_dir) == expected

    if cfg.run_id:
        run_dir = output_dir / cfg.run_id
        if not run_dir.is_dir():
            return None, None
        claim = claim_existing(output_dir, cfg.run_id)
        problem = None
        if not same_config(run_dir):
            problem = (f"run {run_dir} holds another configuration: resume it with resume={run_dir} alone, "
                       "or pass the overrides it was started with")
        elif finished(run_dir):
            problem = f"run {run_dir} already completed: nothing to resume (use another run_id= to run again)"
        if problem:
            claim.release()
            raise ConfigError(problem)
        return run_dir, claim
    candidates = [d for d in output_dir.glob("*/") if d.is_dir() and not d.name.startswith(".") and same_config(d)]
    for run_dir in sorted(candidates, key=lambda d: d.stat().st_mtime, reverse=True):
        claim = Claim(output_dir, run_dir.name)
        if not claim.try_acquire():
            continue  # live in another process
        if not finished(run_dir):
            return run_dir, claim
        claim.release()
    return None, None


def claim_existing(output_dir: Path, run_id: str) -> Claim:
    claim = Claim(output_dir, run_id)
    if not claim.try_acquire():
        raise ConfigError(f"run {output_dir / run_id} is being written by another process (pid {claim.owner()}): "
                          "wait for it to finish (or stop it), then resume")
    return claim


def claim_new(output_dir: Path, run_id: str) -> Claim:
    claim = Claim(output_dir, run_id)
    if not claim.try_acquire():
        raise ConfigError(f"run folder {output_dir / run_id} is being created by another process (pid "
                          f"{claim.owner()}): choose another run_id=")
    return claim


def build_task(cfg: DictConfig, data) -> TaskModule:
    """The task family's model (compiled when trainer.compile) inside its TaskModule (tasks/families.py)."""
    spec = family(cfg)
    return spec.build_task(cfg, data, maybe_compile(cfg, spec.build_model(cfg, data)))


def maybe_compile(cfg: DictConfig, model: torch.nn.Module) -> torch.nn.Module:
    """trainer.compile=true: torch.compile the model's forward (other methods, e.g. beam search's encode and
    step, still run eagerly through the wrapper). Measure the gain with `attnbench harness trainer.compile=true`."""
    if not cfg.trainer.compile:
        return model
    return torch.compile(model, backend=cfg.trainer.compile_backend, mode=cfg.trainer.compile_mode)


def uses_gpu(cfg: DictConfig) -> bool:
    return torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")


def resolve_precision(cfg: DictConfig) -> str:
    """The precision the run trains in (trainer.precision=auto decides by the machine: training/precision.py)."""
    return choose_precision(cfg, uses_gpu(cfg))[0]


@dataclass
class Cost:
    """The callbacks and meter that measure a run's cost (tracking/cost.py) and its learning history
    (tracking/history.py)."""

    clock: CostClock
    peak: TrainingPeak
    memory: PeakMemory
    history: LearningHistory


def build_trainer(cfg: DictConfig, run_dir: Path, logger, data) -> tuple[pl.Trainer, Cost]:
    t = cfg.trainer
    monitor = monitor_key(cfg)
    # The best checkpoint; last.ckpt, written after every validation, is LastCheckpoint's (training/checkpointing.py).
    # Both checkpoint and early stopping act at the end of each validation (by default, with one validation per
    # epoch, at the epoch's end, after it), so that LastCheckpoint, which runs last, saves their updated state.
    # No version counter: a resumed run that redoes a validation rewrites its best file instead of adding a -v1.
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best-{epoch}-{step}", monitor=monitor, mode=cfg.task.monitor_mode,
        save_top_k=1, save_last=False, save_on_train_epoch_end=False, enable_version_counter=False,
    )
    memory = PeakMemory(uses_gpu(cfg))
    clock = CostClock()
    cost = Cost(clock, TrainingPeak(memory), memory, LearningHistory(clock))
    callbacks: list[pl.Callback] = [checkpoint, LastCheckpoint(run_dir / "checkpoints"), cost.clock, cost.peak,
                                    cost.history, ValidateAtMaxSteps(), FiniteLoss(every=t.log_every_n_steps),
                                    ResumableState()]
    if t.early_stopping_patience > 0:
        # What it watches may differ from what picks the checkpoint (trainer.early_stopping_monitor: e.g. stop on the
        # validation loss, keep the epoch of the best slice BLEU).
        stop_key, stop_mode = stopping_monitor(cfg)
        callbacks.append(EarlyStopping(monitor=stop_key, mode=stop_mode, patience=t.early_stopping_patience,
                                       check_on_train_epoch_end=False))
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.task.probes:
        callbacks.append(
            AttentionMaps(data.probe_examples(cfg.task.probes), data.probe_batch(cfg.task.probes), run_dir,
                          log_images=cfg.wandb.log_attention)
        )
    trainer = pl.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        # Several devices: DDP, with our length-bucketed sampler sharding the batches itself (datamodule.py).
        strategy="ddp" if t.devices > 1 else "auto", use_distributed_sampler=False,
        precision=resolve_precision(cfg), gradient_clip_val=t.gradient_clip_val,
        val_check_interval=t.val_check_interval, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, limit_test_batches=t.limit_test_batches,
        deterministic=t.deterministic, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar, logger=logger if logger is not None else False,
        callbacks=callbacks, default_root_dir=str(run_dir), enable_model_summary=t.enable_progress_bar,
        plugins=[AtomicCheckpointIO(), *cluster_plugins()],  # checkpoints replace the old file whole, or not at all
    )
    return trainer, cost


def cluster_plugins() -> list:
    """Inside a Slurm job: Lightning's SLURMEnvironment (ranks, addresses from Slurm) without its auto-requeue.
    Requeueing is the launcher's (suite/slurm.py: submitit's protocol, resuming from last.ckpt); Lightning's own
    would also catch SIGUSR1, write an hpc checkpoint the resume logic does not read and requeue the job itself."""
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def base_record(cfg: DictConfig, data, task: pl.LightningModule, started_at: str) -> dict:
    """metrics.json (README, "The run record"), filled in as the run proceeds."""
    precision, precision_reason = choose_precision(cfg, uses_gpu(cfg))
    return {
        "run_id": cfg.run_id,
        "status": "running",
        "kind": "model",  # trivial baselines are records too, with "kind": "baseline" (baseline.py)
        "task": cfg.task.name,
        "dataset": cfg.task.dataset,
        "attention": attention_label(cfg),
        "heads": cfg.attention.heads,
        "model": cfg.model.name,
        "seed": cfg.seed,
        "metrics": {},
        # Lengths before truncation and the share task.max_length / max_target_length cut, per split.
        "data": data.length_report(),
        # Padding share of the first epoch's training batches: what length bucketing / the token budget save.
        "cost": {"params": sum(p.numel() for p in task.parameters()),
                 "padding_fraction": round(padding_fraction(data.lengths("train"), list(data.sampler("train"))), 4)},
        "provenance": {
            **git_state(),
            "config_hash": config_hash(cfg),
            "dataset_fingerprint": data.fingerprint,
            "test_fingerprint": test_fingerprint(cfg.task, cfg.data_dir),  # what the test metrics were scored on
            "splits": split_sources(cfg.task, cfg.data_dir),  # which file or hub split each one is
            "tokenizer_hash": data.tokenizer_hash,
            "metric_signatures": task.metric_signatures(),
            "versions": versions(),
            "device": device_name(uses_gpu(cfg)),
            "precision": precision,
            "precision_reason": precision_reason,
            "deterministic": cfg.trainer.deterministic,
            "started_at": started_at,
            "finished_at": None,
        },
    }


def _strip(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): float(v) for k, v in metrics.items() if k.startswith(prefix)}


def _relative(path: str, root: Path) -> str | None:
    """`path` inside the run folder, relative to it (Lightning may report it absolute, the config relative)."""
    return str(Path(path).resolve().relative_to(root.resolve())) if path else None
