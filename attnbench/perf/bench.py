"""`attnbench bench`: forward+backward time and peak memory of every attention variant against
`F.scaled_dot_product_attention`, over sequence lengths, batch sizes and dtypes.

What is timed: one self-attention call on (B, T, .) inputs and the backward of its output's sum.
- score variants (additive, dot, general, scaled_dot, custom): the attention core with heads folded into the batch,
  query/key/value (B*H, T, Dh), exactly what `multihead` runs inside for each head;
- multihead: the whole layer, (B, T, H*Dh) in and out, Q/K/V/O projections included;
- sdpa: `F.scaled_dot_product_attention` on (B, H, T, Dh), the reference every ratio is taken against.
`path=fast` is the variant's own forward without weights (fused kernels, chunked additive); `path=explicit`
asks for the weights, i.e. the naive materialised path. On a GPU timing uses CUDA events after warm-up and
reports the median; peak memory is `torch.cuda.max_memory_allocated` above the inputs. On a CPU it uses
`time.perf_counter` and reports no memory.

    attnbench bench                       # GPU: T 64..4096, B 8 and 32, bf16 and fp32; CPU: small sizes
    attnbench bench --lengths 128,512 --batch-sizes 32 --dtypes bf16 --variants additive,scaled_dot
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from attnbench.attention import ATTENTION, build_attention
from attnbench.errors import ConfigError
from attnbench.plotting import png, pyplot
from attnbench.tracking.record import finite_or_null, versions, write_atomic

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
REFERENCE = "sdpa"


@dataclass
class BenchSettings:
    variants: list[str]
    lengths: list[int]
    batch_sizes: list[int]
    dtypes: list[str]
    heads: int = 8
    head_dim: int = 64
    paths: list[str] = field(default_factory=lambda: ["fast", "explicit"])
    warmup: int = 3
    repeats: int = 10
    device: str = "auto"

    @classmethod
    def defaults(cls, device: str) -> "BenchSettings":
        variants = [*ATTENTION]
        if device == "cuda":
            return cls(variants, [64, 128, 256, 512, 1024, 2048, 4096], [8, 32], ["bf16", "fp32"], device=device)
        return cls(variants, [64, 128, 256], [2], ["fp32"], heads=2, head_dim=32, warmup=1, repeats=3, device=device)


@dataclass
class Result:
    variant: str
    path: str
    dtype: str
    batch: int
    length: int
    status: str  # ok | oom | error
    ms: float | None = None
    peak_mb: float | None = None
    ratio_to_sdpa: float | None = None
    error: str | None = None


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA device is visible: use --device cpu (small sizes) or a GPU machine")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: one of auto, cpu, cuda")
    return name


def check_settings(s: BenchSettings) -> None:
    unknown = [v for v in s.variants if v not in ATTENTION and v != REFERENCE]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join([*ATTENTION, REFERENCE])}")
    bad_dtypes = [d for d in s.dtypes if d not in DTYPES]
    if bad_dtypes:
        raise ConfigError(f"unknown dtype(s) {', '.join(bad_dtypes)}: choose from {', '.join(DTYPES)}")
    for name in ("lengths", "batch_sizes"):
        values = getattr(s, name)
        if not values or any(v < 1 for v in values):
            raise ConfigError(f"--{name.replace('_', '-')} needs positive integers, got {values}")
    bad_paths = [p for p in s.paths if p not in ("fast", "explicit")]
    if bad_paths or not s.paths:
        raise ConfigError(f"--paths {','.join(s.paths)}: choose from fast, explicit")
    if s.heads < 1 or s.head_dim < 1 or s.warmup < 0 or s.repeats < 1:
        raise ConfigError("--heads, --head-dim and --repeats must be positive and --warmup not negative")


def _case(variant: str, path: str, dtype: torch.dtype, B: int, T: int, H: int, Dh: int,
          device: str) -> Callable[[], None]:
    """A closure running one forward+backward of the case (inputs and module built once, outside the timing)."""
    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=dtype, requires_grad=True)

    if variant == REFERENCE:
        q, k, v = leaf(B, H, T, Dh), leaf(B, H, T, Dh), leaf(B, H, T, Dh)

        def step() -> None:
            F.scaled_dot_product_attention(q, k, v).sum().backward()
        return step
    if variant == "multihead":
        module = build_attention("multihead", query_dim=H * Dh, key_dim=H * Dh, value_dim=H * Dh, heads=H)
        x = leaf(B, T, H * Dh)
        inputs = (x, x, x)
    else:
        module = build_attention(variant, query_dim=Dh, key_dim=Dh, value_dim=Dh)
        inputs = (leaf(B * H, T, Dh), leaf(B * H, T, Dh), leaf(B * H, T, Dh))
    module = module.to(device=device, dtype=dtype)
    need_weights = path == "explicit"

    def step() -> None:
        out, _ = module(*inputs, need_weights=need_weights)
        out.sum().backward()
    return step


def measure(step: Callable[[], None], device: str, warmup: int, repeats: int) -> tuple[float, float | None]:
    """Median milliseconds of `step` and the peak memory it added (GPU only)."""
    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), None


def run_bench(s: BenchSettings, progress: Callable[[str], None] = lambda line: None) -> list[Result]:
    results: list[Result] = []
    variants = [REFERENCE, *[v for v in s.variants if v != REFERENCE]]
    for dtype_name in s.dtypes:
        for B in s.batch_sizes:
            for T in s.lengths:
                for variant in variants:
                    for path in (["fast"] if variant == REFERENCE else s.paths):
                        result = _one(variant, path, dtype_name, B, T, s)
                        results.append(result)
                        progress(f"{variant:>10} {path:>8} {dtype_name} B={B} T={T}: "
                                 + (f"{result.ms:.3f} ms" if result.ms is not None else result.status))
    reference = {(r.dtype, r.batch, r.length): r.ms for r in results if r.variant == REFERENCE and r.ms}
    for r in results:
        ref = reference.get((r.dtype, r.batch, r.length))
        if r.ms is not None and ref:
            r.ratio_to_sdpa = r.ms / ref
    return results


def _one(variant: str, path: str, dtype_name: str, B: int, T: int, s: BenchSettings) -> Result:
    result = Result(variant, path, dtype_name, B, T, status="ok")
    try:
        step = _case(variant, path, DTYPES[dtype_name], B, T, s.heads, s.head_dim, s.device)
        result.ms, result.peak_mb = measure(step, s.device, s.warmup, s.repeats)
    except torch.OutOfMemoryError:
        result.status = "oom"
    except RuntimeError as err:  # e.g. a dtype a CPU kernel lacks
        result.status, result.error = "error", str(err).splitlines()[0]
    finally:
        if s.device == "cuda":
            torch.cuda.empty_cache()
    return result


def device_label(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"cpu {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_results(results: list[Result], s: BenchSettings, out_dir: Path) -> list[Path]:
    label = device_label(s.device)
    name = slug(label if s.device == "cuda" else f"cpu-{platform.machine()}")
    payload: dict[str, Any] = {
        "device": label,
        "settings": asdict(s),
        "versions": {k: v for k, v in versions().items() if k in ("python", "torch", "attnbench")},
        "results": [asdict(r) for r in results],
    }
    files = {out_dir / f"{name}.json": json.dumps(finite_or_null(payload), indent=1, allow_nan=False) + "\n", out_dir / f"{name}.png": plot(results, label)}
    for path, content in files.items():
        write_atomic(path, content)
    return list(files)


def plot(results: list[Result], label: str) -> bytes:
    plt = pyplot()
    panels = sorted({(r.dtype, r.batch) for r in results})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (dtype, batch) in zip(axes[0], panels):
        lines = sorted({(r.variant, r.path) for r in results if (r.dtype, r.batch) == (dtype, batch)})
        for variant, path in lines:
            points = sorted((r.length, r.ms) for r in results
                            if (r.variant, r.path, r.dtype, r.batch) == (variant, path, dtype, batch) and r.ms)
            if points:
                style = "-" if path == "fast" else ":"
                ax.plot(*zip(*points), style, marker="o", markersize=3,
                        label=variant if variant == REFERENCE else f"{variant} ({path})",
                        color="black" if variant == REFERENCE else None, linewidth=2.5 if variant == REFERENCE else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("forward+backward ms (median)")
        ax.set_title(f"{dtype}, B={batch}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"attention fwd+bwd vs F.scaled_dot_product_attention: {label}", fontsize=9)
    return png(fig, tight=False)
