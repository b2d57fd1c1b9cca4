"""A real single-node Slurm (slurmctld + slurmd + slurmdbd on MariaDB, munge auth) started for the tests.

Debian's packages (slurm-wlm, munge, slurmdbd, mariadb-server; .ci/run installs them) and root; no systemd: the
daemons are started here in order, each polled until it answers: munged -> mariadbd -> slurmdbd -> slurmctld ->
slurmd. Accounting matters: without slurmdbd, `sacct` fails and submitit reports every job UNKNOWN. Everything
the cluster writes (config, state, spool, logs) lives under one folder; a fresh folder gets a fresh accounting
database, since job ids restart with the state. Commands find the cluster through SLURM_CONF (`env`).

    python tests/slurm_cluster.py /tmp/slurm      # start one by hand; Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

PACKAGES = "slurm-wlm munge slurmdbd mariadb-server"
MYSQL_RUN = Path("/run/mysqld")  # MariaDB could not write its pid/socket under /tmp
MUNGE_RUN = Path("/run/munge")


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the local cluster (no packages, not root); the message says what is missing."""


def missing() -> str | None:
    """Why a local Slurm cannot be started here, or None."""
    tools = ["slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct", "sacctmgr"]
    absent = [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if absent:
        return f"{', '.join(absent)} not found: apt-get install {PACKAGES}"
    if os.geteuid() != 0:
        return "the local Slurm runs its daemons as root"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _wait(what: str, check, process: subprocess.Popen | None = None, log: Path | None = None,
          timeout: float = 60.0) -> None:
    """Poll `check` until it holds; fail at once, with the log's end, if the daemon exited meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    how = f"exited with code {process.returncode}" if process is not None and process.poll() is not None else \
        f"did not come up within {timeout:.0f} s"
    raise SlurmUnavailable(f"{what} {how}{': ' + tail if tail else ''}")


def _ok(*command: str, env: dict | None = None) -> bool:
    try:
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate(daemons) -> None:
    for _, process in daemons:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LocalSlurm:
    """One node (this machine, its real cores and memory) in a default partition `debug` and a second `short`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "etc" / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]
        self.cluster = "attnbench"
        self.database = f"slurm_acct_{uuid.uuid4().hex[:8]}"
        self.daemons: list[tuple[str, subprocess.Popen]] = []
        self.started_mysql = self.started_munge = False

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        for sub in ("etc", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        cpus = os.cpu_count() or 1
        ctld, slurmd, dbd = _free_port(), _free_port(), _free_port()
        r = self.root
        self.conf.write_text("\n".join([
            f"ClusterName={self.cluster}", f"SlurmctldHost={self.host}", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={ctld}", f"SlurmdPort={slurmd}", f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}", f"SlurmctldPidFile={r / 'run/slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run/slurmd.pid'}", f"SlurmctldLogFile={r / 'log/slurmctld.log'}",
            f"SlurmdLogFile={r / 'log/slurmd.log'}", "AuthType=auth/munge", "MpiDefault=none",
            # No cgroups in this kind of machine: processes are tracked by their process tree.
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            # Cores and memory as consumable resources, or a job without a memory request takes the whole node.
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "DefMemPerCPU=1024",
            "SchedulerParameters=bf_interval=1,sched_interval=2",  # the default schedules every 60 s
            "AuthInfo=cred_expire=10",  # a requeued job otherwise waits 120 s to start again
            "KillWait=5",  # submitit ignores SIGTERM: a preempted job's old run otherwise runs on 30 s
            "MailProg=/bin/true", "ReturnToService=2", "JobRequeue=1", "InactiveLimit=0", "MinJobAge=300",
            "AccountingStorageType=accounting_storage/slurmdbd", f"AccountingStorageHost={self.host}",
            f"AccountingStoragePort={dbd}", "JobCompType=jobcomp/none",
            f"NodeName={self.host} CPUs={cpus} RealMemory={mem} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=short Nodes={self.host} MaxTime=5 State=UP",
            "",
        ]))
        dbd_conf = self.root / "etc" / "slurmdbd.conf"
        dbd_conf.write_text("\n".join([
            "AuthType=auth/munge", f"DbdHost={self.host}", f"DbdPort={dbd}", "SlurmUser=root",
            f"PidFile={r / 'run/slurmdbd.pid'}", f"LogFile={r / 'log/slurmdbd.log'}",
            "StorageType=accounting_storage/mysql", "StorageHost=localhost", "StorageUser=root",
            f"StorageLoc={self.database}", "",
        ]))
        dbd_conf.chmod(0o600)  # slurmdbd refuses a readable one

    def _daemon(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "ab")
        process = subprocess.Popen([_tool(name), *args], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                   start_new_session=True)
        self.daemons.append((name, process))
        return process

    def start(self) -> "LocalSlurm":
        reason = missing()
        if reason:
            raise SlurmUnavailable(reason)
        self._write_config()
        env = self.env
        if not _ok("sh", "-c", "munge -n | unmunge"):
            MUNGE_RUN.mkdir(parents=True, exist_ok=True)
            subprocess.run([_tool("munged"), "--force"], check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.started_munge = True
            _wait("munged", lambda: _ok("sh", "-c", "munge -n | unmunge"))
        if not _ok("mariadb-admin", "ping"):
            MYSQL_RUN.mkdir(parents=True, exist_ok=True)
            mysqld = self._daemon("mariadbd", "--user=root", f"--socket={MYSQL_RUN / 'mysqld.sock'}",
                         f"--pid-file={MYSQL_RUN / 'mysqld.pid'}")
            self.started_mysql = True
            _wait("mariadbd", lambda: _ok("mariadb-admin", "ping"), mysqld, log=self.root / "log" / "mariadbd.out")
        subprocess.run(["mariadb", "-e", f"DROP DATABASE IF EXISTS {self.database}; CREATE DATABASE {self.database}"],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dbd = self._daemon("slurmdbd", "-D")
        _wait("slurmdbd", lambda: _ok("sacctmgr", "-n", "list", "cluster", env=env), dbd, log=self.root / "log" / "slurmdbd.log")
        subprocess.run(["sacctmgr", "-i", "add", "cluster", self.cluster], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        ctld = self._daemon("slurmctld", "-D", "-i")
        _wait("slurmctld", lambda: _ok("scontrol", "ping", env=env), ctld, log=self.root / "log" / "slurmctld.log")
        slurmd = self._daemon("slurmd", "-D")
        _wait("slurmd (node idle)", lambda: "idle" in subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout,
            slurmd, log=self.root / "log" / "slurmd.log")
        return self

    def stop(self) -> None:
        """Cancel what is left, then stop the daemons in reverse order (and MariaDB/munged if started here)."""
        if self.daemons:
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        slurm = [(n, p) for n, p in self.daemons if n != "mariadbd"]
        mysql = [(n, p) for n, p in self.daemons if n == "mariadbd"]
        _terminate(reversed(slurm))
        subprocess.run(["mariadb", "-e", f"DROP DATABASE IF EXISTS {self.database}"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        _terminate(mysql)
        self.daemons.clear()
        if self.started_munge:
            subprocess.run(["pkill", "-x", "munged"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


if __name__ == "__main__":
    cluster = LocalSlurm(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/attnbench-slurm")).start()
    print(f"Slurm up: export SLURM_CONF={cluster.conf}  (Ctrl-C stops it)", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
