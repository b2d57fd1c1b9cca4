"""`attnbench harness --jobs 1,2`: how many training processes should share this machine? For each count N, N
harness processes start at once, each in the environment `attnbench sweep --jobs N` gives its cells (on a CPU:
OMP_NUM_THREADS = cores // N; on GPUs: one device each), each training the same model on the same stored
batches through the Lightning harness. The machine's throughput at N is the sum of their tokens/s; ratios are to
the first count. It answers the question `sweep --jobs` poses, on the real model, in one run.

    attnbench harness task=sentiment model=rnn --jobs 1,2 --steps 200
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from attnbench.errors import ConfigError
from attnbench.perf.harness import RatesToFirst
from attnbench.training.slots import child_environments


@dataclass
class JobsResult(RatesToFirst):
    config: str
    device: str
    jobs: list[int]
    threads: list[str]  # OMP_NUM_THREADS of each process at each count ("" where not set)
    steps: int
    warmup: int
    process_tokens_per_second: list[list[float]]  # per count, per process (Lightning harness side)

    file_suffix = "-jobs"

    def tokens_per_second(self) -> list[float]:
        return [sum(rates) for rates in self.process_tokens_per_second]


def parse_jobs(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if len(counts) < 2 or min(counts) < 1 or len(set(counts)) < len(counts):
        raise ConfigError(f"--jobs {text}: give at least two distinct process counts, e.g. --jobs 1,2")
    return counts


def measure_jobs(overrides: list[str], counts: list[int], steps: int, warmup: int) -> JobsResult:
    rates, threads, config, device = [], [], "", ""
    with tempfile.TemporaryDirectory(prefix="attnbench-jobs-") as tmp:
        for n in counts:
            envs = child_environments(n)
            outs = [Path(tmp) / f"jobs{n}-slot{slot}" for slot in range(n)]
            # rounds 1: each process is one side after the other, in lockstep with its peers
            procs = [subprocess.Popen([sys.executable, "-m", "attnbench", "harness", *overrides, "--steps", str(steps),
                                       "--warmup", str(warmup), "--rounds", "1", "--out", str(out)],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for env, out in zip(envs, outs)]
            errors = [p.communicate()[1] for p in procs]
            for p, err in zip(procs, errors):
                if p.returncode != 0:
                    last = (err.strip().splitlines() or ["no output"])[-1]
                    raise ConfigError(f"--jobs {n}: a harness process failed (exit {p.returncode}): {last}")
            results = [json.loads(next(out.glob("harness-*.json")).read_text()) for out in outs]
            rates.append([r["harness_tokens_per_second"] for r in results])
            threads.append(envs[0].get("OMP_NUM_THREADS", ""))
            config, device = results[0]["config"], results[0]["device"]
    return JobsResult(config=config, device=device, jobs=counts, threads=threads, steps=steps, warmup=warmup,
                      process_tokens_per_second=rates)
