"""The interpretability part of a leaderboard section, from rows that attnbench.suite.interpretability filled: the
Markdown table "Is the attention an explanation?" and three plots, drawn where people look rather than read:

    plots/<section>-explain-tau.png          tau(attention, importance) per example, one violin per variant and
                                             backbone, seeds pooled; a panel per importance
    plots/<section>-explain-permutation.png  classification: per example, the median output TVD under random
                                             permutations of the attention against its largest weight, a panel
                                             per variant (Jain & Wallace 2019, figure 3)
    plots/<section>-explain-probes.png       classification: the run's validation probes, each variant's
                                             attention (head mean) and its gradient x input importance in rows
                                             side by side over the same tokens, each row scaled to its maximum
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnbench.explain.common import IMPORTANCE_LABELS
from attnbench.plotting import png, pyplot
from attnbench.suite.formats import format_metric
from attnbench.suite.interpretability import STATS, Explained, explained_rows
from attnbench.suite.rows import Row, Section

PROBES_SHOWN = 3  # probes per figure: each is a panel as wide as its sentence


def _cell(stats: dict[str, Any] | None, metric: str | None) -> str:
    if not stats:
        return "-"

    def show(value: float) -> str:
        return format_metric(metric, value, signed=True) if metric else f"{value:.3g}"

    interval = f" [{show(stats['ci_low'])}, {show(stats['ci_high'])}]" if stats["ci_low"] is not None else ""
    return show(stats["mean"]) + interval


def explain_markdown(section: Section) -> list[str]:
    """The section's interpretability table and plot links; nothing when no row was explained."""
    rows = explained_rows(section)
    if not rows:
        return []
    seq2seq = _seq2seq(rows)
    stats = [s for s in STATS if any(r.stats["explain"].get(s.name) for r in rows)]
    header = ["attention", "backbone", "explained runs", *[s.header for s in stats]]
    scope = ("per target step of the explained test sample, the last cross-attention layer (head mean) against "
             "gradient x input at the source embeddings; uniform attention: every cross-attention" if seq2seq else
             "per test example, the pooling attention (head mean) against gradient x input at the token embeddings; "
             "uniform attention: the pooling weights")
    drop = (f"the {section.primary} of the explained sample's beam decoding minus its value with uniform weights"
            if seq2seq else f"test {section.primary} minus its value with uniform weights")
    eraser = (" comprehensiveness@0.2: loss of the predicted class's probability when the top 20% of tokens by "
              "attention are deleted, beside a random ranking's (ERASER, DeYoung et al. 2020)."
              if any(s.name == "comprehensiveness" for s in stats) else "")
    lines = [f"### {section.name}: is the attention an explanation?", "",
             f"From `attnbench explain` (explain.json beside each record): mean over the explained seeds [95% t "
             f"interval; none for one seed]; {scope}. τ: Kendall's tau, significant: its p < 0.05 (Jain & Wallace "
             f"2019); entropy / log n: 0 one-hot (a saturated softmax), 1 uniform; drop: {drop} (Wiegreffe & Pinter "
             f"2019).{eraser}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        explain = row.stats["explain"]
        cells = [_cell(explain.get(s.name), section.primary if s.metric_units else None) for s in stats]
        lines.append(f"| {row.label} | {row.model} | {explain['runs']} | " + " | ".join(cells) + " |")
    lines += ["", f"![{section.name}: tau distributions](plots/{section.slug}-explain-tau.png)"]
    if not seq2seq:
        lines += [f"![{section.name}: permutation sensitivity](plots/{section.slug}-explain-permutation.png)"]
        if _probes(rows):
            lines += [f"![{section.name}: probes, attention beside importance](plots/{section.slug}-explain-probes.png)"]
    return lines + [""]


def explain_plots(section: Section) -> dict[str, bytes]:
    rows = [r for r in explained_rows(section) if any(e.arrays for e in r.explained)]
    if not rows:
        return {}
    files = {f"plots/{section.slug}-explain-tau.png": _tau_plot(section, rows)}
    if not _seq2seq(rows):
        files[f"plots/{section.slug}-explain-permutation.png"] = _permutation_plot(section, rows)
        probes = _probes(explained_rows(section))
        if probes:
            files[f"plots/{section.slug}-explain-probes.png"] = _probe_plot(section, probes)
    return files


def _seq2seq(rows: list[Row]) -> bool:
    return any(e.seq2seq for r in rows for e in r.explained)


def _label(row: Row) -> str:
    return f"{row.label}\n{row.model}"


def _tau_plot(section: Section, rows: list[Row]) -> bytes:
    plt = pyplot()
    importances = [name for name in IMPORTANCE_LABELS
                   if any(e.tau(name).size for r in rows for e in r.explained)] or ["gradient"]
    fig, axes = plt.subplots(1, len(importances), figsize=(max(4.0, 0.9 * len(rows) + 1.5) * len(importances), 4),
                             sharey=True, squeeze=False)
    for ax, name in zip(axes[0], importances):
        data = [np.concatenate([e.tau(name) for e in r.explained] or [np.zeros(0)]) for r in rows]
        shown = [i for i, d in enumerate(data) if d.size]
        if shown:
            ax.violinplot([data[i] for i in shown], positions=shown, showmeans=True, showextrema=False)
        for i, values in enumerate(data):
            text = f"{values.mean():.2f}" if values.size else "n/a"
            ax.text(i, 1.02, text, ha="center", va="bottom", fontsize=7)
        ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(rows)), [_label(r) for r in rows], rotation=45, ha="right", fontsize=7)
        ax.set_ylim(-1, 1.12)
        ax.set_title(f"vs {IMPORTANCE_LABELS[name]}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    unit = "target step" if _seq2seq(rows) else "test example"
    axes[0][0].set_ylabel(f"Kendall tau per {unit} (seeds pooled)")
    fig.suptitle(f"{section.name}: agreement of attention with importance (bar: mean, printed above)", fontsize=9)
    return png(fig)


def _permutation_plot(section: Section, rows: list[Row]) -> bytes:
    plt = pyplot()
    columns = min(len(rows), 4)
    lines = -(-len(rows) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.8 * lines), sharex=True, sharey=True,
                             squeeze=False)
    for ax, row in zip(axes.flat, rows):
        x = np.concatenate([np.asarray(e.arrays.get("max_attention", []), dtype=float) for e in row.explained])
        y = np.concatenate([np.asarray(e.arrays.get("permutation_tvd", []), dtype=float) for e in row.explained])
        ax.scatter(x, y, s=3, alpha=0.3, color="tab:blue", rasterized=True)
        if y.size:
            ax.text(0.03, 0.95, f"median TVD {np.median(y):.3f}", transform=ax.transAxes, va="top", fontsize=7)
        ax.set_title(f"{row.label} ({row.model})", fontsize=8)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes.flat):
        if i >= len(rows):
            ax.axis("off")
        elif i + columns >= len(rows):  # nothing drawn below it: its own x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("largest attention weight", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("median output TVD\nunder permutation", fontsize=8)
    fig.suptitle(f"{section.name}: output change when the attention is permuted, per test example (seeds pooled)",
                 fontsize=9)
    return png(fig)


