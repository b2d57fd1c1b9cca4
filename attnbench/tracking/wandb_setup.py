"""Weights & Biases through Lightning's WandbLogger: offline unless configured, never hanging on the network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from attnbench.config import attention_label
from attnbench.tracking.wandb_file import finish_and_wait
from attnbench.tracking.wandb_online import check_online


def check_wandb(cfg: DictConfig) -> None:
    """Refuse an online run that could not log, before any work: no key, or no route to the server."""
    if cfg.wandb.mode == "online":
        check_online("wandb.mode=online", offline_hint="use wandb.mode=offline (sync later with `wandb sync`)")


def _run_identity(cfg: DictConfig) -> dict[str, Any]:
    """What names a run in W&B (project, name, group, tags), for the logger and for later steps that add to it."""
    task, model, attention = cfg.task.name, cfg.model.name, attention_label(cfg)
    return {
        "project": cfg.wandb.project, "entity": cfg.wandb.entity, "name": cfg.run_id,
        # Seeds of one cell share a group, so the W&B UI averages them; tags filter by axis.
        "group": f"{task}/{model}/{attention}", "job_type": task,
        "tags": [task, cfg.task.dataset, model, attention, f"seed{cfg.seed}", *cfg.wandb.tags],
    }


def log_to_run(cfg: DictConfig, run_dir: Path, run_id: str, summary: dict[str, Any], images: dict[str, Path]) -> None:
    """Add `summary` (key -> number) and `images` (key -> PNG) to the run's W&B run `run_id` (resumed, in the
    run's own mode: offline runs gain a second offline folder with the same id, which `wandb sync` merges);
    nothing when the run had W&B disabled."""
    if cfg.wandb.mode == "disabled":
        return
    import wandb

    run = wandb.init(id=run_id, resume="allow", dir=str(run_dir.resolve()), mode=cfg.wandb.mode, **_run_identity(cfg),
                     settings=wandb.Settings(init_timeout=60, silent=True))
    try:
        run.summary.update(summary)
        if images:
            run.log({key: wandb.Image(str(path)) for key, path in images.items()})
    finally:
        finish_and_wait(run)


def make_logger(cfg: DictConfig, run_dir: Path) -> WandbLogger | None:
    if cfg.wandb.mode == "disabled":
        return None
    import wandb

    return WandbLogger(
        # Under `wandb agent` the agent owns the run id; elsewhere the run id names the W&B run.
        id=None if os.environ.get("WANDB_SWEEP_ID") else cfg.run_id,
        resume="allow",  # resume=auto continues the same W&B run (same id) rather than starting another
        # Absolute: wandb-core, one service per process, resolves a relative folder against the folder it was
        # started in, so after a chdir the run file would land elsewhere and finish_and_wait time out looking.
        save_dir=str(run_dir.resolve()),
        **_run_identity(cfg),
        config=OmegaConf.to_container(cfg, resolve=True),
        mode=cfg.wandb.mode,
        settings=wandb.Settings(init_timeout=60, silent=True),
    )
