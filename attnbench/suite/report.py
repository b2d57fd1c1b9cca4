"""`attnbench report`: one self-contained report.html comparing the variants, from the same records and statistics as
the leaderboard (attnbench.suite.leaderboard.analyze).

Per section (task, dataset, test data): the leaderboard table (sortable; baselines, flags, significance as the
leaderboard defines it, CI and n on hover), learning curves from the records' history, quality vs cost, the
validation probes' attention maps side by side with the explain importance where there is one, and what is
missing; the provenance at the foot. Figures are matplotlib PNGs inlined as data URIs and the page has no external
asset, so it opens with no network. The HTML comes from the Jinja2 template templates/report.html.j2 (autoescaped).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench.suite.columns import COLUMNS, EXAMPLES_ONLY, Cell, Table
from attnbench.suite.leaderboard import analyze, check_out, load_claims, runs_label
from attnbench.suite.convergence import RULE as CONVERGENCE_RULE
from attnbench.suite.leaderboard_render import CLAIMS_INTRO, flag_rules, holm_family
from attnbench.suite.leaderboard_wandb import check_leaderboard_wandb, log_leaderboard
from attnbench.suite.publish import publish
from attnbench.suite.report_data import learning_curves, probe_grids, row_maps
from attnbench.suite.report_plots import cost_figure, grid_figure, learning_figure
from attnbench.suite.rows import Report, Section
from attnbench.suite.stats import MIN_SEEDS

REPORT = "report.html"
NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass
class Figure:
    name: str  # a file-like name: the W&B image key
    caption: str
    png: bytes
    note: str = ""

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class SectionView:
    section: Section
    headers: list[str]
    rows: list[dict[str, Any]]
    notes: list[str]
    curves: Figure | None
    cost: Figure | None
    maps: list[Figure]
    missing: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.section.slug)


def build_report(runs_dirs: list[Path], out_dir: Path, baseline: str = "additive", samples: int = 1000,
                 title: str = "attnbench report", wandb: str = "disabled", project: str = "attnbench",
                 entity: str | None = None, claims: Path | None = None) -> tuple[Report, Path]:
    """report.html of the records under runs_dirs, written atomically into out_dir; with wandb "offline" or "online"
    the leaderboard table and the report's figures are also logged to a W&B "leaderboard" run; with `claims` (a
    sweep spec) its published findings tested."""
    check_out(out_dir, (REPORT,), REPORT)
    check_leaderboard_wandb(wandb)
    tested = load_claims(claims) if claims is not None else None
    report = analyze(runs_dirs, baseline, samples, tested)
    views = [section_view(s, baseline) for s in report.sections]
    html = render_html(report, views, baseline, title, runs_label(runs_dirs), samples)
    report.files = publish(out_dir, {REPORT: html})
    figures = {f"report/{v.section.slug}/{f.name}.png": f.png
               for v in views for f in [v.curves, v.cost, *v.maps] if f is not None}
    report.wandb_run_id = log_leaderboard(report, figures, out_dir, wandb, project, entity, {
        "runs": [str(d) for d in runs_dirs], "baseline": baseline, "samples": samples, "title": title,
        "report": str(out_dir / REPORT), "claims": None if claims is None else str(claims)})
    return report, out_dir / REPORT


# ----------------------------------------------------------------------------------------------- the table


def sort_key(text: str) -> str:
    """What a column sorts by: the cell's first number (a mean, a Δ, a p-value), else its text; "" sorts last."""
    match = NUMBER.search(text)
    if match and not re.match(r"\s*[A-Za-z⚠]", text):
        return str(float(match.group(0).replace(",", "").replace("−", "-")))
    return text.strip().lower()


def _hover(cell: Cell, name: str) -> str:
    """The CI and n (and the test behind a Δ or p) of a cell, shown on hover."""
    row = cell.row
    if row.missing or cell.metric is None:
        return ""
    m = cell.stats
    if name in ("value", "ci", "n"):
        seeds = ", ".join(map(str, row.stats.get("seeds") or [])) or "—"
        interval = (f"95% Student-t CI of the mean [{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None
                    else "no interval (n = 1)")
        return f"n = {m['n']} (seeds {seeds}); mean {m['mean']:.4g}, sample std {m['std'] if m['std'] is None else format(m['std'], '.4g')}; {interval} (as recorded, fractions unscaled)"
    if name in ("delta", "p_holm") and cell.test:
        t = cell.test
        return (f"two-level bootstrap vs {t.get('baseline')}: Δ {t['delta']:.4g} [{t['delta_low']:.4g}, "
                f"{t['delta_high']:.4g}], p {t['p']:.3g}, Holm-corrected {t['p_holm']:.3g} in a family of "
                f"{t.get('family_size')}")
    if name == "p_examples_only" and cell.examples:
        e = cell.examples
        return f"paired bootstrap over test examples (these trained models): Δ {e.get('delta')}, p {e.get('p')}"
    return ""


