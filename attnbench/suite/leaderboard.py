"""`attnbench leaderboard`: run records in, leaderboard.md/.csv/.json and plots out; a pure function of the records.

    records (metrics.json + config.yaml + predictions.jsonl, checked against each other) -> sections per
    (task, dataset, data): trivial-baseline rows + rows of attention x backbone (plus any setting that varies
    within one) -> seed statistics -> degenerate runs flagged -> two-level bootstrap vs the baseline variant,
    Holm-corrected -> tables, plots, provenance

Statistics (attnbench.suite.stats)
- Over seeds: mean, sample standard deviation (n-1) and a 95% Student-t confidence interval of the mean.
- Against the baseline variant (same section, backbone and other settings): a two-level bootstrap that resamples
  test examples (paired) and each side's seeds, so its p is about the variants, not about particular trained
  models; it needs 3 seeds a side. Holm-corrected across the variants of one (section, backbone, settings),
  flagged rows left out. The example-only paired bootstrap is reported beside it, never starred.
Degenerate runs (attnbench.metrics.degeneracy): collapsed predictions, or a primary metric that does not beat a
trivial baseline record of the same test data.

What is never read: a record that is not completed, has a non-finite metric, a config.yaml that is missing, damaged
or another run's, or a predictions.jsonl that is missing, malformed or not the record's (count, ids, rescored test
metric); each is skipped with its reason. Runs of one (task, dataset) on different data
(provenance.test_fingerprint) are never pooled or compared: each data set gets its own section, with a warning.
Writing (`publish`): every file is rendered, then staged beside its target, then moved into place; a failure
puts the previous files back.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from attnbench.config import NOT_RESULT_KEYS, RunConfig, attention_label
from attnbench.errors import AttnbenchError, ConfigError, ResourceError
from attnbench.suite.leaderboard_render import PERCENT, format_metric, render_all
from attnbench.metrics.degeneracy import baseline_label, below_baseline_reason, collapse_reason
from attnbench.metrics.scoring import RESAMPLABLE, example_statistics, score_from_sums
from attnbench.suite.stats import MIN_SEEDS, hierarchical_bootstrap, holm, paired_bootstrap, seed_statistics
from attnbench.tracking.record import write_atomic

__all__ = ["build_leaderboard", "check_out", "holm", "hierarchical_bootstrap", "paired_bootstrap", "publish",
           "seed_statistics"]

REQUIRED = ("run_id", "status", "task", "attention", "model", "seed", "metrics", "cost", "provenance")
KINDS = ("model", "baseline")  # records without "kind" are models (older records)
# The sections every trained run's config.yaml has had since the first record format: one missing is a cut file.
CONFIG_GROUPS = ("task", "attention", "model", "trainer", "optim")
# Settings that never make two runs different cells.
# Settings that never split rows: the seed (pooled over) and what cannot change a result (config.NOT_RESULT_KEYS,
# which config_hash leaves out too).
HOUSEKEEPING = ("seed", *NOT_RESULT_KEYS)
NOT_REPORTED = ("loss", "ppl")  # secondary columns are the other test metrics
COST_FIELDS = ("params", "train_seconds", "validation_seconds", "test_seconds", "tokens_per_second",
               "peak_memory_mb", "eval_peak_memory_mb")
FEW_SEEDS = f"n < {MIN_SEEDS} seeds: seed variance cannot be estimated"
NO_TRIVIAL = "no trivial baseline record for this test data"
OUTPUTS = ("leaderboard.md", "leaderboard.csv", "leaderboard.json")  # and plots/<section>-*.png
STAGING = ".leaderboard-staging-"  # hidden (so never read as records), inside --out, removed on success or failure


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


@dataclass
class Row:
    task: str
    dataset: str
    attention: str | None
    model: str | None
    extra: tuple[tuple[str, Any], ...] = ()
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    trivial: str | None = None  # a trivial-baseline row: the baseline's name
    flags: list[dict] = field(default_factory=list)  # {run_id, seed, reason}: why a run of the row is degenerate

    @property
    def label(self) -> str:
        if self.trivial:
            return baseline_label(self.trivial) + "".join(f" [{k}={v}]" for k, v in self.extra)
        return str(self.attention) + "".join(f" [{k}={v}]" for k, v in self.extra)

    @property
    def kind(self) -> str:
        return "baseline" if self.trivial else "model"

    @property
    def missing(self) -> bool:
        return not self.runs


@dataclass
class Section:
    task: str
    dataset: str
    rows: list[Row]
    fingerprint: str | None = None  # the test data of its trained runs (Run.fingerprint)
    split_by_data: bool = False  # its (task, dataset) has records of other data too, in sections of their own
    notes: list[str] = field(default_factory=list)
    test_data: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        data = f" (data {data_label(self.fingerprint)})" if self.split_by_data else ""
        return f"{self.task} / {self.dataset}{data}"

    @property
    def slug(self) -> str:
        suffix = "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", data_label(self.fingerprint)) if self.split_by_data else ""
        return f"{self.task}-{self.dataset}{suffix}"

    @property
    def primary(self) -> str:
        return next(r.stats["primary"] for r in self.rows if not r.missing)


@dataclass
class Report:
    sections: list[Section]
    skipped: list[str]
    warnings: list[str]
    provenance: dict[str, Any]
    n_records: int
    files: list[Path] = field(default_factory=list)

    @property
    def tasks(self) -> dict[str, list[Row]]:
        """Rows by task, the sections of a task one after another."""
        out: dict[str, list[Row]] = defaultdict(list)
        for section in self.sections:
            out[section.task] += section.rows
        return dict(out)


# ----------------------------------------------------------------------------------------------- reading


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
        raise ValueError(f"non-finite {_listing(bad, 3)}: a diverged or damaged run, not a result")
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
    """(ids, predictions, golds) of a predictions.jsonl; ValueError when it is missing or malformed."""
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
                    golds.append(row["gold"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path.name} line {line_no} is not a prediction row (id, prediction, "
                                     "gold)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name} unreadable ({type(err).__name__})") from None
    if not ids:
        raise ValueError(f"{path.name} is empty")
    return ids, predictions, golds


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
    if metric not in RESAMPLABLE:
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


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def _is_housekeeping(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in HOUSEKEEPING)


# ----------------------------------------------------------------------------------------------- sections and rows


def make_sections(runs: list[Run]) -> tuple[list[Section], list[str]]:
    """Sections per (task, dataset) and data (`split_by_data`). In each: one row per trivial-baseline record, then
    attention x backbone, split further by any setting that varies within one pair (ablations)."""
    warnings = [f"{run.path}: {run.schema_note}" for run in runs if run.schema_note]
    by_dataset: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_dataset[(run.record["task"], run.dataset)].append(run)
    models = [r for r in runs if r.kind == "model"]
    # The grid: every attention seen x every backbone seen; a cell without runs in a section is shown as missing.
    pairs = [(a, m) for a in sorted({str(r.record["attention"]) for r in models})
             for m in sorted({str(r.record["model"]) for r in models})]
    sections = []
    for (task, dataset), found in sorted(by_dataset.items()):
        groups = split_by_data(found)
        split = len(groups) > 1
        if split:
            warnings.append(_data_warning(task, dataset, groups))
        # Trained runs' data first; a trivial baseline of data no trained run has comes after.
        order = sorted(groups.items(), key=lambda kv: (all(r.kind == "baseline" for r in kv[1]), str(kv[0])))
        for fingerprint, section_runs in order:
            section = _section(task, dataset, section_runs, pairs, warnings)
            section.fingerprint, section.split_by_data = fingerprint, split
            if split:
                others = ", ".join(f"data {data_label(fp)}" for fp, _ in order if fp != fingerprint)
                section.notes.append(f"⚠ {task}/{dataset} has records of {len(groups)} different test sets "
                                     f"(provenance.test_fingerprint): this table holds those of data "
                                     f"{data_label(fingerprint)} only, never pooled or compared with the others "
                                     f"({others}); see the warnings")
            sections.append(section)
    return sections, warnings


def split_by_data(runs: list[Run]) -> dict[str | None, list[Run]]:
    """Runs of one (task, dataset) by the data they were tested on: trained runs by their test data's fingerprint
    (Run.fingerprint; runs on other training data of the same test set stay in one table, as rows of their
    settings); a trivial baseline with every fingerprint whose test data it shares
    (`same_test_data`), else under its own."""
    groups: dict[str | None, list[Run]] = defaultdict(list)
    for run in runs:
        if run.kind == "model":
            groups[run.fingerprint].append(run)
    trained = list(groups)
    for base in (r for r in runs if r.kind == "baseline"):
        matches = [fp for fp in trained if any(same_test_data(base, run) for run in groups[fp])]
        for fingerprint in matches or [base.fingerprint]:
            groups[fingerprint].append(base)
    return dict(groups)


def data_label(fingerprint: str | None) -> str:
    return fingerprint if fingerprint is not None else "not recorded"


def _data_warning(task: str, dataset: str, groups: dict[str | None, list[Run]]) -> str:
    """What differs between the data sets of one (task, dataset): fingerprints, runs, test split sources, settings."""
    parts = []
    settings: dict[str, set[str]] = defaultdict(set)
    for fingerprint, group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        trained = sorted((r for r in group if r.kind == "model"),
                         key=lambda r: (str(r.record["attention"]), str(r.record["seed"])))
        names = [f"{r.record['attention']} ({r.record['model']}) seed {r.record['seed']}" for r in trained]
        names += [f"{r.record['baseline']} (trivial baseline)" for r in group if r.kind == "baseline"]
        sources = sorted({str((r.record["provenance"].get("splits") or {}).get("test", "not recorded")) for r in group})
        parts.append(f"{data_label(fingerprint)}: {_listing(names, 3)}; test split {' / '.join(sources)}")
        for run in trained:
            for key, value in _flatten(run.config.get("task", {}), "task.").items():
                settings[key].add(json.dumps(value, default=str))
    differing = [key for key, values in sorted(settings.items()) if len(values) > 1]
    because = f"; task settings that differ: {', '.join(differing)}" if differing else ""
    return (f"{task}/{dataset}: records of {len(groups)} different test sets (provenance.test_fingerprint "
            f"{' | '.join(parts)}{because}): not pooled over seeds or compared; one section each")


def _section(task: str, dataset: str, section_runs: list[Run], pairs: list[tuple[str, str]],
             warnings: list[str]) -> Section:
    baselines = sorted((r for r in section_runs if r.kind == "baseline"), key=lambda r: (r.record["baseline"], r.run_id))
    names = [r.record["baseline"] for r in baselines]
    rows = [Row(task, dataset, None, None, (("run", b.run_id),) if names.count(b.record["baseline"]) > 1 else (),
                [b], trivial=b.record["baseline"]) for b in baselines]
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in section_runs:
        if run.kind == "model":
            groups[(str(run.record["attention"]), str(run.record["model"]))].append(run)
    varying = _varying_keys(list(groups.values()))
    cells: dict[tuple, Row] = {}
    for (attention, model), group in groups.items():
        for run in group:
            flat = _flatten(run.config)
            extra = tuple((key, flat.get(key)) for key in varying)
            row = cells.setdefault((attention, model, extra), Row(task, dataset, attention, model, extra))
            row.runs.append(run)
    for attention, model in pairs:
        if not any(key[:2] == (attention, model) for key in cells):
            cells[(attention, model, ())] = Row(task, dataset, attention, model)
    ordered = sorted(cells.values(), key=lambda r: (r.model, r.attention, [str(v) for _, v in r.extra]))
    for row in ordered:
        seeds = [run.record["seed"] for run in row.runs]
        if len(seeds) != len(set(seeds)):
            warnings.append(f"{task}/{dataset} {row.model} {row.label}: seed repeated ({sorted(seeds)}); "
                            "every record is counted: point --runs at one suite")
    return Section(task, dataset, rows + ordered)


def _varying_keys(groups: list[list[Run]]) -> list[str]:
    """Config keys (outside housekeeping) whose value differs between runs of the same attention and backbone."""
    keys: set[str] = set()
    for group in groups:
        flats = [_flatten(run.config) for run in group]
        for key in set().union(*flats):
            if not _is_housekeeping(key) and len({json.dumps(f.get(key), default=str) for f in flats}) > 1:
                keys.add(key)
    return sorted(keys)


# ----------------------------------------------------------------------------------------------- per-row statistics


def summarize(rows: list[Row]) -> None:
    for row in rows:
        if row.missing:
            continue
        primary = row.runs[0].primary
        tests = [run.record["metrics"].get("test") or {} for run in row.runs]
        row.stats["primary"] = primary
        row.stats["metrics"] = {
            key: seed_statistics([t[key] for t in tests if isinstance(t.get(key), (int, float))])
            for key in sorted({k for t in tests for k in t if k not in NOT_REPORTED})
            if any(isinstance(t.get(key), (int, float)) for t in tests)
        }
        costs = [run.record["cost"] for run in row.runs]
        row.stats["cost"] = {key: _mean([c.get(key) for c in costs]) for key in COST_FIELDS}
        row.stats["cost"]["peak_memory_kind"] = sorted({str(c["peak_memory_kind"]) for c in costs
                                                        if c.get("peak_memory_kind")})
        # Older records timed the whole fit (validation included) as train_seconds and had no validation_seconds.
        row.stats["cost"]["train_seconds_includes_validation"] = any(
            "train_seconds" in c and "validation_seconds" not in c for c in costs)
        row.stats["seeds"] = sorted(run.record["seed"] for run in row.runs if run.record["seed"] is not None)


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(np.mean(numbers)) if numbers else None


# ----------------------------------------------------------------------------------------------- degenerate runs


def same_test_data(a: Run, b: Run) -> bool:
    """The same test data fingerprint, else the same (id, gold) pairs in predictions.jsonl."""
    if a.fingerprint is not None and a.fingerprint == b.fingerprint:
        return True
    return sorted(a.examples) == sorted(b.examples)


def flag_degenerate(section: Section) -> None:
    """row.flags for every model row with a degenerate run; notes for what could not be checked."""
    trivial = [row.runs[0] for row in section.rows if row.trivial]
    unmatched: dict[str, list] = defaultdict(list)
    used: set[str] = set()
    for row in section.rows:
        if row.trivial or row.missing:
            continue
        name = f"{row.label} ({row.model})"
        primary = row.runs[0].primary

        def shown(value: float, metric: str = primary) -> str:
            return format_metric(metric, value) + ("%" if metric in PERCENT else "")

        for run in sorted(row.runs, key=lambda r: r.record["seed"]):
            reason = collapse_reason(run.family, run.predictions)
            if reason:
                row.flags.append({"run_id": run.run_id, "seed": run.record["seed"], "reason": reason})
            matches = [b for b in trivial if same_test_data(run, b)]
            used.update(b.run_id for b in matches)
            if not matches:
                unmatched[name].append(run.record["seed"])
            for base in matches:
                value = base.record["metrics"]["test"].get(run.primary)
                if not isinstance(value, (int, float)):
                    continue
                reason = below_baseline_reason(run.primary, run.record["metrics"]["test"][run.primary],
                                               base.record["baseline"], value, run.mode, shown=shown)
                if reason:
                    row.flags.append({"run_id": run.run_id, "seed": run.record["seed"], "reason": reason})
    trained = any(not row.trivial and not row.missing for row in section.rows)
    for row in section.rows:
        if row.trivial and trained and row.runs[0].run_id not in used:
            section.notes.append(f"{row.label} was computed on other test data than every trained run here "
                                 f"(fingerprint {row.runs[0].fingerprint}): a reference only")
    if unmatched:
        section.notes.append(f"{NO_TRIVIAL}: {_rows_and_seeds(section, unmatched)} not checked against a trivial baseline")


def _rows_and_seeds(section: Section, seeds: dict[str, list]) -> str:
    """"dot (rnn), general (rnn) seeds 1, 2": a row by name when all its runs are meant, else with the seeds."""
    runs = {f"{row.label} ({row.model})": len(row.runs) for row in section.rows}
    return _listing([name if len(found) == runs[name] else f"{name} seed{'s' * (len(found) > 1)} "
                     + ", ".join(map(str, found)) for name, found in seeds.items()])


def _listing(items: list[str], limit: int = 6) -> str:
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


# ----------------------------------------------------------------------------------------------- significance


def compare_to_baseline(rows: list[Row], baseline: str, samples: int, warnings: list[str]) -> None:
    """row.stats['test'] (two-level bootstrap, Holm) and row.stats['test_examples_only'] for each model row
    against the baseline variant's row of its backbone and settings; row.stats['test_note'] says why not. Rows
    are of one section (one data set); runs are paired only when every one lists the same (id, gold) pairs."""
    families: dict[tuple, list[tuple[Row, dict]]] = defaultdict(list)
    for row in rows:
        if row.missing or row.trivial or row.attention == baseline:
            continue
        base = next((r for r in rows if not r.trivial and r.attention == baseline and r.model == row.model
                     and r.extra == row.extra and not r.missing), None)
        if base is None:
            row.stats["test_note"] = f"no {baseline} baseline"
            continue
        if row.flags:
            row.stats["test_note"] = "flagged (degenerate): not tested"
            continue
        if base.flags:
            row.stats["test_note"] = f"the {baseline} row is flagged (degenerate): not tested"
            continue
        metric = row.runs[0].primary
        if metric not in RESAMPLABLE:
            row.stats["test_note"] = f"{metric} is not resampled"
            continue
        ours, theirs = (sorted(r.runs, key=lambda run: run.record["seed"]) for r in (row, base))
        examples = ours[0].examples
        if any(run.examples != examples for run in [*ours, *theirs]):
            row.stats["test_note"] = "not paired: different test examples than the baseline (see warnings)"
            warnings.append(f"{row.task}/{row.dataset} {row.model} {row.label}: no significance test: its runs and the "
                            f"{baseline} runs do not list the same test examples (id, gold) in the same order, so "
                            "they cannot be paired")
            continue
        variant, reference = [run.statistics for run in ours], [run.statistics for run in theirs]
        row.stats["test_examples_only"] = paired_bootstrap(variant, reference, metric, samples=samples)
        if min(len(variant), len(reference)) < MIN_SEEDS:
            row.stats["test_note"] = FEW_SEEDS
            continue
        families[(row.model, row.extra)].append((row, hierarchical_bootstrap(variant, reference, metric, samples=samples)))
    for family in families.values():
        adjusted = holm([result["p"] for _, result in family])
        for (row, result), p_holm in zip(family, adjusted):
            row.stats["test"] = {**result, "p_holm": p_holm, "baseline": baseline, "family_size": len(family)}


# ----------------------------------------------------------------------------------------------- section footers


def data_notes(section: Section) -> None:
    """The test split's truncation (from the records' "data" block) and the cost columns' caveats."""
    runs = [run for row in section.rows if not row.trivial for run in row.runs]
    seen: dict[tuple, list[Run]] = defaultdict(list)
    without = 0
    for run in runs:
        data = run.record.get("data")
        splits = data.get("splits") if isinstance(data, dict) else None
        test = splits.get("test") if isinstance(splits, dict) else None
        if not isinstance(test, dict):
            without += 1
            continue
        limits = {"source": data.get("max_length"), "target": data.get("max_target_length") or data.get("max_length")}
        # (a target is cut at max_target_length - 1 tokens: the limit counts BOS/EOS)
        for side, limit in limits.items():
            lengths = test.get(side)
            if isinstance(lengths, dict):
                key = (side, limit, data.get("warn_share", 0.05), test.get("examples"),
                       *(lengths.get(k) for k in ("truncated", "p50", "p90", "p99", "max")))
                seen[key].append(run)
    for key, group in sorted(seen.items(), key=lambda kv: json.dumps(kv[0], default=str)):
        side, limit, warn, examples, truncated, p50, p90, p99, longest = key
        entry = {"side": side, "max_length": limit, "warn_share": warn, "examples": examples, "truncated": truncated,
                 "p50": p50, "p90": p90, "p99": p99, "max": longest, "runs": sorted(r.run_id for r in group)}
        section.test_data.append(entry)
        share = f"{truncated:.1%}" if isinstance(truncated, (int, float)) else "an unknown share"
        runs_of = "" if len(seen) <= 2 else f" ({len(group)} runs: {_listing(sorted(r.run_id for r in group), 3)})"
        setting = f"task.{'max_length' if side == 'source' else 'max_target_length'}={limit}"
        length = lambda v: f"{v:.0f}" if isinstance(v, (int, float)) else "?"  # noqa: E731
        section.notes.append(f"test {side}s{f' ({examples} examples)' if examples else ''}: {share} truncated by "
                             f"{setting}; lengths in tokens before truncation p50 {length(p50)}, p90 {length(p90)}, "
                             f"p99 {length(p99)}, max {length(longest)}" + runs_of)
        if isinstance(truncated, (int, float)) and isinstance(warn, (int, float)) and truncated > warn:
            # A cut source hides input from the model; a cut target only shortens what it learns to emit (the
            # references are scored in full).
            effect = ("the model reads truncated sources" if side == "source"
                      else "the model is trained on truncated targets; references are scored in full")
            section.notes.append(f"⚠ warning: {truncated:.1%} of the test {side}s are cut by {setting}, more than the "
                                 f"warning share {warn:.0%}: {effect}")
    if without:
        section.notes.append(f"test-split lengths not recorded in {without} of {len(runs)} runs (no \"data\" block)")
    if any(r.stats.get("cost", {}).get("train_seconds_includes_validation") for r in section.rows):
        section.notes.append("† train s includes in-fit validation for records without cost.validation_seconds "
                             "(older record format)")
    kinds = sorted({k for r in section.rows for k in r.stats.get("cost", {}).get("peak_memory_kind", [])})
    if len(kinds) > 1:
        section.notes.append(f"⚠ peak memory measured differently across runs ({'; '.join(kinds)}): not comparable")


