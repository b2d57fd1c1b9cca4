"""trainer.precision=auto: which precision a run trains in, and why (the reason goes into the run record).

- a GPU: bf16-mixed (bf16 autocast, fp32 weights and optimizer state);
- a CPU with native bf16 instructions (x86 AVX-512 BF16 or AMX): bf16-mixed, since oneDNN then runs bf16 matmuls
  several times faster than fp32 (a 1024 x 1024 matmul 4.6x on this project's 2-core machine); unless
  trainer.deterministic=true, which keeps fp32 so that a deterministic run stays comparable bit for bit with
  fp32 references;
- any other CPU: 32-true (bf16 there is emulated and slower).

An explicit trainer.precision is used as given. bf16-mixed on a CPU without oneDNN's bf16 LSTM (it needs AVX-512)
runs the LSTM layers in fp32 (models/rnn.py: run_rnn), and the reason recorded says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from attnbench.models.rnn import cpu_bf16_lstm

# /proc/cpuinfo flags of CPUs whose bf16 oneDNN runs natively (Intel Cooper Lake / Sapphire Rapids, AMD Zen 4+).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flag(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The native bf16 instruction set this CPU has (as /proc/cpuinfo names it), or None (also off Linux)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def choose_precision(cfg: DictConfig, gpu: bool) -> tuple[str, str]:
    """(Lightning precision, why) for this run on this machine."""
    precision, why = _choose(cfg, gpu)
    if (precision == "bf16-mixed" and not gpu and OmegaConf.select(cfg, "model.name") == "rnn"
            and OmegaConf.select(cfg, "model.cell") == "lstm"
            and not cpu_bf16_lstm()):
        why += "; the LSTM layers in fp32 (oneDNN has no bf16 LSTM on this CPU: it needs AVX-512)"
    return precision, why


def _choose(cfg: DictConfig, gpu: bool) -> tuple[str, str]:
    requested = cfg.trainer.precision
    if requested != "auto":
        return requested, "trainer.precision as set"
    if gpu:
        return "bf16-mixed", "auto: a GPU"
    if cfg.trainer.deterministic:
        return "32-true", "auto: fp32 on a CPU with trainer.deterministic=true"
    flag = cpu_bf16_flag()
    if flag:
        return "bf16-mixed", f"auto: the CPU has native bf16 ({flag})"
    return "32-true", "auto: the CPU has no native bf16 (AVX-512 BF16 or AMX)"
