"""`attnbench verify <run_dir>`: run a recorded configuration again and compare every metric with the record.

The saved config.yaml is the whole recipe (seed, data, model, budget); the re-run goes to a scratch folder in
the system's temp dir (removed afterwards unless --keep) with W&B off, so the record being checked is never touched. Each val/test
metric passes when |new - recorded| <= atol + rtol * |recorded|. On a CPU with trainer.deterministic=true the
re-run is bit-identical, so the default tolerance is tight; GPU runs (bf16, non-deterministic kernels) need a
looser one (e.g. --rtol 0.02).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from attnbench.config import VAL_SLICE, load_saved_config
from attnbench.errors import ConfigError
from attnbench.training.run import run


@dataclass
class Check:
    name: str
    recorded: float
    rerun: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.rerun is not None and math.isfinite(self.rerun) and abs(self.rerun - self.recorded) <= self.tolerance

    def line(self) -> str:
        rerun = "missing" if self.rerun is None else f"{self.rerun:.6g}"
        diff = "" if self.rerun is None else f", |diff| {abs(self.rerun - self.recorded):.3g}"
        return (f"{'PASS' if self.passed else 'FAIL'} {self.name}: recorded {self.recorded:.6g}, re-run {rerun}"
                f"{diff} (tolerance {self.tolerance:.3g})")


def read_record(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file() or not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no metrics.json and config.yaml): pass results/runs/<run_id>")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err.msg}): the record is damaged; re-run the configuration") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} is not a run record (a JSON object): the record is damaged; re-run the configuration")
    if record.get("status") != "completed":
        raise ConfigError(f"{path} has status {record.get('status')!r}: only completed runs can be verified")
    if not isinstance(record.get("metrics"), dict):
        raise ConfigError(f"{path} has no metrics object: the record is damaged; re-run the configuration")
    for split in ("val", VAL_SLICE, "test"):
        values = record["metrics"].get(split, {})
        if not isinstance(values, dict) or not all(_is_number(v) for v in values.values()):
            raise ConfigError(f"{path}: metrics.{split} is not a mapping of metric names to finite numbers: the record "
                              "is damaged; re-run the configuration")
    return record


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compare(recorded: dict, rerun: dict, rtol: float, atol: float) -> list[Check]:
    checks = []
    for split in ("val", VAL_SLICE, "test"):
        for name, value in sorted(recorded.get("metrics", {}).get(split, {}).items()):
            new = rerun.get("metrics", {}).get(split, {}).get(name)
            checks.append(Check(f"{split}/{name}", float(value), None if new is None else float(new),
                                atol + rtol * abs(float(value))))
    return checks


def provenance_notes(recorded: dict, rerun: dict) -> list[str]:
    """Differences in what produced the two runs, which explain a mismatch (or make a match less telling)."""
    notes = []
    old, new = recorded.get("provenance", {}), rerun.get("provenance", {})
    for key in ("git_sha", "dataset_fingerprint", "tokenizer_hash", "device", "precision", "deterministic"):
        if old.get(key) != new.get(key):
            notes.append(f"{key} differs: recorded {old.get(key)}, re-run {new.get(key)}")
    if old.get("git_dirty"):
        notes.append("the recorded run came from a modified tree (git_dirty): its code may not be the commit's")
    changed = sorted(k for k, v in (new.get("versions") or {}).items() if (old.get("versions") or {}).get(k) != v)
    if changed:
        notes.append(f"package versions differ: {', '.join(changed)}")
    return notes


def verify(run_dir: Path, rtol: float, atol: float, keep: bool = False) -> tuple[list[Check], list[str], Path]:
    """Re-run the configuration of `run_dir` in a scratch folder; returns the checks and the re-run's folder."""
    record = read_record(run_dir)
    cfg = load_saved_config(run_dir / "config.yaml")
    scratch = Path(tempfile.mkdtemp(prefix=f"attnbench-verify-{run_dir.name}-"))  # nothing lands in results/
    cfg.output_dir = str(scratch)
    cfg.run_id = f"{run_dir.name}-verify"
    cfg.wandb.mode = "disabled"
    recorded_precision = (record.get("provenance") or {}).get("precision")
    if cfg.trainer.precision == "auto" and recorded_precision:
        # auto decides by the machine (and by attnbench's version: fp32 on every CPU before bf16 was detected), so
        # the re-run trains in the precision the record was made in
        cfg.trainer.precision = recorded_precision
    try:
        rerun_dir = run(cfg)
        rerun = json.loads((rerun_dir / "metrics.json").read_text())
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return compare(record, rerun, rtol, atol), provenance_notes(record, rerun), rerun_dir
