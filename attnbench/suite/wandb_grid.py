"""`attnbench sweep --wandb`: the same grid as a W&B grid sweep, whose agents each run one cell."""

from __future__ import annotations

import itertools
from typing import Any

from attnbench.suite.spec import Spec, format_value
from attnbench.tracking.wandb_online import check_online


def wandb_sweep_config(spec: Spec) -> dict[str, Any]:
    """A W&B grid over the same axes; each agent runs `attnbench run --spec <spec> axis=value ...`, which
    rebuilds exactly the local cell (base, rules, run id, output folder) from the axis values."""
    return {
        "name": spec.name,
        "description": spec.description or f"attnbench sweep {spec.path}",
        "method": "grid",
        "parameters": {axis: {"values": list(values)} for axis, values in spec.axes.items()},
        "command": ["${env}", "${interpreter}", "-m", "attnbench", "run", "--spec", str(spec.path), "${args_no_hyphens}"],
    }


def expand_wandb_grid(config: dict[str, Any]) -> list[list[str]]:
    """The argument lists W&B's grid search hands to `${args_no_hyphens}`, one per grid point."""
    names = list(config["parameters"])
    grid = itertools.product(*(config["parameters"][name]["values"] for name in names))
    return [[f"{name}={format_value(value)}" for name, value in zip(names, point)] for point in grid]


def create_wandb_sweep(spec: Spec, project: str, entity: str | None) -> str:
    check_online("attnbench sweep --wandb")
    import wandb  # seconds to import, and only --wandb needs it (a local sweep never imports it)

    return wandb.sweep(wandb_sweep_config(spec), project=project, entity=entity)
