"""`attnbench sweep --launcher slurm`: the cells a sweep must run, submitted as Slurm job arrays through submitit.

The decisions are the local launcher's (suite/ledger.py `cell_status`: done, resume, start over), made twice: at
submission, to choose the cells (a cell whose job is still pending or running is left alone), and again by the
job when it starts, to choose between `resume=auto` and moving the old folder aside. The run records stay the
truth; the ledger adds each cell's job id, submission time and log.

A job runs its cell as the same `attnbench run` process the local launcher starts. Preemption and time limits
follow submitit's checkpointing protocol: Slurm signals the job (SIGTERM, then submitit's USR2 for preemption;
USR2 alone `signal_delay_s` before the time limit), the cell process stops and records itself as interrupted with
checkpoints/last.ckpt in place, and `CellJob.checkpoint` hands submitit the same job to requeue, which on restart
resumes from that checkpoint. A cell with trainer.devices=N gets N tasks in its allocation (one process per
device, Lightning's SLURMEnvironment takes the ranks from Slurm).

    spec + resources -> plan (ledger + Slurm accounting + disk) -> arrays of CellJob -> ledger (job ids)
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from attnbench.errors import ConfigError
from attnbench.suite.ledger import CellStatus, Ledger, archive, cell_status, take_reused
from attnbench.suite.reuse import Reusable
from attnbench.suite.spec import Cell, Spec
from attnbench.tracking.record import now, read_record

# Slurm states (sacct) of a job that has not ended; a cell whose job is in one of them is not submitted again.
IN_FLIGHT = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "COMPLETING",
             "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "READY"}
# How long a stopping cell process may take to record itself before the job hands itself back for requeueing.
STOP_GRACE_S = 60.0


# ----------------------------------------------------------------------------------------------- resources


@dataclass
class Resources:
    """What each cell's job asks Slurm for; the spec's `slurm:` block, then the command line's flags."""

    partition: Optional[str] = None
    account: Optional[str] = None
    time: str = "60"  # Slurm's formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    gpus_per_cell: int = 0
    cpus_per_cell: int = 1  # cores per cell (split between its processes when trainer.devices > 1)
    mem: Optional[str] = None  # per cell, sbatch --mem: e.g. 16G; None = the cluster's default
    array_parallelism: int = 64  # cells of one array running at once
    signal_delay_s: int = 90  # USR2 this long before the time limit: the cell stops and is requeued
    sbatch: dict[str, str] = field(default_factory=dict)  # other sbatch options, name -> value

    @property
    def timeout_min(self) -> int:
        return parse_time(self.time)


FLAGS = [f.name for f in fields(Resources)]


def parse_time(text: str) -> int:
    """Slurm's --time formats to whole minutes (rounded up), or a one-line error naming the formats."""
    value = str(text).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value)
    if not match or value in ("0",):
        raise ConfigError(f"slurm time={text!r} is not a Slurm time limit: give minutes (90), HH:MM:SS (4:00:00) "
                          "or D-HH:MM:SS (1-12:00:00)")
    days, a, b, c = match.groups()
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = int(a), int(b or 0), int(c or 0)
        total = int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    elif c is not None:  # HH:MM:SS
        total = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        total = int(a) * 60 + int(b)
    else:  # minutes
        total = int(a) * 60
    if total <= 0:
        raise ConfigError(f"slurm time={text!r} must be longer than zero")
    return math.ceil(total / 60)