# ----------------------------------------------------------------------------------------------- the report


def build_leaderboard(runs_dir: Path, out_dir: Path, baseline: str = "additive", samples: int = 1000,
                      title: str = "attnbench leaderboard") -> Report:
    if samples < 100:
        raise ConfigError(f"--samples {samples} is too few for a bootstrap p-value: use at least 100 (default 1000)")
    check_out(out_dir)
    runs, skipped = read_runs(runs_dir)
    if not runs:
        raise ConfigError(f"no completed run records under {runs_dir}" + (f" ({len(skipped)} skipped)" if skipped else "")
                          + ": run `attnbench run ...` or `attnbench sweep ...` first, or pass --runs <folder>")
    sections, warnings = make_sections(runs)
    for section in sections:
        summarize(section.rows)
        flag_degenerate(section)
        compare_to_baseline(section.rows, baseline, samples, warnings)
        data_notes(section)
    report = Report(sections, skipped, warnings, provenance(runs), len(runs))
    report.files = publish(out_dir, render_all(report, baseline, title, runs_dir, samples))
    return report


# ----------------------------------------------------------------------------------------------- writing


def check_out(out_dir: Path) -> None:
    """Refuse an --out that cannot take the leaderboard before any work starts (creating nothing)."""
    for path in (out_dir, out_dir / "plots"):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out_dir}: {path} is a file, not a folder: pass --out <a folder> "
                              "(leaderboard.md, .csv, .json and plots/ go inside it) or move the file away")
    for path in (out_dir / name for name in OUTPUTS):
        if path.exists() and not path.is_file():
            raise ConfigError(f"--out {out_dir}: {path} is not a file the leaderboard can replace: remove it or pass "
                              "another --out")
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out_dir}: {probe} is a file, not a folder: pass --out <a folder>")
    for folder in (probe, *([out_dir / "plots"] if (out_dir / "plots").is_dir() else [])):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out_dir} is not writable ({folder} is read-only for this user): pass "
                              "--out <a folder you can write>")


