"""The leaderboard's interpretability columns: is each variant's attention an explanation (attnbench explain)?

Read from the explain.json (and explain.npz) beside each record; a row's value is over its seeds, like the primary
metric: mean, std and the 95% Student-t interval of the mean (suite/stats.py `seed_statistics`), n = the row's runs
that were explained. Per run:

  tau_gradient        mean Kendall tau between the attention and gradient x input; classification: the pooling
                      attention (head mean) over the test examples; seq2seq: the last cross-attention layer's head
                      mean over the target steps of the explained sample
  significant_gradient share of those examples (steps) whose tau has p < 0.05 (Jain & Wallace 2019), in %
  entropy             the attention's entropy divided by log n (n: the attended tokens), mean over the same examples
                      (steps): 0 is one-hot (a saturated softmax), 1 uniform
  uniform_drop        the primary test metric minus its value with uniform attention weights (Wiegreffe & Pinter
                      2019): classification the pooling weights; seq2seq every cross-attention (on the sample)
  comprehensiveness   ERASER comprehensiveness at 20% of the tokens removed by the attention ranking
                      (classification); beside it the random ranking's, which attention has to beat

An explain.json that cannot be read, or belongs to another run (its run_id, attention, model, seed), is left out
with a warning. The per-example values (explain.npz) and the probes (explain.json "probes") are kept on the row for
the plots (attnbench.suite.interpretability_render); only the statistics go into the leaderboard's files.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnbench.suite.records import Run
from attnbench.suite.rows import Row, Section
from attnbench.suite.stats import seed_statistics

IDENTITY = ("run_id", "attention", "model", "seed")  # explain.json must agree with the record on these


@dataclass
class Explained:
    """One run's explain results as the leaderboard uses them."""

    run: Run
    report: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # explain.npz, {} when it cannot be read

    @property
    def seq2seq(self) -> bool:
        return "seq2seq" in self.report

    @property
    def cross(self) -> str | None:
        """The seq2seq map the columns read: the last cross-attention layer."""
        names = [n for n in self.report.get("seq2seq", {}).get("maps", {}) if n.startswith("cross_attention")]
        return max(names, key=lambda n: int(re.sub(r"\D", "", n) or 0)) if names else None

    def tau(self, importance: str) -> np.ndarray:
        """Per example (classification) or target step (seq2seq) tau against `importance`, finite values only."""
        key = f"{self.cross}.mean.tau.{importance}" if self.seq2seq else f"tau.{importance}"
        values = np.asarray(self.arrays.get(key, []), dtype=float)
        return values[np.isfinite(values)]


@dataclass(frozen=True)
class Stat:
    name: str
    header: str
    value: Callable[[Explained, str], float | None]  # (explained run, the section's primary metric) -> value
    metric_units: bool = False  # shown in the primary metric's units (format_metric), else as a plain number


def value_at(block: Any, *path: str) -> float | None:
    """The number at `path` in a nested explain.json block; None where the path or a number is missing."""
    for key in path:
        if not isinstance(block, dict) or key not in block:
            return None
        block = block[key]
    return float(block) if isinstance(block, (int, float)) and not isinstance(block, bool) else None


def _map(e: Explained) -> dict[str, Any]:
    """The block the columns read: the last cross-attention layer's head mean (seq2seq) or the pooling attention."""
    if e.seq2seq:
        return e.report["seq2seq"]["maps"].get(e.cross, {}).get("mean", {})
    return e.report.get("pooling", {})


def _agreement(e: Explained) -> dict[str, Any]:
    return _map(e).get("agreement", {})


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _uniform_drop(e: Explained, primary: str) -> float | None:
    if e.seq2seq:
        change = value_at(e.report["seq2seq"], "uniform", "change", primary)
        return None if change is None else -change
    return value_at(e.report, "pooling", "uniform", "drop") if primary == "accuracy" else None


STATS: tuple[Stat, ...] = (
    Stat("tau_gradient", "τ(attention, gradient)", lambda e, _: value_at(_agreement(e), "gradient", "tau", "mean")),
    Stat("significant_gradient", "significant τ (%)",
         lambda e, _: _percent(value_at(_agreement(e), "gradient", "significant_share"))),
    Stat("entropy", "entropy / log n", lambda e, _: value_at(_map(e), "entropy", "normalized", "mean")),
    Stat("uniform_drop", "drop with uniform attention", _uniform_drop, metric_units=True),
    Stat("comprehensiveness", "comprehensiveness@0.2",
         lambda e, _: value_at(e.report, "pooling", "eraser", "attention", "comprehensiveness@0.2")),
    Stat("comprehensiveness_random", "… random ranking",
         lambda e, _: value_at(e.report, "pooling", "eraser", "random", "comprehensiveness@0.2")),
)


def read_explained(run: Run, warnings: list[str]) -> Explained | None:
    """The run's explain results, or None when it has none (a warning when they are there but unusable)."""
    path = run.path / "explain.json"
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        warnings.append(f"{path}: not read ({error}); the run's interpretability columns are left out")
        return None
    differs = [key for key in IDENTITY if report.get(key) != run.record.get(key)]
    if differs:
        warnings.append(f"{path}: its {', '.join(differs)} differ from the record's (another run's explain.json, or "
                        "one from before the run was re-run): left out; run `attnbench explain` on it again")
        return None
    arrays: dict[str, np.ndarray] = {}
    npz = run.path / "explain.npz"
    if npz.exists():
        try:
            with np.load(npz, allow_pickle=False) as found:
                arrays = {key: found[key] for key in found.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            warnings.append(f"{npz}: not read ({error}); its run is left out of the interpretability plots")
    return Explained(run, report, arrays)


def summarize_explain(section: Section, warnings: list[str]) -> None:
    """row.explained (the explained runs, by seed) and row.stats["explain"] ({stat: seed statistics, "runs": n})
    for every row with at least one explained run."""
    for row in section.rows:
        if row.missing or row.trivial:
            continue
        found = [e for e in (read_explained(run, warnings) for run in row.runs) if e is not None]
        row.explained = sorted(found, key=lambda e: (e.run.record.get("seed") is None, e.run.record.get("seed") or 0))
        if not found:
            continue
        stats: dict[str, Any] = {"runs": len(found), "seeds": [e.run.record.get("seed") for e in row.explained]}
        for stat in STATS:
            values = [v for v in (stat.value(e, section.primary) for e in found) if v is not None]
            stats[stat.name] = seed_statistics(values) if values else None
        row.stats["explain"] = stats


def explained_rows(section: Section) -> list[Row]:
    return [row for row in section.rows if row.stats.get("explain")]