def _probes(rows: list[Row]) -> list[tuple[dict[str, Any], list[tuple[Row, Explained, dict[str, Any]]]]]:
    """Probes shown: those of the first row's first explained run that every row's first run with probes also has
    (same id and tokens), up to PROBES_SHOWN; per probe, (row, run, its probe entry) for every such row."""
    first: dict[int, tuple[Explained, dict[int, dict]]] = {}
    for i, row in enumerate(rows):
        for e in row.explained:
            probes = {p["id"]: p for p in e.report.get("probes") or [] if isinstance(p, dict) and "id" in p}
            if probes:
                first[i] = (e, probes)
                break
    if not first:
        return []
    reference = next(iter(first.values()))[1]
    shown = []
    for probe_id, probe in reference.items():
        entries = [(rows[i], e, found[probe_id]) for i, (e, found) in first.items()
                   if probe_id in found and found[probe_id].get("tokens") == probe.get("tokens")]
        if len(entries) == len(first):
            shown.append((probe, entries))
    return shown[:PROBES_SHOWN]


def _scaled(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    top = np.nanmax(np.abs(array)) if array.size else 0.0
    return array / top if top > 0 else array


def _probe_plot(section: Section, probes: list) -> bytes:
    plt = pyplot()
    widths = [len(probe["tokens"]) for probe, _ in probes]
    heights = [2 * len(entries) for _, entries in probes]
    fig, axes = plt.subplots(len(probes), 1, figsize=(max(6.0, 0.32 * max(widths) + 3), 0.9 + 0.28 * sum(heights)
                                                        + 0.9 * len(probes)),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.45}, squeeze=False)
    for ax, (probe, entries) in zip(axes[:, 0], probes):
        matrix, labels = [], []
        for row, explained, entry in entries:
            seed = explained.run.record.get("seed")
            matrix += [_scaled(entry["attention"]), _scaled(entry["gradient"])]
            mark = "" if entry.get("predicted") == entry.get("label") else " (wrong)"
            labels += [f"{row.label} ({row.model}, seed {seed}){mark}: attention", "gradient x input"]
        image = ax.imshow(np.vstack(matrix), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
        for r in range(2, len(matrix), 2):
            ax.axhline(r - 0.5, color="white", linewidth=2)
        ax.set_xticks(range(len(probe["tokens"])), probe["tokens"], rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"probe {probe['id']} (gold {probe.get('label')})", fontsize=8)
    fig.colorbar(image, ax=list(axes[:, 0]), fraction=0.02, pad=0.01, label="share of the row's largest value")
    fig.suptitle(f"{section.name}: validation probes, each variant's attention beside its gradient importance",
                 fontsize=9)
    return png(fig)
