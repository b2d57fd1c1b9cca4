"""The leaderboard's columns, declared once: `COLUMNS` is read in order by the Markdown table, the CSV header and
lines, and the JSON rows (attnbench.suite.leaderboard_render), so a new column is one entry here.

A column has a name (the CSV field and the JSON key), how to get its value from a cell (one row of a section, and
for the CSV one of the row's test metrics), and how it reads in each output: `csv` (None: not in the CSV), `md`
with its `header` (None: not in the Markdown table), `json` (None: not in the JSON rows). `missing` is what a row
without runs shows instead of the value (KEEP: the value, from the row alone).

The Markdown table shows the section's primary metric only (its cells combine CSV fields: mean ± std, the interval,
Δ with its interval); the CSV has one line per (row, test metric), test results on the primary metric's line only;
the JSON one object per row, with the row's statistics as computed (`row.stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from attnbench.suite.convergence import CONVERGED
from attnbench.suite.formats import fmt, fmt_int, format_metric
from attnbench.suite.interpretability import STATS
from attnbench.suite.row_stats import Reference
from attnbench.suite.rows import Row, Section

EXAMPLES_ONLY = "p, examples only (these trained models)"
KEEP = object()  # Column.missing: a row without runs shows the value too


@dataclass
class Table:
    """One section's table as the renderers see it."""

    section: Section
    baseline: str | None = None  # the baseline variant (the Markdown headers and cells name it)

    @cached_property
    def reference(self) -> Reference | None:
        """The parsed --baseline (which rows are the baseline's own); None without one."""
        return Reference.parse(self.baseline) if self.baseline is not None else None

    @cached_property
    def primary(self) -> str:
        return self.section.primary

    @cached_property
    def secondary(self) -> list[str]:
        """The other test metrics of the section, one Markdown column each."""
        present = [r for r in self.section.rows if not r.missing]
        return sorted({k for r in present for k in r.stats["metrics"]} - {self.primary})

    @cached_property
    def best(self) -> Row | None:
        """Best mean among the trained, unflagged rows (a trivial baseline or a degenerate run is never bold)."""
        present = [r for r in self.section.rows if not r.missing and not r.trivial and not r.flags]
        return max(present, key=lambda r: r.stats["metrics"][r.stats["primary"]]["mean"]) if present else None


@dataclass
class Cell:
    """A row of a table and one of its test metrics (the primary one outside the CSV; None for a missing row)."""

    table: Table
    row: Row
    metric: str | None

    @property
    def stats(self) -> dict[str, Any]:
        return self.row.stats["metrics"][self.metric]

    @property
    def is_primary(self) -> bool:
        return self.metric == self.row.stats["primary"]

    @property
    def test(self) -> dict[str, Any]:
        """The two-level bootstrap against the baseline variant (primary metric only)."""
        return self.row.stats.get("test", {}) if self.is_primary else {}

    @property
    def examples(self) -> dict[str, Any]:
        """The example-only paired bootstrap (primary metric only)."""
        return self.row.stats.get("test_examples_only", {}) if self.is_primary else {}

    @property
    def cost(self) -> dict[str, Any]:
        return self.row.stats["cost"]


def _as_is(value: Any) -> Any:
    return value


def _text(cell: Cell, value: Any) -> str:
    return "" if value is None else str(value)


def _or_empty(value: Any) -> Any:
    return value or ""


def _joined(value: list) -> str:
    return " ".join(map(str, value))


@dataclass(frozen=True)
class Column:
    name: str
    value: Callable[[Cell], Any]
    csv: Callable[[Any], Any] | None = _as_is
    header: str | Callable[[Table], str | list[str]] | None = None
    md: Callable[[Cell, Any], str | list[str]] = _text
    json: Callable[[Any], Any] | None = None
    json_merge: bool = False  # the value is a dict whose entries are the JSON row's (row.stats)
    missing: Any = None

    def csv_value(self, cell: Cell) -> Any:
        if cell.row.missing and self.missing is not KEEP:
            return self.missing
        return self.csv(self.value(cell))

    def md_headers(self, table: Table) -> list[str]:
        header = self.header(table) if callable(self.header) else self.header
        return header if isinstance(header, list) else [header]

    def md_cells(self, cell: Cell) -> list[str]:
        if cell.row.missing and self.missing is not KEEP:
            return ["" if self.missing is None else str(self.missing)] * len(self.md_headers(cell.table))
        text = self.md(cell, self.value(cell))
        return text if isinstance(text, list) else [text]


