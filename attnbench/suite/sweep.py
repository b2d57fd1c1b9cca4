"""`attnbench sweep`: run the cells of a grid, each as its own `attnbench run` process, safe to interrupt.

A spec (experiments/*.yaml) has base overrides, axes to cross and rules that add overrides to the cells whose
axis values match. A cell's run record lives at <output_dir>/<cell id>/ and is the truth about it: a record
with status "completed" for the same configuration is done; an interrupted cell (killed, or stopped by Ctrl-C)
that has a checkpoint continues from it (`resume=auto`); anything else (no folder, a failed record, an
interrupted cell without a checkpoint, a folder of a different configuration) is run again, the old folder
moved to <output_dir>/.attempts/ so no record is lost and none is duplicated. The ledger
(<output_dir>/.sweep/<name>.json) keeps each cell's history: attempts, times, errors, log file.

    spec -> cells (validated configs) -> statuses (disk + ledger) -> run the pending ones -> summary
"""

from __future__ import annotations

import fcntl
import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnbench.suite.baseline import baseline_folders, data_key, run_baselines
from attnbench.config import check_machine, check_name, config_hash, load_config
from attnbench.errors import ConfigError
from attnbench.training.checkpointing import LAST, resumable_checkpoint
from attnbench.tracking.claim import Claim, held_elsewhere
from attnbench.tracking.record import now, read_record, saved_config_hash, write_json

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
    # config_hash of each cell's full config, computed while validating it (cell id -> hash); empty when the
    # cells were not checked (`attnbench run --spec` builds and checks just the one cell it runs).
    hashes: dict[str, str] = field(default_factory=dict)

    def cell_overrides(self, values: dict[str, Any]) -> list[str]:
        """The overrides of one cell: defaults, base, the axis values, then every matching rule in order."""
        overrides = [*CELL_DEFAULTS, *self.base, *(f"{axis}={_format(values[axis])}" for axis in self.axes)]
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
        return [self.cell(values) for values in grid]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def cell_name(axes: dict[str, list[Any]], values: dict[str, Any]) -> str:
    """A readable, filesystem-safe id: group axes by value, seed as s<N>, other keys as <last key part><value>."""
    parts = []
    for axis in axes:
        value = _format(values[axis])
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
                          "baselines)") from None
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
    description = spec.description or next(
        (line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
    result = Spec(path, spec.name, description, Path(spec.output_dir), list(spec.base), dict(spec.axes),
                  list(spec.rules), spec.baselines)
    cells = result.cells()
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.id in seen:
            raise ConfigError(f"{where}: cells {seen[cell.id].label!r} and {cell.label!r} get the same id {cell.id}")
        seen[cell.id] = cell
        if not check_cells:
            continue
        try:
            result.hashes[cell.id] = config_hash(load_config(list(cell.overrides)))
        except ConfigError as err:
            raise ConfigError(f"{where}: cell {cell.label}: {err}") from None
    return result


# ----------------------------------------------------------------------------------------------- status


@dataclass
class CellStatus:
    cell: Cell
    state: str  # done | live | missing | failed | interrupted | changed
    reason: str
    resumable: bool = False  # interrupted with checkpoints/last.ckpt: continued with resume=auto

    @property
    def pending(self) -> bool:
        """To be run by this sweep: not done, and not being written by another process (live)."""
        return self.state not in ("done", "live")


def cell_status(cell: Cell, output_dir: Path, ledger: dict, expected_hash: str | None = None) -> CellStatus:
    """The cell's state on disk; `expected_hash` is its config hash when already known (Spec.hashes)."""
    run_dir = output_dir / cell.id
    record_path = run_dir / "metrics.json"
    owner = held_elsewhere(output_dir, cell.id)
    if owner is not None:
        return CellStatus(cell, "live", f"being written by another process (pid {owner}) now; left alone: run the "
                          "sweep again once it has finished")
    if not run_dir.exists():
        return CellStatus(cell, "missing", "no run folder yet")
    expected = expected_hash or config_hash(load_config(list(cell.overrides)))
    if saved_config_hash(run_dir) != expected:
        return CellStatus(cell, "changed", "its folder holds another configuration (the spec changed); running again")
    record = read_record(record_path)
    status, error = (record or {}).get("status"), (record or {}).get("error") or ""
    if status == "completed":
        return CellStatus(cell, "done", f"completed ({record_path})")
    if status == "failed" and not error.startswith("interrupted"):
        return CellStatus(cell, "failed", f"last attempt failed: {error or 'no error recorded'}")
    attempts = ledger.get(cell.id, {}).get("attempts", 0)
    how = "interrupted" if status == "failed" else "stopped without a record"
    # A torn or damaged checkpoint (a full disk, a kill mid-write) is passed over for an older good one; with none
    # good, the cell starts over (its folder moved aside) instead of failing on it again and again.
    checkpoint = resumable_checkpoint(run_dir)
    if checkpoint is None:
        then = "no usable checkpoint, starting over"
    elif checkpoint.name == LAST:
        then = "resuming from its last checkpoint"
    else:
        then = f"resuming from {checkpoint.name} (checkpoints/{LAST} is missing or damaged)"
    return CellStatus(cell, "interrupted", f"attempt {attempts} {how}; {then}", resumable=checkpoint is not None)


# ----------------------------------------------------------------------------------------------- ledger


class Ledger:
    """<output_dir>/.sweep/<name>.json: per cell attempts, state, times, error and log; one writer (the sweep)."""

    def __init__(self, output_dir: Path, name: str):
        self.dir = output_dir / ".sweep"
        self.name = name
        self.path = self.dir / f"{name}.json"
        # One lock per output folder, not per spec: two specs writing one folder would move each other's cells.
        self.lock_path = self.dir / "sweep.lock"
        self.logs = self.dir / "logs" / name
        self.cells: dict[str, dict] = {}
        self._lock_file = None
        self._mutex = threading.Lock()

    def read(self) -> dict[str, dict]:
        record = read_record(self.path) or {}
        self.cells = record.get("cells", {}) if isinstance(record.get("cells"), dict) else {}
        return self.cells

    def acquire(self) -> None:
        """One sweep per output folder at a time: a second one (of this spec or another) would run cells twice or
        move the first one's live cells aside."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.lock_path, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "pid unknown"
            self._lock_file.close()
            raise ConfigError(f"another sweep is already running into {self.dir.parent} ({owner}): wait for it to "
                              "finish, or give this spec another output_dir") from None
        self._lock_file.truncate(0)
        self._lock_file.write(f"sweep {self.name}, pid {os.getpid()}")
        self._lock_file.flush()

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def update(self, cell_id: str, **fields: Any) -> None:
        with self._mutex:
            self.cells.setdefault(cell_id, {}).update(fields)
            write_json(self.path, {"cells": self.cells})


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    cell: Cell
    state: str  # done | failed | interrupted | skipped | live (another process is writing the cell)
    detail: str


def baseline_configs(spec: Spec) -> list:
    """One run config per distinct task data of the grid: the trivial baselines the leaderboard judges cells by."""
    if not spec.baselines:
        return []
    chosen: dict[tuple, Any] = {}
    for cell in spec.cells():
        cfg = load_config(list(cell.overrides))
        chosen.setdefault((cfg.task.name, cfg.task.dataset, data_key(cfg)), cfg)
    return list(chosen.values())


def check_machine_for(spec: Spec) -> None:
    """Refuse, before any cell runs, a grid this machine cannot run (config.check_machine: e.g. trainer=gpu on a
    CPU machine); --dry-run and --wandb do not check, since their cells may run elsewhere."""
    seen = set()
    for cell in spec.cells():
        cfg = load_config(list(cell.overrides))
        key = (cfg.trainer.accelerator, cfg.trainer.devices)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_machine(cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep spec {spec.path}: cell {cell.label}: {err}") from None


def plan(spec: Spec) -> list[CellStatus]:
    ledger = Ledger(spec.output_dir, spec.name)
    cells = ledger.read()
    return [cell_status(cell, spec.output_dir, cells, spec.hashes.get(cell.id)) for cell in spec.cells()]


def child_environments(jobs: int) -> list[dict[str, str]]:
    """One environment per parallel slot: a GPU each where there are GPUs, a share of the CPU cores otherwise."""
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


class Runner:
    def __init__(self, spec: Spec, jobs: int, out=sys.stdout):
        self.spec, self.jobs, self.out = spec, jobs, out
        self.ledger = Ledger(spec.output_dir, spec.name)
        self.children: set[subprocess.Popen] = set()
        self.stopping = threading.Event()
        self._print_lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._print_lock:
            print(line, file=self.out, flush=True)

    def run(self) -> list[Outcome]:
        check_machine_for(self.spec)
        self.ledger.acquire()
        try:
            return self._run()
        finally:
            self.ledger.release()

    def _run(self) -> list[Outcome]:
        self.started = time.perf_counter()
        ledger = self.ledger.read()
        statuses = [cell_status(cell, self.spec.output_dir, ledger, self.spec.hashes.get(cell.id))
                    for cell in self.spec.cells()]
        outcomes = {s.cell.id: Outcome(s.cell, "skipped" if s.state == "done" else s.state, s.reason)
                    for s in statuses if not s.pending}
        pending = [s for s in statuses if s.pending]
        self.say(f"sweep {self.spec.name}: {len(statuses)} cells, {len(outcomes)} done already, {len(pending)} to run "
                 f"(output {self.spec.output_dir})")
        for s in statuses:
            self.say(f"  {'skip' if not s.pending else 'run '} {s.cell.id}: {s.state}: {s.reason}")
        self.baselines()
        slots: queue.Queue[dict[str, str]] = queue.Queue()
        for env in child_environments(self.jobs):
            slots.put(env)
        interrupted = False
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self._run_cell, s, slots) for s in pending]
            try:
                for future in futures:
                    outcome = future.result()
                    outcomes[outcome.cell.id] = outcome
            except KeyboardInterrupt:
                interrupted = True
                self.stop()
                for future in futures:
                    outcome = future.result()
                    outcomes[outcome.cell.id] = outcome
        ordered = [outcomes[s.cell.id] for s in statuses]
        self.summary(ordered)
        if interrupted:
            raise KeyboardInterrupt
        return ordered

    def baselines(self) -> None:
        """The grid's trivial baselines, computed in this process (seconds: no training); a baseline folder of
        other data (the spec's task settings changed) is set aside in .attempts/ first, like a changed cell."""
        for cfg in baseline_configs(self.spec):
            fingerprint = data_key(cfg)
            for _, run_dir, current in baseline_folders(cfg, fingerprint):
                if current is None and run_dir.exists():
                    self.say(f"  {run_dir.name}: other data than the spec's; moved to {archive(run_dir, self.spec.output_dir)}")
            for result in run_baselines(cfg):
                self.say(f"  baseline {result.run_dir.name}: {result.summary} "
                         f"({'written' if result.written else 'up to date'})")

    def stop(self) -> None:
        """Ctrl-C: no new cells; running ones get SIGINT, so each records itself as failed before exiting."""
        self.stopping.set()
        for child in list(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    def _run_cell(self, status: CellStatus, slots: queue.Queue) -> Outcome:
        cell = status.cell
        if self.stopping.is_set():
            return Outcome(cell, "interrupted", "not started: the sweep was interrupted")
        env = slots.get()
        try:
            return self._execute(cell, status, env)
        finally:
            slots.put(env)

    def _execute(self, cell: Cell, status: CellStatus, env: dict[str, str]) -> Outcome:
        run_dir = self.spec.output_dir / cell.id
        overrides = list(cell.overrides)
        if status.resumable:
            overrides.append("resume=auto")  # continue in place from checkpoints/last.ckpt
            self.say(f"  {cell.id}: resuming the interrupted attempt from its last checkpoint")
        elif run_dir.exists():
            try:
                archived = archive(run_dir, self.spec.output_dir)
            except ConfigError as err:  # a process outside this sweep started writing the cell meanwhile
                self.say(f"  live  {cell.id}: {err}")
                return Outcome(cell, "live", str(err))
            self.say(f"  {cell.id}: previous attempt ({status.state}) moved to {archived}")
        attempt = self.ledger.cells.get(cell.id, {}).get("attempts", 0) + 1
        log_path = self.ledger.logs / f"{cell.id}.{attempt}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ledger.update(cell.id, state="running", attempts=attempt, started_at=now(), finished_at=None,
                           error=None, log=str(log_path), overrides=overrides)
        self.say(f"  start {cell.id} (attempt {attempt}, log {log_path})")
        command = [sys.executable, "-m", "attnbench", "run", *overrides]
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            # Its own process group, so a Ctrl-C in the terminal reaches the sweep only and the sweep forwards one
            # SIGINT; PARENT_ENV makes the child die with the sweep if the sweep itself is killed.
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**env, PARENT_ENV: str(os.getpid())},
                                     start_new_session=True)
            self.children.add(child)
            try:
                code = child.wait()
            finally:
                self.children.discard(child)
        record = read_record(run_dir / "metrics.json") or {}
        if code == 0 and record.get("status") == "completed":
            self.ledger.update(cell.id, state="done", finished_at=now())
            self.say(f"  done  {cell.id}")
            return Outcome(cell, "done", str(run_dir / "metrics.json"))
        error = record.get("error") or _last_error_line(log_path) or f"exit code {code}"
        state = "interrupted" if self.stopping.is_set() else "failed"
        self.ledger.update(cell.id, state=state, finished_at=now(), error=error)
        self.say(f"  {state} {cell.id}: {error}")
        return Outcome(cell, state, f"{error} (log: {log_path})")

    def summary(self, outcomes: list[Outcome]) -> None:
        counts = {state: sum(o.state == state for o in outcomes)
                  for state in ("done", "failed", "interrupted", "skipped", "live")}
        wall = time.perf_counter() - self.started  # the suite time of this invocation (cells skipped cost nothing)
        self.say(f"sweep {self.spec.name} summary: " + ", ".join(f"{n} {state}" for state, n in counts.items())
                 + f" in {wall / 60:.1f} min wall time with {self.jobs} job(s)")
        for o in outcomes:
            if o.state in ("failed", "interrupted", "live"):
                self.say(f"  {o.state} {o.cell.id}: {o.detail}")


PARENT_ENV = "ATTNBENCH_SWEEP_PID"


def die_with_parent() -> None:
    """In a cell process: ask Linux to kill us when the sweep that started us dies (no orphan that would write
    into a folder the next sweep moves aside). SIGKILL, not SIGTERM: Lightning catches SIGTERM and may finish."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return
    # The sweep stops its cells with SIGINT; a cell inherits an ignored SIGINT from a backgrounded sweep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the sweep died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def archive(run_dir: Path, output_dir: Path) -> Path:
    """Move an unfinished or outdated run folder out of the records, keeping it for inspection; never one that a
    live process is writing (it holds the folder's claim, which the move holds too)."""
    with Claim(output_dir, run_dir.name) as claim:
        if not claim.try_acquire():
            raise ConfigError(f"{run_dir} is being written by another process (pid {claim.owner()}): not moved; "
                              "run the sweep again once it has finished")
        attempts = output_dir / ".attempts"
        attempts.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            target = attempts / f"{run_dir.name}.{n}"
            if not target.exists():
                shutil.move(str(run_dir), str(target))
                return target
    raise AssertionError("unreachable")


def _last_error_line(log_path: Path) -> Optional[str]:
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("attnbench:") or "Error" in line:
            return line
    return lines[-1] if lines else None


# ----------------------------------------------------------------------------------------------- W&B


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


def cell_from_args(spec: Spec, overrides: list[str]) -> Cell:
    """The cell named by `axis=value` arguments (what a W&B agent passes): every axis once, nothing else."""
    values: dict[str, Any] = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or key not in spec.axes:
            raise ConfigError(f"with --spec {spec.path}, pass only the axes ({', '.join(spec.axes)}) as axis=value; "
                              f"got {override!r}: put other settings in the spec's base or rules")
        matches = [v for v in spec.axes[key] if _format(v) == raw.strip()]
        if not matches:
            raise ConfigError(f"{key}={raw} is not a value of axis {key} in {spec.path}: one of {spec.axes[key]}")
        values[key] = matches[0]
    missing = [axis for axis in spec.axes if axis not in values]
    if missing:
        raise ConfigError(f"with --spec {spec.path}, give every axis: missing {', '.join(missing)}")
    return spec.cell(values)


def expand_wandb_grid(config: dict[str, Any]) -> list[list[str]]:
    """The argument lists W&B's grid search hands to `${args_no_hyphens}`, one per grid point."""
    names = list(config["parameters"])
    grid = itertools.product(*(config["parameters"][name]["values"] for name in names))
    return [[f"{name}={_format(value)}" for name, value in zip(names, point)] for point in grid]


def create_wandb_sweep(spec: Spec, project: str, entity: str | None) -> str:
    from attnbench.tracking.wandb_setup import check_online

    check_online("attnbench sweep --wandb")
    import wandb

    return wandb.sweep(wandb_sweep_config(spec), project=project, entity=entity)