def publish(out_dir: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write all of `files` (names relative to out_dir) or none of them. Each is first staged in a hidden folder
    inside out_dir, beside a hard link (or copy) of the file it replaces; then each staged file is moved into place
    with os.replace, so every target is always a whole file, old or new. Any failure moves the previous versions
    back, removes the new files that had none and the folders this call created, and raises one error naming
    --out. A reader between two of the moves can still see a mix: no file system swaps several files at once."""
    created = _missing_folders(out_dir, files)
    staging: Path | None = None
    moved: list[tuple[Path, Path | None]] = []  # (target, its previous version's copy) already replaced
    current = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=out_dir))
        plan = []
        for name, content in files.items():
            current = target = out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(staging / "new" / name, content)
            previous = staging / "previous" / name if target.exists() else None
            if previous is not None:
                _keep(target, previous)
            plan.append((staging / "new" / name, target, previous))
        for staged, target, previous in plan:
            current = target
            os.replace(staged, target)
            moved.append((target, previous))
    except BaseException as err:
        not_restored = _roll_back(moved)
        _clean_up(staging, created)
        if isinstance(err, (OSError, ResourceError)):
            raise _write_error(out_dir, current, err, not_restored) from None
        raise
    _clean_up(staging, [])
    return [out_dir / name for name in files]


def _missing_folders(out_dir: Path, names: dict[str, Any]) -> list[Path]:
    """Folders that writing `names` into out_dir would create, deepest first (to remove again on failure)."""
    missing: set[Path] = set()
    for folder in {out_dir, *((out_dir / name).parent for name in names)}:
        while not folder.exists() and folder not in missing and folder != folder.parent:
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _keep(target: Path, copy: Path) -> None:
    """A second name for the file about to be replaced (a hard link takes no space), else a copy of it."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(target, copy)
    except OSError:
        shutil.copy2(target, copy)


def _roll_back(moved: list[tuple[Path, Path | None]]) -> list[str]:
    """Put back the previous version of every replaced target (delete a target that had none); what failed."""
    failed = []
    for target, previous in reversed(moved):
        try:
            if previous is None:
                target.unlink()
            else:
                os.replace(previous, target)
        except OSError as err:
            failed.append(f"{target} ({err.strerror or err})")
    return failed


def _clean_up(staging: Path | None, created: list[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for folder in created:
        try:
            folder.rmdir()  # only if empty: never a folder someone else has written into meanwhile
        except OSError:
            pass


def _write_error(out_dir: Path, path: Path, err: BaseException, not_restored: list[str]) -> AttnbenchError:
    code = getattr(err, "errno", None)
    if isinstance(err, ResourceError) or code == errno.ENOSPC:
        problem, fix = "no space left on the device", "free disk space, or pass --out <a folder on another disk>"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem, fix = f"not writable ({err.strerror})", "pass --out <a folder you can write>"
    else:
        problem = f"{type(err).__name__}: {getattr(err, 'strerror', None) or err}"
        fix = "check that folder, or pass another --out"
    state = ("the previous leaderboard there is unchanged" if not not_restored
             else f"could not put back the previous {_listing(not_restored, 3)}")
    return ResourceError(f"cannot write the leaderboard into --out {out_dir} ({path}): {problem}; {state}: {fix}")


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

