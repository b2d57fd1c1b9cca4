"""Sweep specs (experiments/*.yaml): their schema, the cells they cross, and each cell's id and overrides.

A spec has base overrides, axes to cross and rules that add overrides to the cells whose axis values match;
`load_spec` checks its shape, its rules and (check_cells) every cell's configuration, one line per problem.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnbench.config import check_name, config_hash, load_config
from attnbench.errors import ConfigError
from attnbench.suite.claims import Claim, ClaimSchema, check_claims

# Overrides every cell gets before the spec's own (which may change them): logs go to files, not terminals.
CELL_DEFAULTS = ("trainer.enable_progress_bar=false",)
RESERVED_KEYS = ("run_id", "output_dir")
GROUP_AXES = ("task", "model", "attention", "trainer")


@dataclass
class Rule:
    when: dict[str, Any] = field(default_factory=dict)
    set: list[str] = field(default_factory=list)


@dataclass
class SweepSchema:
    name: str = "sweep"
    description: str = ""
    output_dir: str = "results/runs"
    base: list[str] = field(default_factory=list)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    baselines: bool = True  # write each task's trivial baselines (attnbench baseline) beside the cells
    # `--launcher slurm` resources for every cell's job (suite/slurm.py Resources); the flags override them.
    slurm: dict[str, Any] = field(default_factory=dict)
    # Published findings the sweep sets out to reproduce, tested by `attnbench leaderboard --claims` (suite/claims.py).
    claims: list[ClaimSchema] = field(default_factory=list)
    # Other sweeps' output folders: a cell whose configuration completed there is copied, not trained (suite/reuse.py).
    reuse: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cell:
    id: str
    values: tuple[tuple[str, Any], ...]  # (axis, value) in spec order
    overrides: tuple[str, ...]  # everything `attnbench run` gets, run_id and output_dir included

    @property
    def label(self) -> str:
        return " ".join(f"{axis}={value}" for axis, value in self.values)


@dataclass
class Spec:
    path: Path
    name: str
    description: str
    output_dir: Path
    base: list[str]
    axes: dict[str, list[Any]]
    rules: list[Rule]
    baselines: bool = True
    slurm: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    # Each cell's validated config and its config_hash, kept from validating it (cell id -> ...); empty when the
    # cells were not checked (`attnbench run --spec` builds and checks just the one cell it runs).
    configs: dict[str, DictConfig] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    # `sweep --only`: axis -> the values kept (as written in the spec); cells() yields only the matching cells, with
    # the ids, overrides and folders they have in the whole grid, so a part run is the same as the whole run's.
    only: dict[str, list[str]] = field(default_factory=dict)
    reuse: list[Path] = field(default_factory=list)

    def config(self, cell: Cell) -> DictConfig:
        """The cell's full config: the one load_spec validated, else composed now."""
        cfg = self.configs.get(cell.id)
        return cfg if cfg is not None else load_config(list(cell.overrides))

    def cell_overrides(self, values: dict[str, Any]) -> list[str]:
        """The overrides of one cell: defaults, base, the axis values, then every matching rule in order."""
        overrides = [*CELL_DEFAULTS, *self.base, *(f"{axis}={format_value(values[axis])}" for axis in self.axes)]
        for rule in self.rules:
            if all(str(values[axis]) == str(value) for axis, value in rule.when.items()):
                overrides.extend(rule.set)
        return overrides

    def cell(self, values: dict[str, Any]) -> Cell:
        cell_id = cell_name(self.axes, values)
        overrides = [*self.cell_overrides(values), f"run_id={cell_id}", f"output_dir={self.output_dir}"]
        return Cell(cell_id, tuple((axis, values[axis]) for axis in self.axes), tuple(overrides))

    def cells(self) -> list[Cell]:
        grid = [dict(zip(self.axes, combo)) for combo in itertools.product(*self.axes.values())]
        grid = [v for v in grid if all(format_value(v[axis]) in kept for axis, kept in self.only.items())]
        return [self.cell(values) for values in grid]

    def select(self, items: list[str] | None) -> "Spec":
        """The spec narrowed by `--only AXIS=VALUE[,VALUE...]` items (repeatable; values of one axis are alternatives,
        axes are combined); a bad item is a ConfigError naming the axes or values the spec has."""
        only: dict[str, list[str]] = {}
        for item in items or []:
            axis, sep, values = item.partition("=")
            if not sep or not axis or not values:
                raise ConfigError(f"--only {item}: give AXIS=VALUE[,VALUE...], e.g. --only task=translation")
            if axis not in self.axes:
                raise ConfigError(f"--only {item}: sweep spec {self.path} has no axis {axis} "
                                  f"(axes: {', '.join(self.axes)})")
            known = [format_value(v) for v in self.axes[axis]]
            for value in values.split(","):
                if value not in known:
                    raise ConfigError(f"--only {item}: {value} is not a value of axis {axis} in sweep spec {self.path} "
                                      f"(values: {', '.join(known)})")
            kept = set(only.get(axis, known)) & set(values.split(","))
            only[axis] = [v for v in known if v in kept]
        narrowed = dataclasses.replace(self, only=only)
        if items and not narrowed.cells():
            raise ConfigError(f"--only {' --only '.join(items)}: no cell of sweep spec {self.path} matches all of them")
        return narrowed


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def cell_name(axes: dict[str, list[Any]], values: dict[str, Any]) -> str:
    """A readable, filesystem-safe id: group axes by value, seed as s<N>, other keys as <last key part><value>."""
    parts = []
    for axis in axes:
        value = format_value(values[axis])
        if axis in GROUP_AXES:
            parts.append(value)
        elif axis == "seed":
            parts.append(f"s{value}")
        else:
            parts.append(f"{axis.rsplit('.', 1)[-1]}{value}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def load_spec(path: str | Path, check_cells: bool = True) -> Spec:
    """Read and check a spec: its shape, its rules, and (check_cells) every cell's configuration, one line per
    problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist: pass a YAML file such as experiments/leaderboard.yaml")
    try:
        raw = OmegaConf.load(path)
        spec = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SweepSchema), raw))
    except OmegaConfBaseException as err:
        msg = str(err).splitlines()[0]
        raise ConfigError(f"sweep spec {path}: {msg} (keys: name, description, output_dir, base, axes, rules, "
                          "baselines, slurm, claims, reuse)") from None
    except Exception as err:  # YAML syntax
        raise ConfigError(f"sweep spec {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    where = f"sweep spec {path}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", spec.name):
        raise ConfigError(f"{where}: name={spec.name!r} must be letters, digits, '_', '.' or '-' (it names the ledger)")
    try:
        check_name("name", spec.name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not spec.axes:
        raise ConfigError(f"{where}: no axes: give at least one, e.g. axes: {{attention: [additive, dot]}}")
    for axis, values in spec.axes.items():
        if axis in RESERVED_KEYS:
            raise ConfigError(f"{where}: {axis} cannot be an axis: the sweep sets it for every cell")
        if not values:
            raise ConfigError(f"{where}: axis {axis} has no values: list at least one")
        if len(set(map(str, values))) != len(values):
            raise ConfigError(f"{where}: axis {axis} repeats a value: {values}")
        if any(isinstance(v, (dict, list)) for v in values):
            raise ConfigError(f"{where}: axis {axis} values must be scalars (names or numbers), got {values}")
    for override in [*spec.base, *(o for rule in spec.rules for o in rule.set)]:
        key = override.partition("=")[0]
        if "=" not in override:
            raise ConfigError(f"{where}: override {override!r} is not key=value")
        if key in RESERVED_KEYS:
            raise ConfigError(f"{where}: {key} is set by the sweep (output_dir: give it at the top of the spec)")
        if key in spec.axes:
            raise ConfigError(f"{where}: {override!r} sets axis {key}; an axis is varied, not overridden")
    for i, rule in enumerate(spec.rules):
        for axis, value in rule.when.items():
            if axis not in spec.axes:
                raise ConfigError(f"{where}: rules[{i}].when names {axis}, which is not an axis ({', '.join(spec.axes)})")
            if str(value) not in map(str, spec.axes[axis]):
                raise ConfigError(f"{where}: rules[{i}].when {axis}={value} is not one of the axis values {spec.axes[axis]}")
    variants = {str(v) for v in spec.axes.get("attention", [])} | {
        o.partition("=")[2] for o in [*spec.base, *(o for rule in spec.rules for o in rule.set)]
        if o.partition("=")[0] == "attention"}
    claims = check_claims(spec.claims, where, spec.axes, variants)
    reuse = [Path(folder) for folder in spec.reuse]
    for folder in reuse:
        if folder.resolve() == Path(spec.output_dir).resolve():
            raise ConfigError(f"{where}: reuse lists {folder}, the spec's own output_dir: list other sweeps' folders")
    description = spec.description or next(
        (line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
    result = Spec(path, spec.name, description, Path(spec.output_dir), list(spec.base), dict(spec.axes),
                  list(spec.rules), spec.baselines, dict(spec.slurm or {}), claims, reuse=reuse)
    cells = result.cells()
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.id in seen:
            raise ConfigError(f"{where}: cells {seen[cell.id].label!r} and {cell.label!r} get the same id {cell.id}")
        seen[cell.id] = cell
        if not check_cells:
            continue
        try:
            result.configs[cell.id] = load_config(list(cell.overrides))
            result.hashes[cell.id] = config_hash(result.configs[cell.id])
        except ConfigError as err:
            raise ConfigError(f"{where}: cell {cell.label}: {err}") from None
    return result


def cell_from_args(spec: Spec, overrides: list[str]) -> Cell:
    """The cell named by `axis=value` arguments (what a W&B agent passes): every axis once, nothing else."""
    values: dict[str, Any] = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or key not in spec.axes:
            raise ConfigError(f"with --spec {spec.path}, pass only the axes ({', '.join(spec.axes)}) as axis=value; "
                              f"got {override!r}: put other settings in the spec's base or rules")
        matches = [v for v in spec.axes[key] if format_value(v) == raw.strip()]
        if not matches:
            raise ConfigError(f"{key}={raw} is not a value of axis {key} in {spec.path}: one of {spec.axes[key]}")
        values[key] = matches[0]
    missing = [axis for axis in spec.axes if axis not in values]
    if missing:
        raise ConfigError(f"with --spec {spec.path}, give every axis: missing {', '.join(missing)}")
    return spec.cell(values)
