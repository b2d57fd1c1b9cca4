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

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from attnbench.suite.baseline import baseline_folders, data_key, run_baselines
from attnbench.config import check_machine
from attnbench.training.slots import child_environments
from attnbench.errors import ConfigError
from attnbench.training.signals import PARENT_ENV
from attnbench.suite.ledger import CellStatus, Ledger, archive, cell_status, take_reused
from attnbench.suite.reuse import Reusable
from attnbench.suite.spec import Cell, Spec
from attnbench.tracking.record import now, read_record


@dataclass
class Outcome:
    cell: Cell
    state: str  # done | reused | failed | interrupted | skipped | live (another process is writing the cell)
    detail: str


def baseline_configs(spec: Spec) -> list:
    """One run config per distinct task data of the grid: the trivial baselines the leaderboard judges cells by."""
    if not spec.baselines:
        return []
    chosen: dict[tuple, Any] = {}
    for cell in spec.cells():
        cfg = spec.config(cell)
        chosen.setdefault((cfg.task.name, cfg.task.dataset, data_key(cfg)), cfg)
    return list(chosen.values())


def check_machine_for(spec: Spec) -> None:
    """Refuse, before any cell runs, a grid this machine cannot run (config.check_machine: e.g. trainer=gpu on a
    CPU machine); --dry-run and --wandb do not check, since their cells may run elsewhere."""
    seen = set()
    for cell in spec.cells():
        cfg = spec.config(cell)
        key = (cfg.trainer.accelerator, cfg.trainer.devices)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_machine(cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep spec {spec.path}: cell {cell.label}: {err}") from None


def plan(spec: Spec, ledger: dict | None = None, reusable: Reusable | None = None) -> list[CellStatus]:
    """Every cell's status; `ledger` (its cells) and `reusable` (the spec's reuse folders) when the caller has them."""
    cells = Ledger(spec.output_dir, spec.name).read() if ledger is None else ledger
    reusable = Reusable(spec.reuse) if reusable is None else reusable
    return [cell_status(cell, spec.output_dir, cells, spec.hashes.get(cell.id), reusable) for cell in spec.cells()]


def verb(status: CellStatus) -> str:
    """What a sweep does with the cell, as its plan line says."""
    return "reuse" if status.state == "reusable" else "run " if status.pending else "skip"


def write_baselines(spec: Spec, say) -> None:
    """The grid's trivial baselines, computed in this process (seconds: no training); a baseline folder of other
    data (the spec's task settings changed) is set aside in .attempts/ first, like a changed cell."""
    for cfg in baseline_configs(spec):
        fingerprint = data_key(cfg)
        for _, run_dir, current in baseline_folders(cfg, fingerprint):
            if current is None and run_dir.exists():
                say(f"  {run_dir.name}: other data than the spec's; moved to {archive(run_dir, spec.output_dir)}")
        for result in run_baselines(cfg):
            say(f"  baseline {result.run_dir.name}: {result.summary} ({'written' if result.written else 'up to date'})")


class Runner:
    def __init__(self, spec: Spec, jobs: int, out=None):
        # sys.stdout as it is when the sweep runs, not when this module was imported (a test's capture may be gone).
        self.spec, self.jobs, self.out = spec, jobs, out if out is not None else sys.stdout
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
        reusable = Reusable(self.spec.reuse)
        statuses = plan(self.spec, self.ledger.read(), reusable)
        outcomes = {s.cell.id: Outcome(s.cell, "skipped" if s.state == "done" else s.state, s.reason)
                    for s in statuses if not s.pending}
        reused = [s for s in statuses if s.state == "reusable"]
        pending = [s for s in statuses if s.pending and s.state != "reusable"]
        part = "".join(f", {axis}={','.join(kept)}" for axis, kept in self.spec.only.items())
        self.say(f"sweep {self.spec.name}{' (--only' + part[1:] + ')' if part else ''}: {len(statuses)} cells, "
                 f"{len(outcomes)} done already, " + (f"{len(reused)} to copy from reuse folders, " if reused else "")
                 + f"{len(pending)} to run (output {self.spec.output_dir})")
        for folder in reusable.missing():
            self.say(f"  reuse folder {folder} does not exist (yet): nothing is copied from it")
        for s in statuses:
            self.say(f"  {verb(s)} {s.cell.id}: {s.state}: {s.reason}")
        for s in reused:
            outcomes[s.cell.id] = self._reuse(s)
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
        write_baselines(self.spec, self.say)

    def _reuse(self, status: CellStatus) -> Outcome:
        """Copy in the completed run of the same configuration (spec `reuse:`) instead of training the cell."""
        error = take_reused(status, self.spec.config(status.cell), self.spec.output_dir, self.ledger, self.say)
        if error is not None:
            return Outcome(status.cell, "failed", error)
        return Outcome(status.cell, "reused", str(self.spec.output_dir / status.cell.id / "metrics.json"))

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
                  for state in ("done", "failed", "interrupted", "skipped", "live", "reused")}
        if not counts["reused"]:
            del counts["reused"]
        wall = time.perf_counter() - self.started  # the suite time of this invocation (cells skipped cost nothing)
        self.say(f"sweep {self.spec.name} summary: " + ", ".join(f"{n} {state}" for state, n in counts.items())
                 + f" in {wall / 60:.1f} min wall time with {self.jobs} job(s)")
        for o in outcomes:
            if o.state in ("failed", "interrupted", "live"):
                self.say(f"  {o.state} {o.cell.id}: {o.detail}")


def _last_error_line(log_path: Path) -> Optional[str]:
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("attnbench:") or "Error" in line:
            return line
    return lines[-1] if lines else None