def resources(spec_block: dict[str, Any], flags: dict[str, Any]) -> Resources:
    """The spec's `slurm:` block overridden by the flags that were given (None = not given); checked."""
    unknown = sorted(set(spec_block) - set(FLAGS))
    if unknown:
        raise ConfigError(f"slurm: unknown key(s) {', '.join(unknown)} in the spec: use {', '.join(FLAGS)}")
    merged: dict[str, Any] = dict(spec_block)
    for key, value in flags.items():
        if value is None:
            continue
        if key == "sbatch":
            merged["sbatch"] = {**merged.get("sbatch", {}), **value}
        else:
            merged[key] = value
    try:
        res = Resources(**merged)
    except TypeError as err:
        raise ConfigError(f"slurm: {err}") from None
    for key in ("gpus_per_cell", "cpus_per_cell", "array_parallelism", "signal_delay_s"):
        value = getattr(res, key)
        low = 0 if key in ("gpus_per_cell", "signal_delay_s") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"slurm {key}={value!r} must be an integer >= {low}")
    if not isinstance(res.sbatch, dict):
        raise ConfigError(f"slurm sbatch={res.sbatch!r} must map option names to values, e.g. {{qos: high}}")
    res = replace(res, sbatch={str(k).lstrip("-"): str(v) for k, v in res.sbatch.items()})
    res.timeout_min  # checks the format
    return res


def parse_sbatch_options(items: list[str] | None) -> dict[str, str] | None:
    """--sbatch KEY=VALUE, repeatable, to a dict (None when not given)."""
    if not items:
        return None
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip("- "):
            raise ConfigError(f"--sbatch {item!r} is not KEY=VALUE: e.g. --sbatch qos=high --sbatch constraint=a100")
        options[key.strip().lstrip("-")] = value.strip()
    return options


# ----------------------------------------------------------------------------------------------- the cluster


def check_cluster(res: Resources) -> None:
    """Before anything is written: Slurm's commands are here, the partition exists and admits the time limit
    (checked here too: a cluster without EnforcePartLimits accepts such a job and leaves it pending forever)."""
    absent = [tool for tool in ("sbatch", "sacct", "scancel", "sinfo") if shutil.which(tool) is None]
    if absent:
        raise ConfigError(f"--launcher slurm: {', '.join(absent)} not found on PATH: run the sweep on a Slurm "
                          "login node, or without --launcher slurm to run its cells on this machine")
    limits = partition_limits(_slurm(["sinfo", "-h", "-o", "%P %l"], "reach the cluster"))
    names = sorted(name for name in limits if name != DEFAULT)
    partition = res.partition if res.partition is not None else limits.get(DEFAULT)
    if res.partition is not None and res.partition not in limits:
        raise ConfigError(f"--launcher slurm: partition {res.partition!r} does not exist on this cluster: use one of "
                          f"{', '.join(names) or '(none)'} (sinfo)")
    limit = limits.get(partition) if partition is not None else None
    if limit is not None and res.timeout_min > limit:
        raise ConfigError(f"--launcher slurm: time {res.time} ({res.timeout_min} min) is over partition "
                          f"{partition!r}'s limit of {limit} min: give --time {limit} or less, or another --partition")


DEFAULT = "*"  # partition_limits' key for the name of the cluster's default partition


def partition_limits(sinfo: str) -> dict[str, Any]:
    """`sinfo -h -o "%P %l"` to {partition: time limit in minutes, or None when unlimited}; the default partition
    (sinfo marks it with *) is also named under DEFAULT."""
    limits: dict[str, Any] = {}
    for line in sinfo.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        name, limit = parts
        if name.endswith("*"):
            name = name.rstrip("*")
            limits[DEFAULT] = name
        try:
            limits[name] = None if limit.lower() in ("infinite", "unlimited", "n/a") else parse_time(limit)
        except ConfigError:
            limits[name] = None  # a format this does not know: Slurm judges it
    return limits


def _slurm(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"--launcher slurm: could not {what} ({' '.join(command)}): {err}") from None
    if done.returncode != 0:
        raise ConfigError(f"--launcher slurm: could not {what} ({' '.join(command)}): "
                          f"{sbatch_error(done.stderr or done.stdout or f'exit code {done.returncode}')}")
    return done.stdout


