"""The run record: results/runs/<run_id>/{config.yaml, metrics.json, predictions.jsonl, attention/, checkpoints/}.

Every file a later step reads is written atomically (temp file in the same folder, then os.replace), so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from attnbench.config import config_hash, load_saved_config
from attnbench.errors import ConfigError, ResourceError

PACKAGES = ("attnbench", "torch", "pytorch-lightning", "torchmetrics", "datasets", "tokenizers", "wandb",
            "omegaconf", "sacrebleu", "rouge-score", "numpy")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_atomic(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; records are shared like any other file
        _write(fd, data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)  # never leave a partial file behind
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise ResourceError(f"no space left on the device writing {path}: free disk space, or pass "
                                "output_dir=<a folder on another disk>") from None
        raise


def _write(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, data: Any) -> None:
    """Strict JSON: a NaN/inf (which json.dumps would write as a bare NaN/Infinity, invalid JSON that other
    readers refuse) is written as null."""
    write_atomic(path, json.dumps(finite_or_null(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def finite_or_null(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_null(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(value) for value in data]
    return data


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(finite_or_null(row), ensure_ascii=False, allow_nan=False) + "\n"
                                   for row in rows))


def read_record(path: Path) -> dict | None:
    """A JSON record (metrics.json, a ledger) as a dict, or None when it is missing, partial or not an object."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def saved_config_hash(run_dir: Path) -> str | None:
    """config_hash of a run folder's config.yaml; None when it is missing or damaged (the run then matches no
    configuration, so it can neither count as done nor be resumed)."""
    try:
        return config_hash(load_saved_config(run_dir / "config.yaml"))
    except Exception:
        return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(task: str, model: str, attention: str, seed: int) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{task}-{model}-{attention}-s{seed}-{stamp}-{os.urandom(2).hex()}"


def check_writable(output_dir: Path) -> None:
    """Refuse an output folder we cannot write before any work starts (and without creating anything)."""
    probe = output_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir={output_dir} is not writable ({probe} is not a writable folder): pass output_dir=<a folder you can write>")


def create_run_dir(output_dir: Path, run_id: str) -> Path:
    run_dir = output_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"run folder {run_dir} already exists: choose another run_id= or remove the folder") from None
    return run_dir


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """SHA and dirtiness of the attnbench checkout (a dirty tree is recorded, not hidden)."""
    repo = repo or Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    # Tracked changes anywhere, and untracked files where a run's recipe lives (a new task YAML or spec that the
    # run reads but the commit lacks); other untracked files (scratch, outputs) do not make the tree dirty.
    status = git("status", "--porcelain", "--untracked-files=no")
    untracked = git("status", "--porcelain", "--untracked-files=all", "--", *RECIPE_FOLDERS)
    if status is None or untracked is None:
        return {"git_sha": sha, "git_dirty": None}
    return {"git_sha": sha, "git_dirty": bool(status) or any(line.startswith("??") for line in untracked.splitlines())}


RECIPE_FOLDERS = ("configs", "experiments")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Python's and each package's version (PACKAGES, then `extra`); None for one that is not installed."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in (*PACKAGES, *extra):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device_name(gpu: bool) -> str:
    if gpu:
        import torch  # here, not at the top: the leaderboard reads records without torch

        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
