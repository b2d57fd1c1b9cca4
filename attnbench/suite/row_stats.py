"""Statistics per row: seed statistics of every test metric and the cost, then the comparison of each model row with
the baseline variant's row of its backbone and settings (attnbench.suite.stats).

- Over seeds: mean, sample standard deviation (n-1) and a 95% Student-t confidence interval of the mean.
- Against the baseline variant (same section, backbone and other settings; `VARIANT[KEY=VALUE,...]` names a
  baseline row of given settings, e.g. `multihead[attention.heads=8]`, so that the rows of an ablation are compared
  with one value of its axis): a two-level bootstrap that resamples
  test examples (paired) and each side's seeds, so its p is about the variants, not about particular trained
  models; it needs 3 seeds a side. Holm-corrected across the variants of one (section, backbone, settings),
  flagged rows left out. The example-only paired bootstrap is reported beside it, never starred.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from attnbench.errors import ConfigError
from attnbench.metrics.registry import resamplable
from attnbench.suite.convergence import CONVERGED, convergence
from attnbench.suite.rows import Row
from attnbench.suite.stats import MIN_SEEDS, hierarchical_bootstrap, holm, paired_bootstrap, seed_statistics

NOT_REPORTED = ("loss", "ppl")  # secondary columns are the other test metrics
COST_FIELDS = ("params", "train_seconds", "validation_seconds", "test_seconds", "tokens_per_second",
               "peak_memory_mb", "eval_peak_memory_mb")
FEW_SEEDS = f"n < {MIN_SEEDS} seeds: seed variance cannot be estimated"


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
        if not row.trivial:
            row.stats["convergence"] = _convergence(row)


def _convergence(row: Row) -> dict[str, Any]:
    """How many of the row's runs converged (suite/convergence.py), and each run's state."""
    states = []
    for run in sorted(row.runs, key=lambda r: (r.record["seed"] is None, r.record["seed"] or 0)):
        c = convergence(run.record, run.config)
        states.append({"seed": run.record["seed"], "state": c.state, "gain": c.gain, "metric": c.metric})
    return {"converged": sum(s["state"] in CONVERGED for s in states), "runs": len(states), "states": states}


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(np.mean(numbers)) if numbers else None


@dataclass(frozen=True)
class Reference:
    """What --baseline names: a variant, and optionally settings its row must have (`VARIANT[KEY=VALUE,...]`).
    A row's reference is the row of that variant on the same backbone with the row's own settings, those named here
    replaced; without settings, the variant on the same backbone and settings."""
    attention: str
    settings: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, what: str = "--baseline") -> Reference:
        match = re.fullmatch(r"\s*([^\[\]\s]+)\s*(?:\[([^\[\]]*)\])?\s*", text)
        pairs = [p.strip() for p in (match.group(2) or "").split(",") if p.strip()] if match else []
        if not match or any(p.count("=") != 1 or not p.split("=")[0].strip() for p in pairs) or (
                match.group(2) is not None and not pairs):
            raise ConfigError(f"{what} {text}: use VARIANT or VARIANT[KEY=VALUE,...], e.g. additive or "
                              "multihead[attention.heads=8]")
        return cls(match.group(1), tuple((k.strip(), v.strip()) for k, v in (p.split("=") for p in pairs)))

    def is_reference(self, row: Row) -> bool:
        """Whether `row` is a baseline row itself: the variant, with the named settings (a named setting that does
        not split the section's rows is no condition)."""
        extra = _settings(row)
        return row.attention == self.attention and all(extra.get(k, v) == v for k, v in self.settings)

    def of(self, row: Row, rows: list[Row]) -> Row | None:
        """The row that `row` is compared with: same backbone, own settings but the named ones."""
        named = {k for k, _ in self.settings}
        rest = settings_except(row, named)
        return next((r for r in rows if not r.trivial and not r.missing and r.model == row.model
                     and self.is_reference(r) and settings_except(r, named) == rest), None)


def _settings(row: Row) -> dict[str, str]:
    return {k: str(v) for k, v in row.extra}


def settings_except(row: Row, named: set[str]) -> dict[str, str]:
    """The row's settings (the config values that split its section's rows) other than the `named` ones: what two
    rows compared on the named settings must share."""
    return {k: v for k, v in _settings(row).items() if k not in named}


@dataclass(frozen=True)
class Paired:
    """The paired tests of two rows on one metric: `examples_only` (paired bootstrap over test examples, these trained
    models), `over_seeds` (two-level bootstrap, None with fewer than MIN_SEEDS seeds a side), `note` why a test is
    missing, `paired` False when the rows' runs do not list the same test examples."""
    examples_only: Optional[dict[str, float]] = None
    over_seeds: Optional[dict[str, float]] = None
    note: Optional[str] = None
    paired: bool = True


NOT_PAIRED = "not paired: different test examples"


def paired_tests(row: Row, other: Row, metric: str, samples: int) -> Paired:
    """`row` - `other` on `metric`, each side's runs in seed order; the one place where two rows are paired and tested
    (the baseline comparison and the published claims both use it, each with its own Holm family)."""
    if not resamplable(metric):
        return Paired(note=f"{metric} is not resampled")
    ours, theirs = (sorted(r.runs, key=lambda run: run.record["seed"]) for r in (row, other))
    if any(run.examples != ours[0].examples for run in [*ours, *theirs]):
        return Paired(note=NOT_PAIRED, paired=False)
    a, b = [run.statistics for run in ours], [run.statistics for run in theirs]
    examples_only = paired_bootstrap(a, b, metric, samples=samples)
    if min(len(a), len(b)) < MIN_SEEDS:
        return Paired(examples_only, note=FEW_SEEDS)
    return Paired(examples_only, hierarchical_bootstrap(a, b, metric, samples=samples))


def compare_to_baseline(rows: list[Row], baseline: str, samples: int, warnings: list[str]) -> None:
    """row.stats['test'] (two-level bootstrap, Holm) and row.stats['test_examples_only'] for each model row
    against its baseline row (`Reference`: the baseline variant's row of its backbone and settings); row.stats
    ['test_note'] says why not. Rows are of one section (one data set); runs are paired only when every one lists
    the same (id, gold) pairs."""
    ref = Reference.parse(baseline)
    families: dict[tuple, list[tuple[Row, dict]]] = defaultdict(list)
    for row in rows:
        if row.missing or row.trivial or ref.is_reference(row):
            continue
        base = ref.of(row, rows)
        if base is None:
            row.stats["test_note"] = f"no {baseline} baseline"
            continue
        if row.flags:
            row.stats["test_note"] = "flagged (degenerate): not tested"
            continue
        if base.flags:
            row.stats["test_note"] = f"the {baseline} row is flagged (degenerate): not tested"
            continue
        paired = paired_tests(row, base, row.runs[0].primary, samples)
        if paired.examples_only is not None:
            row.stats["test_examples_only"] = paired.examples_only
        if paired.over_seeds is None:
            row.stats["test_note"] = paired.note
            if not paired.paired:
                row.stats["test_note"] += " than the baseline (see warnings)"
                warnings.append(f"{row.task}/{row.dataset} {row.model} {row.label}: no significance test: its runs and "
                                f"the {baseline} runs do not list the same test examples (id, gold) in the same order, "
                                "so they cannot be paired")
            continue
        families[(row.model, base.extra)].append((row, paired.over_seeds))
    for family in families.values():
        adjusted = holm([result["p"] for _, result in family])
        for (row, result), p_holm in zip(family, adjusted):
            row.stats["test"] = {**result, "p_holm": p_holm, "baseline": baseline, "family_size": len(family)}