def table_view(section: Section, baseline: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The leaderboard's Markdown columns (attnbench.suite.columns.COLUMNS) as HTML cells with sort keys."""
    table = Table(section, baseline)
    shown = [c for c in COLUMNS if c.header is not None]
    headers = [h for c in shown for h in c.md_headers(table)]
    rows = []
    for row in section.rows:
        cell = Cell(table, row, None if row.missing else table.primary)
        cells = []
        for column in shown:
            hover = _hover(cell, column.name)
            for text in column.md_cells(cell):
                bold = text.startswith("**") and text.endswith("**")
                text = text.strip("*") if bold else text
                # a missing row's placeholders ("missing", 0 seeds) sort with the empty cells, last
                key = "" if row.missing and column.name not in ("label", "backbone") else sort_key(text)
                cells.append({"text": text, "sort": key, "title": hover, "best": bold})
        kind = ("missing" if row.missing else "baseline" if row.trivial else "flagged" if row.flags
                else "best" if row is table.best else "model")
        rows.append({"cells": cells, "kind": kind, "label": row.label, "model": row.model})
    return headers, rows


# ----------------------------------------------------------------------------------------------- a section


def section_view(section: Section, baseline: str) -> SectionView:
    headers, rows = table_view(section, baseline)
    notes = [holm_family(section, baseline) + "."] + list(section.notes)
    if any(r.flags for r in section.rows):
        notes.append(flag_rules())
    if any(r.stats.get("convergence") for r in section.rows):
        notes.append(CONVERGENCE_RULE)
    missing = [f"{r.label} ({r.model}): no completed record" for r in section.rows if r.missing]
    single = [f"{r.label} ({r.model})" for r in section.rows if not r.missing and not r.trivial
              and r.stats["metrics"][section.primary]["n"] < MIN_SEEDS]
    if single:
        missing.append(f"fewer than {MIN_SEEDS} seeds (no significance test; n = 1: no interval, no seed band): "
                       + ", ".join(single))
    curves, no_history = learning_curves(section)
    missing += no_history
    curve_figure = None
    if curves:
        curve_figure = Figure("learning-curves", f"Learning curves of {section.name}: the validation "
                              f"{section.primary} at every validation of the fit, seeds pooled step by step.",
                              learning_figure(section, curves))
    elif any(not r.trivial and not r.missing for r in section.rows):
        missing.append("no learning curves: no run of this section recorded a learning history")
    trained = [r for r in section.rows if not r.trivial and not r.missing]
    cost = (Figure("quality-vs-cost", f"Test {section.primary} against what it cost, per backbone.", cost_figure(section))
            if trained else None)
    maps, no_maps = row_maps(section)
    missing += no_maps
    grids, grid_notes = probe_grids(maps)
    missing += grid_notes
    figures = [Figure(f"probe{g.probe}-{g.name}", f"Probe {g.probe}, {g.name}: "
                      + ", ".join(f"{rm.row.label} ({rm.row.model}, seed {rm.seed})" for rm, _ in g.entries)
                      + "; one colour scale for every attention panel.", grid_figure(section, g), g.note)
               for g in grids]
    if maps and not grids:
        missing.append("no probe that every row's maps share: no attention comparison")
    if maps and not any(rm.importance for rm in maps):
        missing.append("no token importance beside the maps: no explain.json with probes (run `attnbench explain "
                       "<run folder>`; seq2seq explain does not explain probes)")
    return SectionView(section, headers, rows, notes, curve_figure, cost, figures, missing)


# ----------------------------------------------------------------------------------------------- the page


def claim_views(report: Report) -> list[dict[str, str]]:
    """Each tested claim's sentence around its verdict, so the page can set the verdict in bold without markup in
    the text (the template escapes all three parts)."""
    views = []
    for claim in report.claims:
        before, _, after = claim["sentence"].partition(f"**{claim['verdict']}**")
        views.append({"before": before, "verdict": claim["verdict"], "after": after})
    return views


def render_html(report: Report, views: list[SectionView], baseline: str, title: str, runs: str, samples: int) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("attnbench.suite", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        title=title, views=views, report=report, baseline=baseline, runs=runs.replace("`", ""), samples=samples,
        min_seeds=MIN_SEEDS, examples_only=EXAMPLES_ONLY, provenance=report.provenance, claims=claim_views(report),
        claims_intro=CLAIMS_INTRO)
