"""`attnbench harness`: what does the Lightning harness cost? The same model, the same batches, the same optimizer
and schedule, trained once by attnbench's task module under a Lightning Trainer and once by a minimal
hand-written PyTorch loop; tokens/s of both and their ratio (target: harness >= 0.92 x the plain loop).

The batches are drawn once from the run's own train loader (length-bucketed, token budget as configured) and kept
in memory, so data loading is excluded from both; each side gets `warmup` untimed steps first. The plain loop
does what a careful hand-written loop does: forward, the task's loss, backward, gradient clipping, optimizer and
scheduler step, autocast in the run's mixed precision on the same device (CPU too), nothing else. The harness side is exactly what `attnbench run` trains
with (logging, loss trace, LR schedule), minus validation, checkpoints and W&B.

    attnbench harness task=sentiment model=rnn attention=additive --steps 200
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from attnbench.errors import ConfigError
from attnbench.perf.bench import slug
from attnbench.tasks.families import build_datamodule
from attnbench.tasks.optim import configure_optimizer
from attnbench.tracking.record import device_name, finite_or_null, write_atomic
from attnbench.training.run import build_task, resolve_precision, uses_gpu


@dataclass
class HarnessResult:
    config: str
    device: str
    precision: str
    steps: int
    warmup: int
    tokens: int
    padding_fraction: float
    plain_seconds: float
    harness_seconds: float

    @property
    def plain_tokens_per_second(self) -> float:
        return self.tokens / self.plain_seconds

    @property
    def harness_tokens_per_second(self) -> float:
        return self.tokens / self.harness_seconds

    @property
    def ratio(self) -> float:
        return self.harness_tokens_per_second / self.plain_tokens_per_second

    def to_json(self) -> dict:
        return {**asdict(self), "plain_tokens_per_second": round(self.plain_tokens_per_second, 1),
                "harness_tokens_per_second": round(self.harness_tokens_per_second, 1), "ratio": round(self.ratio, 4)}


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real tokens, counted as the task modules count them for tokens/s."""
    if "src_mask" in batch:
        return int(batch["src_mask"].sum() + batch["tgt_mask"].sum())
    return int(batch["mask"].sum())


def padding(batches: list[dict[str, torch.Tensor]]) -> float:
    """Share of the padded token slots that are padding, over the measured batches."""
    masks = [m for b in batches for key, m in b.items() if key in ("mask", "src_mask", "tgt_mask")]
    real, slots = sum(int(m.sum()) for m in masks), sum(m.numel() for m in masks)
    return 1.0 - real / slots if slots else 0.0


def plain_loss(task: pl.LightningModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The task's training loss, written out (what a hand-written loop would compute)."""
    if "src" in batch:
        logits, _ = task.model(batch["src"], batch["src_mask"], batch["tgt_in"], batch["tgt_mask"])
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(),
                               ignore_index=task.special["pad_id"], label_smoothing=task.label_smoothing)
    logits, _ = task.model(batch["input_ids"], batch["mask"])
    return F.cross_entropy(logits, batch["labels"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MIXED = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
FULL = ("32", "32-true")


def plain_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The plain loop's side of `precision`, on the same device type as the Lightning side: a mixed precision is
    torch.autocast(device.type) of its dtype (CPU included: comparing bf16 with fp32 would measure the precision,
    not the harness); fp32 is no autocast. "True" low precisions change the parameters' dtype, which the plain loop
    does not mirror."""
    if precision in MIXED:
        return torch.autocast(device.type, dtype=MIXED[precision])
    if precision in FULL:
        return contextlib.nullcontext()
    raise ConfigError(f"attnbench harness compares {', '.join([*MIXED, *FULL])} only, not trainer.precision="
                      f"{precision}: pass one of those")


def train_plain(cfg: DictConfig, task: pl.LightningModule, batches: list[dict], warmup: int, device: torch.device,
                precision: str) -> float:
    autocast = plain_autocast(precision, device)
    task.to(device).train()
    setup = configure_optimizer(task.parameters(), task.optim, len(batches))
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    batches = [{k: v.to(device, non_blocking=True) for k, v in b.items()} for b in batches]
    start = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        with autocast:
            loss = plain_loss(task, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        scheduler.step()
    _sync(device)
    return time.perf_counter() - start


class _StepClock(pl.Callback):
    """Wall time from the start of batch `warmup` to the end of training, synchronised on a GPU."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            _sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        _sync(pl_module.device)
        self.end = time.perf_counter()


def train_harness(cfg: DictConfig, task: pl.LightningModule, batches: list[dict], warmup: int, precision: str) -> float:
    clock = _StepClock(warmup)
    trainer = pl.Trainer(
        max_steps=len(batches), max_epochs=1, accelerator="gpu" if uses_gpu(cfg) else "cpu", devices=1,
        precision=precision, gradient_clip_val=cfg.trainer.gradient_clip_val, limit_val_batches=0,
        log_every_n_steps=cfg.trainer.log_every_n_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )
    # batch_size=None: the loader hands over the stored batches one by one, as they are.
    trainer.fit(task, train_dataloaders=DataLoader(batches, batch_size=None, shuffle=False))
    return clock.end - clock.start


def measure_harness(cfg: DictConfig, steps: int, warmup: int) -> HarnessResult:
    if steps <= warmup:
        raise ConfigError(f"--steps {steps} must exceed --warmup {warmup}: the timed steps come after the warm-up")
    precision = resolve_precision(cfg)
    device = torch.device("cuda" if uses_gpu(cfg) else "cpu")
    plain_autocast(precision, device)  # refuse a precision the plain loop cannot mirror before any work
    pl.seed_everything(cfg.seed, verbose=False)
    data = build_datamodule(cfg)
    data.setup("fit")
    loader = data.train_dataloader()
    batches: list[dict] = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == steps:
            break
    tokens = sum(batch_tokens(b) for b in batches[warmup:])
    pl.seed_everything(cfg.seed, verbose=False)
    plain = train_plain(cfg, build_task(cfg, data), batches, warmup, device, precision)
    pl.seed_everything(cfg.seed, verbose=False)
    harness = train_harness(cfg, build_task(cfg, data), batches, warmup, precision)
    return HarnessResult(
        config=f"{cfg.task.name}/{cfg.model.name}/{cfg.attention.name}", device=device_name(device.type == "cuda"),
        precision=precision, steps=len(batches), warmup=warmup, tokens=tokens,
        padding_fraction=round(padding(batches), 4),
        plain_seconds=round(plain, 4), harness_seconds=round(harness, 4),
    )


def write_result(result: HarnessResult, out_dir: Path) -> Path:
    path = out_dir / f"harness-{slug(result.device)}-{slug(result.config)}.json"
    write_atomic(path, json.dumps(finite_or_null(result.to_json()), indent=1, allow_nan=False) + "\n")
    return path
