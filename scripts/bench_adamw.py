"""Fused vs torch's default AdamW step on a run's own parameters (with gradients of one real batch), side by side
in one process: the optimizer step is the part of a small model's training step the harness cannot vary.

    python scripts/bench_adamw.py task=sentiment model=rnn attention=additive --out results/bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from attnbench.config import load_config
from attnbench.perf.bench import slug
from attnbench.perf.harness import plain_loss
from attnbench.tasks.families import build_datamodule
from attnbench.tracking.record import device_name, write_atomic
from attnbench.training.run import build_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    cfg = load_config([*args.overrides, "trainer.accelerator=cpu"])
    data = build_datamodule(cfg)
    data.setup("fit")
    task = build_task(cfg, data).train()
    plain_loss(task, next(iter(data.train_dataloader()))).backward()
    params = [p for p in task.parameters() if p.grad is not None]
    times: dict[str, list[float]] = {"default": [], "fused": []}
    for r in range(args.rounds + 1):  # round 0 untimed; then alternating order
        for name in (["default", "fused"] if r % 2 else ["fused", "default"]):
            optimizer = torch.optim.AdamW(params, lr=1e-3, fused=name == "fused")
            optimizer.step()
            start = time.perf_counter()
            for _ in range(args.steps):
                optimizer.step()
            if r:
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    ms = {name: sum(t) / len(t) for name, t in times.items()}
    result = {"config": f"{cfg.task.name}/{cfg.model.name}/{cfg.attention.name}", "device": device_name(False),
              "parameters": sum(p.numel() for p in params), "steps": args.steps, "rounds": args.rounds,
              "ms_per_step": {k: round(v, 3) for k, v in ms.items()}, "round_ms": times,
              "speedup_fused": round(ms["default"] / ms["fused"], 3)}
    path = Path(args.out) / f"adamw-{slug(result['device'])}-{slug(result['config'])}.json"
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    print(f"AdamW step on {result['parameters']:,} parameters: default {ms['default']:.2f} ms, fused "
          f"{ms['fused']:.2f} ms, {result['speedup_fused']:.2f}x ({path})")


if __name__ == "__main__":
    main()