def flag_text(flags: list[dict], limit: int = 2) -> str:
    """A row's reasons, runs with the same reason together: "seeds 1, 3: ...; seed 2: ..."."""
    seeds: dict[str, list] = {}
    for flag in flags:
        seeds.setdefault(flag["reason"], []).append(flag["seed"])
    parts = [f"seed{'s' * (len(found) > 1)} {', '.join(map(str, found))}: {reason}" for reason, found in seeds.items()]
    more = f"; and {len(parts) - limit} more (leaderboard.json)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


# ----------------------------------------------------------------------------------------------- Markdown cells


def _label(cell: Cell, label: str) -> str:
    return ("⚠ " if cell.row.flags else "") + label


def _value(cell: Cell, m: dict) -> str:
    value = format_metric(cell.metric, m["mean"])
    if m["std"] is not None:
        value += f" ± {format_metric(cell.metric, m['std'])}"
    return f"**{value}**" if cell.row is cell.table.best else value


def _interval(cell: Cell, m: dict) -> str:
    if m["ci_low"] is not None:
        return f"[{format_metric(cell.metric, m['ci_low'])}, {format_metric(cell.metric, m['ci_high'])}]"
    return "" if cell.row.trivial else "n/a (n=1)"


def _untested(cell: Cell) -> str | None:
    """The text of a test cell of a row that is not compared ("" or "baseline"); None for one that is."""
    if cell.row.trivial:
        return ""
    reference = cell.table.reference
    return "baseline" if reference is not None and reference.is_reference(cell.row) else None


def _delta(cell: Cell, delta: float | None) -> str:
    untested = _untested(cell)
    if untested is not None:
        return untested
    test, examples, metric = cell.test, cell.examples, cell.metric
    if test:
        return (f"{format_metric(metric, delta, signed=True)} "
                f"[{format_metric(metric, test['delta_low'], signed=True)}, "
                f"{format_metric(metric, test['delta_high'], signed=True)}]")
    return format_metric(metric, examples["delta"], signed=True) if examples else ""


def _p_holm(cell: Cell, p_holm: float | None) -> str:
    if _untested(cell) is not None:
        return ""
    if cell.test:
        return f"{p_holm:.3f}" + ("*" if p_holm < 0.05 else "")
    return cell.row.stats.get("test_note", "")


def _p_examples(cell: Cell, p: float | None) -> str:
    return "" if _untested(cell) is not None or p is None else f"{p:.3f}"


def _flag(cell: Cell, flags: list[dict]) -> str:
    text = flag_text(flags)
    return f"⚠ {text}" if text else ""


def _converged(cell: Cell, convergence: dict | None) -> str:
    """"3/3", or "2/3: seed 3 still rising (+0.8)"."""
    if not convergence:
        return ""
    others = [s for s in convergence["states"] if s["state"] not in CONVERGED]
    text = f"{convergence['converged']}/{convergence['runs']}"
    parts = [f"seed {s['seed']} {s['state']}" + (f" ({s['gain']:+.2f})" if s["gain"] is not None else "")
             for s in others[:2]]
    more = f", {len(others) - 2} more" if len(others) > 2 else ""
    return text + (f": {', '.join(parts)}{more}" if parts else "")


def _secondary(cell: Cell, metrics: dict) -> list[str]:
    return [format_metric(k, metrics[k]["mean"]) if k in metrics else "" for k in cell.table.secondary]


def _seconds(cell: Cell, seconds: float | None) -> str:
    return fmt(seconds) + ("†" if cell.cost["train_seconds_includes_validation"] else "")


def _whole(cell: Cell, value: float | None) -> str:
    return fmt_int(value)


def _cost(name: str, header: str | None = None, md: Callable[[Cell, Any], str] = _whole) -> Column:
    return Column(name, lambda c: c.cost[name], header=header, md=md)


def _test(name: str, key: str | None = None, **kw: Any) -> Column:
    return Column(name, lambda c: c.test.get(key or name), **kw)


def _explained(cell: Cell) -> dict[str, Any]:
    """The row's interpretability statistics (suite/interpretability.py), on the primary metric's CSV line only."""
    return (cell.row.stats.get("explain") or {}) if cell.is_primary else {}


def _explain(stat: str, key: str) -> Column:
    return Column(f"explain_{stat}_{key}", lambda c: (_explained(c).get(stat) or {}).get(key))