def sbatch_error(text: str) -> str:
    """The line of sbatch's (or submitit's) message that says why: "Batch job submission failed: ...", an
    "unrecognized option" or "invalid" line, an error line, in that order; never the "Try --help" hint."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip() and "--help" not in line]
    picks = (lambda l: "submission failed" in l, lambda l: "unrecognized" in l or "invalid" in l.lower(),
             lambda l: "error:" in l or "fatal:" in l, lambda l: True)
    for pick in picks:
        chosen = [line for line in lines if pick(line)]
        if chosen:
            return re.sub(r"^([\w-]+: )?(error|fatal): ", "", chosen[-1])
    return "no message"


def _submitit():
    """submitit, imported without its logging set-up: on import it runs logging.config.dictConfig, which closes every
    handler the process already has (a test runner's capture, an application's log file). Only here, on the
    submitting side; the jobs, started later, configure submitit's logging as usual (its messages in the job logs)."""
    if "submitit" not in sys.modules:
        before = os.environ.get("SUBMITIT_LOG_LEVEL")
        os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
        try:
            import submitit  # noqa: F401
            import submitit.slurm.slurm  # noqa: F401
        finally:
            if before is None:
                os.environ.pop("SUBMITIT_LOG_LEVEL", None)
            else:
                os.environ["SUBMITIT_LOG_LEVEL"] = before
    return sys.modules["submitit"]


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job id ("123" or array task "123_4"): the accounting's (sacct, through submitit's
    watcher), else the controller's queue (squeue: a job just submitted can be missing from sacct for a few
    seconds); a job neither knows is UNKNOWN."""
    watcher = _submitit().slurm.slurm.SlurmInfoWatcher(delay_s=0)
    for job_id in job_ids:
        watcher.register_job(job_id)
    if job_ids:
        watcher.update()
    states = {job_id: watcher.get_state(job_id, mode="cache").split()[0].rstrip("+") for job_id in job_ids}
    unknown = [job_id for job_id, state in states.items() if state == "UNKNOWN"]
    if unknown and shutil.which("squeue"):
        arrays = sorted({job_id.split("_")[0] for job_id in unknown})
        try:
            queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(arrays)], timeout=60,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout
        except (OSError, subprocess.TimeoutExpired):
            queue = ""
        queued = dict(line.split()[:2] for line in queue.splitlines() if len(line.split()) >= 2)
        states.update({job_id: queued[job_id] for job_id in unknown if job_id in queued})
    return states


# ----------------------------------------------------------------------------------------------- the job


class CellJob:
    """One cell, as submitit runs it on a node: the `attnbench run` of the cell, resumed if it was interrupted.

    submitit pickles the object; `checkpoint` (submitit's protocol, called on preemption or near the time limit)
    stops the cell process and returns the same job to requeue."""

    def __init__(self, cell_id: str, overrides: tuple[str, ...], output_dir: str, expected_hash: str | None,
                 log: str):
        self.cell_id, self.overrides, self.output_dir = cell_id, tuple(overrides), output_dir
        self.expected_hash, self.log = expected_hash, log
        self._child: subprocess.Popen | None = None
        self._exited = threading.Event()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_child", "_exited")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._child, self._exited = None, threading.Event()

    def __call__(self) -> dict:
        from attnbench.training.signals import PARENT_ENV

        output_dir = Path(self.output_dir)
        run_dir = output_dir / self.cell_id
        overrides = list(self.overrides)
        rank = int(os.environ.get("SLURM_PROCID", "0"))
        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        decision = Path(self.log).parent / f".{os.environ.get('SLURM_JOB_ID', 'job')}.{restart}.resume"
        if rank == 0:
            plan = self._prepare(output_dir, run_dir)
            decision.write_text(plan)
        else:  # the other ranks of a DDP cell follow rank 0's decision
            deadline = time.monotonic() + 600
            while not decision.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            plan = decision.read_text() if decision.exists() else "fresh"
        if plan == "done":  # requeued after the cell had finished (a signal in its last moments): nothing to redo
            with open(self.log, "a") as log:
                log.write(f"# slurm job {os.environ.get('SLURM_JOB_ID')}, restart {restart}, rank {rank}: the cell "
                          "completed before the requeue; its record is kept, nothing is run\n")
            if rank != 0:
                return {"cell": self.cell_id, "rank": rank}
            return {"cell": self.cell_id, "status": "completed", "record": str(run_dir / "metrics.json")}
        if plan == "resume":
            overrides.append("resume=auto")
        env = dict(os.environ)
        env[PARENT_ENV] = str(os.getpid())
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            env["OMP_NUM_THREADS"] = cpus
        env.pop("WANDB_SERVICE", None)  # each cell its own W&B service
        command = [sys.executable, "-m", "attnbench", "run", *overrides]
        with open(self.log, "a") as log:
            log.write(f"$ {' '.join(command)}  # slurm job {os.environ.get('SLURM_JOB_ID')}, restart {restart}, "
                      f"rank {rank}\n")
            log.flush()
            # USR2 is submitit's signal to this process; its default action would kill the cell mid-step.
            self._child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           preexec_fn=_ignore_usr2)
            # Reaped by a thread: checkpoint() waits for the child from a signal handler, and Popen.wait holds a
            # lock that a handler interrupting it could not take.
            threading.Thread(target=self._reap, daemon=True).start()
            while not self._exited.wait(1.0):
                pass
        code = self._child.returncode
        if rank != 0:
            if code != 0:
                raise RuntimeError(f"cell {self.cell_id} rank {rank}: attnbench run exited with code {code}")
            return {"cell": self.cell_id, "rank": rank}
        record = read_record(run_dir / "metrics.json") or {}
        if code == 0 and record.get("status") == "completed":
            return {"cell": self.cell_id, "status": "completed", "record": str(run_dir / "metrics.json")}
        raise RuntimeError(f"cell {self.cell_id}: {record.get('error') or f'attnbench run exited with code {code}'} "
                           f"(log: {self.log})")

    def _reap(self) -> None:
        assert self._child is not None
        self._child.wait()
        self._exited.set()

    def _prepare(self, output_dir: Path, run_dir: Path) -> str:
        """The local launcher's decision for this cell now: "done" (its completed record stands), "resume", or
        "fresh" (an old folder moved aside)."""
        cell = Cell(self.cell_id, (), self.overrides)
        status = cell_status(cell, output_dir, {}, self.expected_hash)
        if status.state == "live":
            raise RuntimeError(f"cell {self.cell_id}: {status.reason}")
        if status.state == "done":
            return "done"
        if status.resumable:
            return "resume"
        if run_dir.exists():
            archive(run_dir, output_dir)
        return "fresh"

    def checkpoint(self):
        """submitit's checkpoint hook (preemption, time limit): stop the cell process, which records itself as
        interrupted and keeps checkpoints/last.ckpt, then requeue this same job (it resumes from there)."""
        import submitit

        child = self._child
        if child is not None and not self._exited.is_set():
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
            self._exited.wait(STOP_GRACE_S)
        return submitit.helpers.DelayedSubmission(CellJob(self.cell_id, self.overrides, self.output_dir,
                                                          self.expected_hash, self.log))


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


# ----------------------------------------------------------------------------------------------- the launcher


@dataclass
class Decision:
    cell: Cell
    submit: bool
    state: str  # the cell's state on disk (ledger.cell_status), or "queued" (its job is pending or running)
    reason: str
    resume: bool = False
    job_id: Optional[str] = None
    reuse: Optional[CellStatus] = None  # a reusable cell's status: copied in from a `reuse:` folder, not submitted


def tasks_of(spec: Spec, cell: Cell) -> int:
    """Processes of the cell's job: one per device of a DDP cell, else one."""
    devices = spec.config(cell).trainer.devices
    return devices if isinstance(devices, int) and devices > 1 else 1


class SlurmLauncher:
    def __init__(self, spec: Spec, res: Resources, out=None):
        self.spec, self.res = spec, res
        self.out = out if out is not None else sys.stdout
        self.ledger = Ledger(spec.output_dir, spec.name)
        self.folder = self.ledger.dir / "slurm" / spec.name  # submitit's pickles, sbatch files and job logs

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # ------------------------------------------------------------------ deciding

    def decide(self) -> list[Decision]:
        ledger = self.ledger.read()
        cells = self.spec.cells()
        ids = [ledger[c.id]["job_id"] for c in cells if ledger.get(c.id, {}).get("job_id")]
        states = job_states(ids) if ids and shutil.which("sacct") else {}
        decisions = []
        reusable = Reusable(self.spec.reuse)
        for cell in cells:
            status = cell_status(cell, self.spec.output_dir, ledger, self.spec.hashes.get(cell.id), reusable)
            job_id = ledger.get(cell.id, {}).get("job_id")
            slurm_state = states.get(job_id) if job_id else None
            if status.state != "done" and slurm_state in IN_FLIGHT:
                decisions.append(Decision(cell, False, "queued", f"job {job_id} is {slurm_state}: left alone",
                                          job_id=job_id))
            elif status.state == "reusable":  # copied in by submit(), not submitted
                decisions.append(Decision(cell, False, status.state, status.reason, job_id=job_id, reuse=status))
            else:
                decisions.append(Decision(cell, status.pending, status.state, status.reason, status.resumable, job_id))
        return decisions

    def groups(self, decisions: list[Decision]) -> dict[int, list[Decision]]:
        """Cells to submit, by task count (one job array per count: an array's tasks share one sbatch header)."""
        grouped: dict[int, list[Decision]] = {}
        for d in decisions:
            if d.submit:
                grouped.setdefault(tasks_of(self.spec, d.cell), []).append(d)
        return grouped

    def parameters(self, tasks: int) -> dict[str, Any]:
        """submitit SlurmExecutor parameters for cells of `tasks` processes."""
        res = self.res
        params: dict[str, Any] = {
            "job_name": f"attnbench-{self.spec.name}", "time": res.timeout_min, "nodes": 1,
            "ntasks_per_node": tasks, "cpus_per_task": max(1, res.cpus_per_cell // tasks),
            "array_parallelism": res.array_parallelism, "signal_delay_s": res.signal_delay_s,
        }
        if res.partition:
            params["partition"] = res.partition
        if res.account:
            params["account"] = res.account
        if res.mem:
            params["mem"] = res.mem
        if res.gpus_per_cell:
            params["gpus_per_node"] = max(res.gpus_per_cell, tasks)
        if res.sbatch:
            params["additional_parameters"] = dict(res.sbatch)
        return params

    def sbatch_header(self, tasks: int, count: int) -> list[str]:
        """The #SBATCH lines submitit would write for an array of `count` cells (what --dry-run shows)."""
        _make_sbatch_string = _submitit().slurm.slurm._make_sbatch_string
        params = self.parameters(tasks)
        text = _make_sbatch_string(command="<cell>", folder=str(self.folder / "%j"), map_count=count, **params)
        return [line for line in text.splitlines() if line.startswith("#SBATCH")]

    # ------------------------------------------------------------------ submitting

    def plan_lines(self, decisions: list[Decision]) -> list[str]:
        lines = []
        for d in decisions:
            verb = ("resume" if d.resume else "submit") if d.submit else "reuse " if d.reuse else "skip  "
            lines.append(f"  {verb} {d.cell.id}: {d.state}: {d.reason}")
        return lines

    def plan(self, how: str, would: str) -> tuple[dict[int, list[Decision]], list[Decision]]:
        """Decide, say each cell's decision, and return the cells to submit grouped into arrays, and every
        decision."""
        decisions = self.decide()
        grouped = self.groups(decisions)
        total = sum(len(g) for g in grouped.values())
        self.say(f"sweep {self.spec.name} ({how}): {len(decisions)} cells, {total} {would} "
                 f"(output {self.spec.output_dir})")
        for line in self.plan_lines(decisions):
            self.say(line)
        return grouped, decisions

    def dry_run(self) -> None:
        grouped, _ = self.plan("--launcher slurm, dry run", "would be submitted")
        for tasks, group in grouped.items():
            self.say(f"job array of {len(group)} cell(s), {tasks} task(s) each:")
            for line in self.sbatch_header(tasks, len(group)):
                self.say(f"  {line}")
            for d in group:
                self.say(f"  attnbench run {' '.join(d.cell.overrides)}{' resume=auto' if d.resume else ''}")

    def submit(self) -> int:
        """Submit what must run; returns the number of cells submitted. Nothing is written if Slurm refuses."""
        # No check_machine: the cells run on the cluster's nodes, not on this (login) machine.
        check_cluster(self.res)
        # What this submission creates goes again if Slurm refuses it: the output folder or just its .sweep/.
        created = self.spec.output_dir if not self.spec.output_dir.exists() else \
            self.ledger.dir if not self.ledger.dir.exists() else None
        self.ledger.acquire()
        try:
            grouped, decisions = self.plan("--launcher slurm", "to submit")
            for d in decisions:
                if d.reuse is not None:
                    take_reused(d.reuse, self.spec.config(d.cell), self.spec.output_dir, self.ledger, self.say)
            if not grouped:
                return 0
            submitted = self._submit(grouped, created)
        finally:
            self.ledger.release()
        if self.spec.baselines:
            from attnbench.suite.sweep import write_baselines

            write_baselines(self.spec, self.say)
        return submitted

    def _submit(self, grouped: dict[int, list[Decision]], created: Optional[Path]) -> int:
        submitit = _submitit()
        FailedJobError = submitit.core.utils.FailedJobError

        batch = self.folder / time.strftime("%Y%m%d-%H%M%S")
        jobs: list[tuple[Decision, Any, int, Path]] = []
        try:
            for tasks, group in grouped.items():
                executor = submitit.SlurmExecutor(folder=batch / "%j", max_num_timeout=3)
                executor.update_parameters(**self.parameters(tasks))
                entries = []
                for d in group:
                    attempt = self.ledger.cells.get(d.cell.id, {}).get("attempts", 0) + 1
                    log = self.ledger.logs / f"{d.cell.id}.{attempt}.log"
                    entries.append((d, attempt, log, CellJob(d.cell.id, d.cell.overrides, str(self.spec.output_dir),
                                                             self.spec.hashes.get(d.cell.id), str(log))))
                with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr on a refusal
                    submitted = executor.submit_array([job for *_, job in entries])
                jobs.extend((d, job, attempt, log) for (d, attempt, log, _), job in zip(entries, submitted))
        except (FailedJobError, subprocess.CalledProcessError, OSError) as err:
            # Arrays already accepted are cancelled: a partial submission would leave cells the ledger does not know.
            for _, job, *_ in jobs:
                job.cancel(check=False)
            shutil.rmtree(batch, ignore_errors=True)
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise ConfigError(f"--launcher slurm: sbatch refused the submission: {sbatch_error(str(err))}") from None
        self.ledger.logs.mkdir(parents=True, exist_ok=True)
        for d, job, attempt, log in jobs:
            self.ledger.update(d.cell.id, state="submitted", launcher="slurm", job_id=job.job_id, attempts=attempt,
                               submitted_at=now(), started_at=None, finished_at=None, error=None, log=str(log),
                               slurm_log=str(job.paths.stdout), overrides=list(d.cell.overrides)
                               + (["resume=auto"] if d.resume else []))
        arrays = sorted({job.job_id.split("_")[0] for _, job, *_ in jobs})
        self.say(f"submitted {len(jobs)} cell(s) as job array(s) {', '.join(arrays)}; `attnbench sweep "
                 f"{self.spec.path} --status` follows them, a rerun submits only what is not done or queued")
        return len(jobs)

    # ------------------------------------------------------------------ status and cancel

    def status(self) -> list[tuple[Cell, str, str, str]]:
        """(cell, state, job id, detail) per cell: done / running / pending / failed / cancelled / not submitted;
        a completed record says done whatever Slurm says, and a job that ended without one is failed."""
        ledger = self.ledger.read()
        cells = self.spec.cells()
        ids = [ledger[c.id]["job_id"] for c in cells if ledger.get(c.id, {}).get("job_id")]
        if ids and shutil.which("sacct") is None:
            raise ConfigError("--status: sacct not found on PATH: run it on a login node of the cluster the jobs "
                              "were submitted to")
        states = job_states(ids) if ids else {}
        rows = []
        for cell in cells:
            entry = ledger.get(cell.id, {})
            job_id = entry.get("job_id") or "-"
            record = read_record(self.spec.output_dir / cell.id / "metrics.json") or {}
            slurm_state = states.get(job_id, "")
            if record.get("status") == "completed":
                state, detail = "done", f"completed ({self.spec.output_dir / cell.id / 'metrics.json'})"
            elif job_id == "-":
                state, detail = "not submitted", "no job yet: `attnbench sweep <spec> --launcher slurm` submits it"
            elif slurm_state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "PREEMPTED",
                                 "RESV_DEL_HOLD", "READY"):
                state, detail = "pending", f"Slurm: {slurm_state}"
            elif slurm_state in IN_FLIGHT:
                state, detail = "running", f"Slurm: {slurm_state}"
            elif slurm_state.startswith("CANCELLED"):
                state, detail = "cancelled", f"Slurm: {slurm_state}; a rerun resubmits it"
            elif slurm_state == "UNKNOWN":
                state, detail = "unknown", "Slurm's accounting does not know the job (purged, or another cluster)"
            else:
                why = record.get("error") or f"ended {slurm_state or 'without a record'}"
                state, detail = "failed", f"Slurm: {slurm_state}; {why}; log {entry.get('log', '-')}"
            rows.append((cell, state, job_id, detail))
        self._record_states(rows, states)
        return rows

    def _record_states(self, rows, states: dict[str, str]) -> None:
        """Write what --status found into the ledger (state, Slurm's state, when), so that the ledger follows the
        jobs after submission; skipped while a submission or cancel holds the ledger (it writes its own)."""
        changed = [(cell, state, job_id) for cell, state, job_id, _ in rows if job_id != "-"
                   and (self.ledger.cells.get(cell.id, {}).get("state") != state
                        or self.ledger.cells.get(cell.id, {}).get("slurm_state") != states.get(job_id))]
        if not changed:
            return
        try:
            self.ledger.acquire()
        except ConfigError:
            return
        try:
            self.ledger.read()
            for cell, state, job_id in changed:
                if self.ledger.cells.get(cell.id, {}).get("job_id") == job_id:  # not resubmitted meanwhile
                    self.ledger.update(cell.id, state=state, slurm_state=states.get(job_id), checked_at=now())
        finally:
            self.ledger.release()

    def cancel(self) -> int:
        """scancel every job of this sweep's cells that has not ended; the ledger marks them cancelled."""
        submitit = _submitit()

        check_cluster(replace(self.res, partition=None))
        self.ledger.acquire()
        try:
            ledger = self.ledger.read()
            ids = {c.id: ledger[c.id]["job_id"] for c in self.spec.cells() if ledger.get(c.id, {}).get("job_id")}
            states = job_states(list(ids.values())) if ids else {}
            cancelled = 0
            for cell_id, job_id in ids.items():
                if states.get(job_id) not in IN_FLIGHT:
                    continue
                submitit.SlurmJob(folder=self.folder, job_id=job_id).cancel(check=True)
                self.ledger.update(cell_id, state="cancelled", finished_at=now(), error="cancelled (--cancel)")
                self.say(f"  cancelled {cell_id} (job {job_id})")
                cancelled += 1
        finally:
            self.ledger.release()
        self.say(f"sweep {self.spec.name}: cancelled {cancelled} job(s)")
        return cancelled
