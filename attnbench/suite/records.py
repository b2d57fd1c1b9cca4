"""Run records in: every completed, well-formed record under --runs, checked against its config.yaml and its
predictions.jsonl; what the leaderboard's provenance says of them.

What is never read: a record that is not completed, has a non-finite metric, a config.yaml that is missing, damaged
or another run's, or a predictions.jsonl that is missing, malformed or not the record's (count, ids, rescored test
metric); each is skipped with its reason.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from attnbench.config import RunConfig, attention_label
from attnbench.errors import ConfigError
from attnbench.metrics.registry import example_statistics, resamplable, score_from_sums
from attnbench.suite.formats import listing

REQUIRED = ("run_id", "status", "task", "attention", "model", "seed", "metrics", "cost", "provenance")
KINDS = ("model", "baseline")  # records without "kind" are models (older records)
# The sections every trained run's config.yaml has had since the first record format: one missing is a cut file.
CONFIG_GROUPS = ("task", "attention", "model", "trainer", "optim")


@dataclass
class Run:
    path: Path
    record: dict
    config: dict  # config.yaml merged onto today's schema defaults (as written where it does not fit)
    primary: str
    ids: list  # predictions.jsonl, checked against the record when read
    predictions: list
    golds: list
    statistics: np.ndarray | None  # (N, K) per-example statistics of the primary metric; None: not resampled
    schema_note: str | None = None

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def kind(self) -> str:
        return self.record.get("kind", "model")

    @property
    def dataset(self) -> str:
        return str(self.record.get("dataset") or self.config.get("task", {}).get("dataset") or "unknown")

    @property
    def family(self) -> str:
        return self.config.get("task", {}).get("family", "classification")

    @property
    def mode(self) -> str:
        return self.config.get("task", {}).get("monitor_mode", "max")

    @property
    def fingerprint(self) -> str | None:
        """What the run was tested on: provenance.test_fingerprint (the test split's files or hub coordinates, columns,
        labels, limit); records written before it existed have the fingerprint of all splits only."""
        provenance = self.record["provenance"]
        return provenance.get("test_fingerprint") or provenance.get("dataset_fingerprint")

    @property
    def examples(self) -> list[tuple[str, str]]:
        """(id, gold) of every test example, in order: what two runs must share to be paired."""
        return [(json.dumps(i), json.dumps(g)) for i, g in zip(self.ids, self.golds)]


def read_runs(runs_dir: Path) -> tuple[list[Run], list[str]]:
    """Every completed, well-formed record under runs_dir (hidden folders such as .attempts/ excluded)."""
    if not runs_dir.is_dir():
        raise ConfigError(f"--runs {runs_dir} is not a folder: point it at the folder holding run records (e.g. results/sweeps/leaderboard)")
    runs, skipped = [], []
    for path in sorted(runs_dir.rglob("metrics.json")):
        if any(part.startswith(".") for part in path.relative_to(runs_dir).parts):
            continue
        try:
            runs.append(_read_run(path))
        except ValueError as err:
            skipped.append(f"{path}: {err}")
    return runs, skipped


def _read_run(path: Path) -> Run:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable record ({type(err).__name__}: {err})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if record["status"] != "completed":
        raise ValueError(f"status {record['status']!r}, not completed" +
                         (f" ({record['error']})" if record.get("error") else ""))
    kind = record.get("kind", "model")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    if kind == "baseline" and not isinstance(record.get("baseline"), str):
        raise ValueError('a baseline record without the "baseline" name')
    if not isinstance(record["metrics"], dict) or not isinstance(record["provenance"], dict) \
            or not isinstance(record["cost"], dict):
        raise ValueError("metrics, provenance and cost must be JSON objects")
    # json reads a bare NaN/Infinity as a float, and a strict writer records one as null: neither is a result.
    bad = _non_finite(record["metrics"], "metrics", null=True) + _non_finite(record["cost"], "cost", null=False)
    if bad:
        raise ValueError(f"non-finite {listing(bad, 3)}: a diverged or damaged run, not a result")
    raw = _read_config(path.parent / "config.yaml", kind)
    if kind == "baseline" and "task" not in raw:  # a baseline may save only the task config it was computed with
        raw = {"task": raw}
    config, schema_note = normalise_config(raw)
    mismatch = _config_mismatch(config, record)
    if mismatch:
        raise ValueError(f"config.yaml beside it is not this record's configuration ({mismatch}): damaged or replaced")
    try:
        primary = config["task"]["monitor"]
        value = record["metrics"]["test"][primary]
    except (KeyError, TypeError):
        raise ValueError("no test value of the task's primary metric (task.monitor)") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"test {primary} is {value!r}, not a number")
    ids, predictions, golds, statistics = read_checked_predictions(path.parent / "predictions.jsonl", record, primary)
    return Run(path.parent, record, config, primary, ids, predictions, golds, statistics, schema_note)


def _non_finite(node: Any, where: str, null: bool) -> list[str]:
    """"where.key = nan" for every NaN/inf (and, with null, every null) in a JSON tree."""
    if isinstance(node, dict):
        return [bad for key, value in node.items() for bad in _non_finite(value, f"{where}.{key}", null)]
    if isinstance(node, list):
        return [bad for i, value in enumerate(node) for bad in _non_finite(value, f"{where}[{i}]", null)]
    if (isinstance(node, float) and not math.isfinite(node)) or (null and node is None):
        return [f"{where} = {'null' if node is None else node}"]
    return []


def _read_config(path: Path, kind: str) -> dict:
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:
        raise ValueError(f"no readable config.yaml beside it ({type(err).__name__})") from None
    if not isinstance(raw, dict):
        raise ValueError("config.yaml beside it is not a mapping")
    # A cut file still parses: without this, today's defaults would fill in what is missing.
    absent = [group for group in CONFIG_GROUPS if not isinstance(raw.get(group), dict)] if kind == "model" else []
    if absent:
        raise ValueError(f"config.yaml beside it has no {', '.join(absent)} section: damaged (cut short?)")
    return raw


def _config_mismatch(config: dict, record: dict) -> str | None:
    """What of the record's own fields (task, dataset, backbone, attention, heads, seed, run_id) the config
    contradicts: a config.yaml copied from another run, or cut short and filled in with defaults."""
    task = config.get("task") or {}
    pairs = [("task", task.get("name")), ("dataset", task.get("dataset"))]
    if record.get("kind", "model") == "model":
        try:
            label = attention_label(OmegaConf.create(config))
        except Exception:
            label = None
        attention, model = config.get("attention") or {}, config.get("model") or {}
        pairs += [("model", model.get("name")), ("attention", label), ("heads", attention.get("heads")),
                  ("seed", config.get("seed")), ("run_id", config.get("run_id"))]
    for key, value in pairs:
        if key in record and record[key] is not None and value != record[key]:
            return f"its {key} is {value!r}, the record's {record[key]!r}"
    return None


@lru_cache(maxsize=1)
def _schema():
    return OmegaConf.structured(RunConfig)


def normalise_config(raw: dict) -> tuple[dict, str | None]:
    """config.yaml merged onto today's schema defaults, so that a config written before a key was added compares
    equal to one written after. A config with a key the schema no longer has cannot be merged: it is compared as
    written (returned with a note saying so)."""
    try:
        return OmegaConf.to_container(OmegaConf.merge(_schema(), raw), resolve=True), None
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return raw, (f"config.yaml does not fit today's schema ({first}): compared as written, so keys added to the "
                     "schema since may split its row")


def read_predictions(path: Path) -> tuple[list, list, list]:
    """(ids, predictions, golds) of a predictions.jsonl; ValueError when it is missing or malformed. A row's gold
    is its `references` list where it has one (a test set with several references per example)."""
    if not path.is_file():
        raise ValueError(f"{path.name} missing")
    ids, predictions, golds = [], [], []
    try:
        with path.open() as f:
            for line_no, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                    ids.append(row["id"])
                    predictions.append(row["prediction"])
                    # A row of a multi-reference test set lists all references; they are what it was scored on.
                    golds.append(_references(row) if "references" in row else row["gold"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path.name} line {line_no} is not a prediction row (id, prediction, "
                                     "gold)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name} unreadable ({type(err).__name__})") from None
    if not ids:
        raise ValueError(f"{path.name} is empty")
    return ids, predictions, golds


def _references(row: dict) -> list[str]:
    references = row["references"]
    if not (isinstance(references, list) and references and all(isinstance(r, str) for r in references)):
        raise TypeError("references must be a non-empty list of strings")
    return references


def read_checked_predictions(path: Path, record: dict, metric: str) -> tuple[list, list, list, np.ndarray | None]:
    """predictions.jsonl and the per-example statistics of `metric`, after checking that they belong to the record:
    one row per recorded test example, no id twice, and (for a resampled metric) they reproduce its test value."""
    ids, predictions, golds = read_predictions(path)
    if len({json.dumps(i) for i in ids}) != len(ids):
        raise ValueError(f"{path.name} lists an example id more than once")
    splits = record["data"].get("splits") if isinstance(record.get("data"), dict) else None
    test = splits.get("test") if isinstance(splits, dict) else None
    expected = test.get("examples") if isinstance(test, dict) else None
    if isinstance(expected, int) and expected != len(ids):
        raise ValueError(f"{path.name} has {len(ids)} predictions but the record's test split has {expected} examples")
    if not resamplable(metric):
        return ids, predictions, golds, None
    try:
        statistics = example_statistics(metric, predictions, golds)
        rescored = float(score_from_sums(metric, statistics.sum(0, keepdims=True), len(ids))[0])
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path.name} cannot be scored as {metric} ({type(err).__name__}: {err})") from None
    recorded = record["metrics"]["test"][metric]
    if not math.isclose(rescored, recorded, rel_tol=1e-3, abs_tol=1e-3):
        raise ValueError(f"{path.name} gives test {metric} {rescored:.4f} but metrics.json says {recorded:.4f}")
    return ids, predictions, golds, statistics


def same_test_data(a: Run, b: Run) -> bool:
    """The same test data fingerprint, else the same (id, gold) pairs in predictions.jsonl."""
    if a.fingerprint is not None and a.fingerprint == b.fingerprint:
        return True
    return sorted(a.examples) == sorted(b.examples)


def provenance(runs: list[Run]) -> dict[str, Any]:
    def values(key: str) -> list[str]:
        # Trivial baselines train nothing: they have no device or precision to report.
        found = {run.record["provenance"].get(key) for run in runs}
        return sorted(str(v) for v in found if v is not None) or ["None"]

    signatures: dict[str, set[str]] = defaultdict(set)
    fingerprints: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for metric, signature in (run.record["provenance"].get("metric_signatures") or {}).items():
            signatures[metric].add(signature)
        fingerprints[f"{run.record['task']}/{run.dataset}"].add(str(run.fingerprint))
    return {
        "git_sha": values("git_sha"),
        "git_dirty": sorted({bool(run.record["provenance"].get("git_dirty")) for run in runs}),
        "hardware": values("device"),
        "precision": values("precision"),
        "metric_signatures": {k: sorted(v) for k, v in sorted(signatures.items())},
        "test_fingerprints": {k: sorted(v) for k, v in sorted(fingerprints.items())},
        "versions": sorted({json.dumps(run.record["provenance"].get("versions"), sort_keys=True) for run in runs}),
        "finished": [min(values("finished_at")), max(values("finished_at"))],
    }
