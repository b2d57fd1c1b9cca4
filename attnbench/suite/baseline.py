"""`attnbench baseline`: the task's trivial baselines (metrics/baselines.py) as run records.

    config -> canonical splits (the same rows, limits and ids as a model run of that config) -> predictions
    -> scored by the models' own metric code -> <output_dir>/<task>-<dataset>-baseline-<name>-<data fingerprint>/

Each folder holds config.yaml, predictions.jsonl and metrics.json like a model run, with `"kind": "baseline"`,
so the leaderboard shows baselines as rows and judges models against them, reading records alone. A folder that
already holds a completed record of the same task data is left as it is (sweeps call this for every task).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from attnbench.config import to_yaml
from attnbench.data.sources import dataset_fingerprint, load_split, split_sources, test_fingerprint
from attnbench.errors import ConfigError
from attnbench.metrics.baselines import Baseline, baselines_for
from attnbench.tasks.families import family, prediction_row
from attnbench.tracking.record import (
    check_writable, git_state, now, read_record, versions, write_atomic, write_json, write_jsonl,
)


@dataclass
class BaselineResult:
    name: str
    run_dir: Path
    scores: dict[str, float]
    written: bool  # False: an up-to-date record was already there

    @property
    def summary(self) -> str:
        """Its test scores in one line, as the CLI and the sweep print them."""
        return ", ".join(f"{k} {v:.4g}" for k, v in self.scores.items())


def baseline_id(cfg: DictConfig, baseline: Baseline, fingerprint: str) -> str:
    """<task>-<dataset>-baseline-<name>-<data fingerprint>: one folder per task data (limits included), so the
    baselines of a grid whose cells use different slices of a dataset sit side by side."""
    return f"{cfg.task.name}-{cfg.task.dataset}-baseline-{baseline.name}-{fingerprint[:8]}"


def data_key(cfg: DictConfig) -> str:
    """What a baseline depends on: the task's data (files, columns, limits), not models or trainers."""
    return dataset_fingerprint(cfg.task, cfg.data_dir)


def baseline_folders(cfg: DictConfig, fingerprint: str | None = None) -> list[tuple[Baseline, Path, dict | None]]:
    """Each trivial baseline of the task, its folder, and its record there when it is an up-to-date one
    (`fingerprint`: the task data's `data_key`, when the caller has it already)."""
    fingerprint = fingerprint or data_key(cfg)
    folders = []
    for baseline in baselines_for(cfg.task.family, cfg.task.scorer):
        run_dir = Path(cfg.output_dir) / baseline_id(cfg, baseline, fingerprint)
        existing = read_record(run_dir / "metrics.json")
        current = bool(existing) and existing.get("status") == "completed" and \
            existing.get("provenance", {}).get("dataset_fingerprint") == fingerprint
        folders.append((baseline, run_dir, existing if current else None))
    return folders


def run_baselines(cfg: DictConfig) -> list[BaselineResult]:
    output_dir = Path(cfg.output_dir)
    check_writable(output_dir)
    fingerprint = data_key(cfg)
    pending = []
    results = []
    for baseline, run_dir, existing in baseline_folders(cfg, fingerprint):
        if existing is not None:
            results.append(BaselineResult(baseline.name, run_dir, existing["metrics"]["test"], written=False))
        elif run_dir.exists():
            raise ConfigError(f"{run_dir} exists but holds no completed baseline of this task's data: remove it, "
                              "or pass output_dir=<another folder>")
        else:
            pending.append((baseline, run_dir))
    if not pending:
        return results
    train, test = canonical_columns(cfg)
    for baseline, run_dir in pending:
        started_at = now()
        predictions = baseline.predict(train, test)
        golds = family(cfg).golds(test)  # each example's references where the test split has several
        scores, signatures = score(cfg, predictions, golds)
        record = {
            "run_id": run_dir.name, "status": "completed", "kind": "baseline", "baseline": baseline.name,
            "description": baseline.description, "task": cfg.task.name, "dataset": cfg.task.dataset,
            "attention": None, "model": None, "heads": None, "seed": None,
            "metrics": {"test": scores}, "cost": {},
            "provenance": {**git_state(), "dataset_fingerprint": fingerprint,
                           "test_fingerprint": test_fingerprint(cfg.task, cfg.data_dir),
                           "splits": split_sources(cfg.task, cfg.data_dir), "metric_signatures": signatures,
                           "versions": versions(), "started_at": started_at, "finished_at": None},
        }
        rows = [prediction_row(int(i), p, g) for i, p, g in zip(test["id"], predictions, golds)]
        # Written into a staging folder and renamed: a reader sees a whole baseline folder or none.
        staging = output_dir / f".{run_dir.name}.staging"
        try:
            write_atomic(staging / "config.yaml", to_yaml(_task_only(cfg)))
            write_jsonl(staging / "predictions.jsonl", rows)
            record["provenance"]["finished_at"] = now()
            write_json(staging / "metrics.json", record)
            staging.rename(run_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a full disk or a signal leaves no staging folder behind
        results.append(BaselineResult(baseline.name, run_dir, scores, written=True))
    return results


def canonical_columns(cfg: DictConfig) -> tuple[dict[str, list], dict[str, list]]:
    """The canonical train and test splits as columns (name -> values): what a baseline predicts from."""
    splits = [load_split(cfg.task, split, cfg.data_dir, cfg.cache_dir) for split in ("train", "test")]
    train, test = ({c: list(ds[c]) for c in ds.column_names} for ds in splits)
    return train, test


def score(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> tuple[dict[str, float], dict[str, str]]:
    """The test metrics of `predictions`, computed as a model run computes them (same libraries, same settings)."""
    return family(cfg).score(cfg, predictions, golds)


def _task_only(cfg: DictConfig) -> DictConfig:
    """The run config with what a baseline used (task, data, seed) and nothing that suggests a model trained."""
    keep = {key: cfg[key] for key in ("seed", "output_dir", "data_dir", "cache_dir", "task")}
    return OmegaConf.create(OmegaConf.to_container(OmegaConf.create(keep), resolve=True))


__all__ = ["BaselineResult", "baseline_folders", "canonical_columns", "baseline_id", "data_key", "run_baselines", "score"]
