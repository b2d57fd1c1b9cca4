"""`attnbench harness`: what does the Lightning harness cost? The same model, the same batches, the same optimizer
and schedule, trained once by attnbench's task module under a Lightning Trainer and once by a minimal
hand-written PyTorch loop; tokens/s of both and their ratio (target: harness >= 0.92 x the plain loop).

The batches are drawn once from the run's own train loader (length-bucketed, token budget as configured) and kept
in memory, so data loading is excluded from both; each side gets `warmup` untimed steps first. The sides run
`rounds` times in alternating order (plain, Lightning, Lightning, plain, ...), each on a fresh model, after one
untimed pass of each: whatever runs first in a process pays for first-touch memory and oneDNN's per-shape kernel
caches (measured here: the first 40-step pass of an SST-2 BiLSTM took 1.54 s, the same pass later 1.15 s). The plain loop
does what a careful hand-written loop does: forward, the task's loss, backward, gradient clipping, optimizer and
scheduler step, autocast in the run's mixed precision on the same device (CPU too), nothing else. The harness side is exactly what `attnbench run` trains
with (logging, loss trace, LR schedule), minus validation, checkpoints and W&B.

    attnbench harness task=sentiment model=rnn attention=additive --steps 200

`--compare KEY=A,B[,...]` instead measures one setting against others, all through the Lightning harness on the
same batches, in rotating order: the gain of bf16 autocast (trainer.precision=32-true,bf16-mixed), of
torch.compile (trainer.compile=false,true), of a model change. Ratios are to the first value.

    attnbench harness task=sentiment model=rnn --compare trainer.precision=32-true,bf16-mixed
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
from omegaconf import DictConfig, OmegaConf
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
    rounds: int
    tokens: int  # real tokens of the timed steps, over all rounds
    padding_fraction: float
    plain_seconds: float  # timed seconds over all rounds
    harness_seconds: float
    plain_round_seconds: list[float]
    harness_round_seconds: list[float]
    file_suffix = ""  # harness-<device>-<config>.json

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


class RatesToFirst:
    """A result with one tokens/s per compared setting (CompareResult, jobs.JobsResult): ratios to the first, and
    both beside the fields in the JSON."""

    def tokens_per_second(self) -> list[float]:
        raise NotImplementedError

    def ratios(self) -> list[float]:
        rates = self.tokens_per_second()
        return [r / rates[0] for r in rates]

    def to_json(self) -> dict:
        return {**asdict(self), "tokens_per_second": [round(r, 1) for r in self.tokens_per_second()],
                "ratios": [round(r, 4) for r in self.ratios()]}


@dataclass
class CompareResult(RatesToFirst):
    """The Lightning harness at each value of one setting, on the same batches; ratios to the first value."""

    config: str
    device: str
    key: str
    values: list[str]
    precisions: list[str]  # what trainer.precision resolved to at each value
    steps: int
    warmup: int
    rounds: int
    tokens: int  # real tokens of the timed steps, over all rounds (the same for every value)
    padding_fraction: float
    seconds: list[float]  # timed seconds over all rounds, per value
    round_seconds: list[list[float]]  # per value, per round

    @property
    def file_suffix(self) -> str:
        return f"-{slug(self.key)}"

    def tokens_per_second(self) -> list[float]:
        return [self.tokens / s for s in self.seconds]


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


def measure_harness(cfg: DictConfig, steps: int, warmup: int, rounds: int = 2) -> HarnessResult:
    precision = resolve_precision(cfg)
    device = torch.device("cuda" if uses_gpu(cfg) else "cpu")
    plain_autocast(precision, device)  # refuse a precision the plain loop cannot mirror before any work
    batches = _batches(cfg, steps, warmup, rounds)
    sides = {
        "plain": lambda: train_plain(cfg, _fresh_task(cfg, batches.data), batches.items, warmup, device, precision),
        "harness": lambda: train_harness(cfg, _fresh_task(cfg, batches.data), batches.items, warmup, precision),
    }
    times = _alternate(sides, rounds)
    return HarnessResult(
        config=_config_name(cfg), device=device_name(device.type == "cuda"), precision=precision,
        steps=len(batches.items), warmup=warmup, rounds=rounds, tokens=batches.tokens * rounds,
        padding_fraction=round(padding(batches.items), 4), plain_seconds=round(sum(times["plain"]), 4),
        harness_seconds=round(sum(times["harness"]), 4), plain_round_seconds=times["plain"],
        harness_round_seconds=times["harness"],
    )


# Settings that change the batches themselves: the compared sides would no longer train on the same data.
BATCH_KEYS = ("task.", "data_dir", "cache_dir", "trainer.batch_size", "trainer.max_tokens")


def parse_compare(text: str) -> tuple[str, list[str]]:
    """'trainer.precision=32-true,bf16-mixed' -> ('trainer.precision', ['32-true', 'bf16-mixed'])."""
    key, sep, values = text.partition("=")
    options = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or len(options) < 2 or len(set(options)) < len(options):
        raise ConfigError(f"--compare {text}: give one setting and at least two distinct values, e.g. --compare "
                          "trainer.precision=32-true,bf16-mixed")
    if key.startswith(BATCH_KEYS):
        raise ConfigError(f"--compare {key}: it changes the batches, so the sides would not train on the same data: "
                          "compare a trainer.*, model.* or attention.* setting (set data options as overrides)")
    return key, options


def measure_compare(cfg: DictConfig, key: str, values: list[str], steps: int, warmup: int,
                    rounds: int = 2) -> CompareResult:
    if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
        raise ConfigError(f"--compare {key}: no such setting in the config (see `attnbench config`)")
    configs = []
    for value in values:
        variant = cfg.copy()
        OmegaConf.update(variant, key, _parse_value(value), merge=False)
        configs.append(variant)
    precisions = [resolve_precision(c) for c in configs]
    batches = _batches(cfg, steps, warmup, rounds)
    sides = {value: (lambda c=c, p=p: train_harness(c, _fresh_task(c, batches.data), batches.items, warmup, p))
             for value, c, p in zip(values, configs, precisions)}
    times = _alternate(sides, rounds, rewarm=True)
    return CompareResult(
        config=_config_name(cfg), device=device_name(uses_gpu(cfg)), key=key, values=values, precisions=precisions,
        steps=len(batches.items), warmup=warmup, rounds=rounds, tokens=batches.tokens * rounds,
        padding_fraction=round(padding(batches.items), 4), seconds=[round(sum(times[v]), 4) for v in values],
        round_seconds=[times[v] for v in values],
    )


_MISSING = object()


def _parse_value(text: str):
    """A command-line value as the config would read it (true -> True, 3e-3 -> 0.003, null -> None)."""
    return OmegaConf.create(f"v: {text}").v


@dataclass
class _Batches:
    data: object  # the datamodule the tasks are built against
    items: list[dict]
    tokens: int  # real tokens of the timed steps of one round


def _batches(cfg: DictConfig, steps: int, warmup: int, rounds: int) -> _Batches:
    if steps <= warmup:
        raise ConfigError(f"--steps {steps} must exceed --warmup {warmup}: the timed steps come after the warm-up")
    if rounds < 1:
        raise ConfigError(f"--rounds {rounds}: use at least 1 (2 or more alternate the order)")
    pl.seed_everything(cfg.seed, verbose=False)
    data = build_datamodule(cfg)
    data.setup("fit")
    items: list[dict] = []
    for batch in data.train_dataloader():
        items.append(batch)
        if len(items) == steps:
            break
    return _Batches(data, items, sum(batch_tokens(b) for b in items[warmup:]))


def _fresh_task(cfg: DictConfig, data) -> pl.LightningModule:
    pl.seed_everything(cfg.seed, verbose=False)  # every side starts from the same weights
    return build_task(cfg, data)


def _alternate(sides: dict, rounds: int, rewarm: bool = False) -> dict[str, list[float]]:
    """Each side once untimed, then `rounds` timed times, the order rotating every round (A B, B A, ...).

    The untimed pass is needed because oneDNN (CPU) builds and caches its kernels per input shape, process-wide: the
    first pass over length-bucketed batches pays for every new length, whatever warm-up steps it had (measured:
    6 steps of a tiny BiLSTM took 1.59 s in the process's first pass, 0.12 s in a later one), and the caches also
    serve every later side, so alternation alone would charge it all to whichever side runs first.

    rewarm: every timed pass right after an untimed one of the same side, for sides whose kernels differ (fp32 vs
    bf16): the cache is an LRU of 1024 kernels, and two precisions' kernels for every length of the batches evict
    each other (measured: the SST-2 BiLSTM in bf16 ran at 15,456 tokens/s alternating with fp32 without it, at
    about twice that alone)."""
    names, times = list(sides), {name: [] for name in sides}
    if not rewarm:
        for name in names:
            sides[name]()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if rewarm:
                sides[name]()
            times[name].append(round(sides[name](), 4))
    return times


def _config_name(cfg: DictConfig) -> str:
    return f"{cfg.task.name}/{cfg.model.name}/{cfg.attention.name}"


def write_result(result, out_dir: Path) -> Path:
    """harness-<device>-<config><file_suffix>.json: the suffix names what was compared ("", -<key>, -jobs)."""
    path = out_dir / f"harness-{slug(result.device)}-{slug(result.config)}{result.file_suffix}.json"
    write_atomic(path, json.dumps(finite_or_null(result.to_json()), indent=1, allow_nan=False) + "\n")
    return path