# ----------------------------------------------------------------------------------------------- the table


COLUMNS: tuple[Column, ...] = (
    Column("task", lambda c: c.table.section.task, missing=KEEP),
    Column("dataset", lambda c: c.row.dataset, json=_as_is, missing=KEEP),
    # the section's test data (provenance.test_fingerprint): rows of one (task, dataset) with different ones are on
    # other test data
    Column("data_fingerprint", lambda c: c.table.section.fingerprint, csv=_or_empty, json=_as_is, missing=KEEP),
    Column("kind", lambda c: c.row.kind, json=_as_is, missing=KEEP),
    Column("label", lambda c: c.row.label, header="attention", md=_label, json=_as_is, missing=KEEP),
    Column("attention", lambda c: c.row.attention, csv=_or_empty, json=_as_is, missing=KEEP),
    Column("backbone", lambda c: c.row.model, csv=_or_empty, header="backbone",
           md=lambda c, model: "—" if c.row.trivial else str(model), json=_as_is, missing=KEEP),
    Column("settings", lambda c: c.row.extra, csv=lambda extra: ";".join(f"{k}={v}" for k, v in extra),
           json=dict, missing=KEEP),
    Column("trivial_baseline", lambda c: c.row.trivial, csv=_or_empty, json=_as_is, missing=KEEP),
    Column("missing", lambda c: c.row.missing, csv=None, json=_as_is),
    Column("metric", lambda c: c.metric, missing=""),
    Column("value", lambda c: c.stats, csv=None, header=lambda t: t.primary, md=_value, missing="missing"),
    Column("n", lambda c: c.stats["n"], header="n", missing=0),
    *(Column(key, lambda c, key=key: c.stats[key]) for key in ("mean", "std", "ci_low", "ci_high")),
    Column("ci", lambda c: c.stats, csv=None, header="95% CI", md=_interval),
    _test("baseline"),
    _test("delta", header=lambda t: f"Δ {t.primary} vs {t.baseline} [95% interval]", md=_delta),
    _test("delta_low"),
    _test("delta_high"),
    _test("p"),  # p and p_holm are the two-level bootstrap's
    _test("p_holm", header="p (Holm)", md=_p_holm),
    _test("holm_family_size", "family_size"),
    Column("p_examples_only", lambda c: c.examples.get("p"), header=EXAMPLES_ONLY, md=_p_examples),
    Column("delta_low_examples_only", lambda c: c.examples.get("delta_low")),
    Column("delta_high_examples_only", lambda c: c.examples.get("delta_high")),
    Column("test_note", lambda c: c.row.stats.get("test_note", "") if c.is_primary else ""),
    Column("flagged", lambda c: bool(c.row.flags), json=_as_is, missing=""),
    Column("flags", lambda c: c.row.flags, csv=lambda flags: flag_text(flags, limit=len(flags)), header="flag",
           md=_flag, json=_as_is),
    Column("stats", lambda c: c.row.stats, csv=None, json=_as_is, json_merge=True),
    Column("secondary", lambda c: c.row.stats["metrics"], csv=None, header=lambda t: t.secondary, md=_secondary),
    _cost("params", "params"),
    _cost("train_seconds", "train s", md=_seconds),
    _cost("validation_seconds"),
    _cost("test_seconds"),
    _cost("tokens_per_second", "tokens/s"),
    _cost("peak_memory_mb", "peak MB (training)"),
    _cost("eval_peak_memory_mb"),
    Column("peak_memory_kind", lambda c: c.cost["peak_memory_kind"], csv="; ".join),
    _cost("train_seconds_includes_validation"),
    Column("seeds", lambda c: c.row.stats["seeds"], csv=_joined),
    Column("converged", lambda c: c.row.stats.get("convergence"), header="converged", md=_converged,
           csv=lambda v: "" if not v else f"{v['converged']}/{v['runs']}"),
    # interpretability (attnbench explain): in the JSON as stats["explain"], in Markdown as a table of its own
    Column("explain_runs", lambda c: _explained(c).get("runs")),
    *(_explain(stat.name, key) for stat in STATS for key in ("mean", "ci_low", "ci_high")),
    Column("run_ids", lambda c: sorted(run.run_id for run in c.row.runs), csv=_joined, json=_as_is),
)
CSV_FIELDS = tuple(c.name for c in COLUMNS if c.csv is not None)
