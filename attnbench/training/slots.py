"""How parallel training processes share one machine: the environment of each slot of `attnbench sweep --jobs N`
(also what `attnbench harness --jobs` measures)."""

from __future__ import annotations

import os


def child_environments(jobs: int) -> list[dict[str, str]]:
    """One environment per parallel slot: a GPU each where there are GPUs, a share of the CPU cores otherwise."""
    # Lazy as before; only the GPU count needs torch (suite.baseline and tracking.record import it already).
    import torch

    gpus = torch.cuda.device_count()
    envs = []
    for slot in range(jobs):
        env = dict(os.environ)
        if gpus:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
            env["CUDA_VISIBLE_DEVICES"] = ids[slot % len(ids)]
        elif jobs > 1:
            # Several torch processes on the same cores each spawning cores-many threads run many times slower.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
        envs.append(env)
    return envs
