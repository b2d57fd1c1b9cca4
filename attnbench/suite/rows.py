"""Records into sections and rows: one section per (task, dataset) and test data, in it one row per trivial-baseline
record, then attention x backbone, split further by any setting that varies within one pair; degenerate runs
flagged; the section's footnotes.

Runs of one (task, dataset) on different data (provenance.test_fingerprint) are never pooled or compared: each data
set gets its own section, with a warning. Degenerate runs (attnbench.metrics.degeneracy): collapsed predictions, or a
primary metric that does not beat a trivial baseline record of the same test data.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench.config import NOT_RESULT_KEYS
from attnbench.metrics.degeneracy import baseline_label, below_baseline_reason, collapse_reason
from attnbench.metrics.registry import percent
from attnbench.suite.formats import format_metric, listing
from attnbench.suite.records import Run, same_test_data

# Settings that never split rows: the seed (pooled over) and what cannot change a result (config.NOT_RESULT_KEYS,
# which config_hash leaves out too).
HOUSEKEEPING = ("seed", *NOT_RESULT_KEYS)
NO_TRIVIAL = "no trivial baseline record for this test data"


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
    explained: list = field(default_factory=list)  # suite/interpretability.py Explained, per explained run

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
    wandb_run_id: str | None = None  # the W&B "leaderboard" run it was logged to
    claims: list[dict[str, Any]] = field(default_factory=list)  # suite/claims.py evaluate_claims: published findings

    @property
    def tasks(self) -> dict[str, list[Row]]:
        """Rows by task, the sections of a task one after another."""
        out: dict[str, list[Row]] = defaultdict(list)
        for section in self.sections:
            out[section.task] += section.rows
        return dict(out)


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
        parts.append(f"{data_label(fingerprint)}: {listing(names, 3)}; test split {' / '.join(sources)}")
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


# ----------------------------------------------------------------------------------------------- degenerate runs


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
            return format_metric(metric, value) + ("%" if percent(metric) else "")

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
    return listing([name if len(found) == runs[name] else f"{name} seed{'s' * (len(found) > 1)} "
                    + ", ".join(map(str, found)) for name, found in seeds.items()])


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
        runs_of = "" if len(seen) <= 2 else f" ({len(group)} runs: {listing(sorted(r.run_id for r in group), 3)})"
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
