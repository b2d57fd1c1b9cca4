"""The report's figures (matplotlib, PNG bytes): learning curves, quality vs cost, and attention-map grids.

One colour per attention variant and one marker/line style per backbone in every figure of a section, so a variant
reads the same across them. Static PNGs inlined in the page: an interactive library would add hundreds of kB of
JavaScript to every report for hover values the tables already give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnbench.plotting import png, pyplot
from attnbench.suite.report_data import MAX_HEADS, Curve, ProbeGrid, scale
from attnbench.suite.rows import Row, Section

LINES = ("-", "--", ":", "-.")
MARKERS = "os^Dv<>"
ATTENTION_CMAP, IMPORTANCE_CMAP = "viridis", "Oranges"


class Styles:
    """Colour per attention variant, line and marker per backbone, over a section's trained rows."""

    def __init__(self, section: Section) -> None:
        trained = [r for r in section.rows if not r.trivial]
        self.variants = sorted({r.label for r in trained})
        self.models = sorted({str(r.model) for r in trained})

    def color(self, row: Row) -> str:
        return f"C{self.variants.index(row.label) % 10}"

    def line(self, row: Row) -> str:
        return LINES[self.models.index(str(row.model)) % len(LINES)]

    def marker(self, row: Row) -> str:
        return MARKERS[self.models.index(str(row.model)) % len(MARKERS)]

    def label(self, row: Row) -> str:
        return f"{'⚠ ' if row.flags else ''}{row.label} ({row.model})"


def _references(ax: Any, section: Section, factor: float) -> None:
    """Trivial baselines as horizontal lines; one far below or above the variants is named in a corner instead of
    stretching the axis until the variants' differences vanish."""
    low, high = ax.get_ylim()
    span = high - low
    far = []
    for i, ref in enumerate(r for r in section.rows if r.trivial and not r.missing):
        value = ref.stats["metrics"][section.primary]["mean"] * factor
        if low - span <= value <= high + span:
            ax.axhline(value, color="grey", linewidth=1, linestyle=("--", ":", "-.")[i % 3], label=f"{ref.label} (test)")
        else:
            far.append(f"{ref.label}: {value:.2f} ({'below' if value < low else 'above'} the axis)")
    if far:
        ax.text(0.01, 0.01 if any("below" in f for f in far) else 0.99, "\n".join(far), transform=ax.transAxes,
                fontsize=7, color="dimgrey", va="bottom" if any("below" in f for f in far) else "top")


def learning_figure(section: Section, curves: list[Curve]) -> bytes:
    """Validation metric vs training seconds and vs steps (mean over seeds, band min to max), training loss vs steps."""
    plt, styles = pyplot(), Styles(section)
    primary = section.primary
    unit = " (%)" if scale(primary) == 100 else ""
    what = ("validation" if all(c.key.startswith("val/") for c in curves)
            else f"validation ({', '.join(sorted({c.key.split('/')[0] for c in curves}))})")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for curve in curves:
        row = curve.row
        style = {"color": styles.color(row), "linestyle": styles.line(row), "marker": styles.marker(row),
                 "markersize": 3, "linewidth": 1.4}
        label = f"{styles.label(row)}, n={len(curve.seeds)}"
        for ax, x in ((axes[0], curve.seconds), (axes[1], curve.steps)):
            ax.plot(x, curve.mean, label=label, **style)
            if len(curve.seeds) > 1:
                ax.fill_between(x, curve.low, curve.high, color=style["color"], alpha=0.15, linewidth=0)
        if np.isfinite(curve.train_loss).any():
            axes[2].plot(curve.steps, curve.train_loss, label=label, **style)
    for ax in axes[:2]:
        ax.set_ylabel(f"{what} {primary}{unit}")
    axes[0].set_xlabel("training seconds (training steps only)")
    axes[1].set_xlabel("optimizer steps")
    axes[2].set_xlabel("optimizer steps")
    axes[2].set_ylabel("training loss\n(mean since the previous validation)")
    axes[0].set_title(f"{what} {primary} vs training time", fontsize=9)
    axes[1].set_title(f"{what} {primary} vs steps", fontsize=9)
    axes[2].set_title("training loss vs steps", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{section.name}: learning curves (line: mean over seeds; band: min to max over seeds)", fontsize=10)
    return png(fig, dpi=100)


def cost_figure(section: Section) -> bytes:
    """Test metric (mean ± std over seeds) vs training seconds and vs training peak memory, per backbone."""
    plt, styles = pyplot(), Styles(section)
    primary, factor = section.primary, scale(section.primary)
    unit = " (%)" if factor == 100 else ""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    rows = [r for r in section.rows if not r.trivial and not r.missing]
    for ax, key, xlabel in ((axes[0], "train_seconds", "training seconds per run (training steps only)"),
                            (axes[1], "peak_memory_mb", "training peak memory (MiB)")):
        for row in rows:
            x = row.stats["cost"].get(key)
            if x is None:
                continue
            m = row.stats["metrics"][primary]
            ax.errorbar(x, m["mean"] * factor, yerr=(m["std"] or 0.0) * factor, fmt=styles.marker(row), capsize=3,
                        color=styles.color(row), mfc="none" if row.flags else styles.color(row),
                        label=styles.label(row))
        _references(ax, section, factor)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {primary}{unit}, mean ± std over seeds")
        ax.grid(alpha=0.3)
    axes[0].set_title("quality vs training time", fontsize=9)
    kinds = sorted({k for r in rows for k in r.stats["cost"]["peak_memory_kind"]})
    axes[1].set_title("quality vs peak memory" + (f" ({'; '.join(kinds)})" if kinds else ""), fontsize=8)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{section.name}: quality vs cost (marker: backbone; hollow: flagged)", fontsize=10)
    return png(fig, dpi=100)


def _normalised(values: list[float]) -> np.ndarray:
    array = np.abs(np.asarray(values, dtype=float))
    top = np.nanmax(array) if array.size else 0.0
    return array / top if top > 0 else array


def grid_figure(section: Section, grid: ProbeGrid) -> bytes:
    """One probe, one map: a row of panels per variant, head mean then each head, one colour scale for every
    attention panel; for a pooling map with explain results, the gradient x input importance beneath it."""
    plt = pyplot()
    ks, qs = slice(grid.keys.start, grid.keys.stop), slice(grid.queries.start, grid.queries.stop)
    heads = min(MAX_HEADS, max((m.heads for _, m in grid.entries if m is not None), default=1))
    panels = 1 + (heads if heads > 1 else 0)
    width = grid.keys.stop - grid.keys.start
    vmax = max([float(m.weights[:, qs, ks].max()) for _, m in grid.entries if m is not None] + [1e-6])
    if grid.pooling:
        return _pooling_figure(section, grid, ks, vmax)
    height = grid.queries.stop - grid.queries.start
    cell_w, cell_h = 0.17 * width + 1.6, 0.17 * height + 1.2
    ncols = 1 if heads == 1 else panels
    fig, axes = plt.subplots(len(grid.entries), ncols, figsize=(min(cell_w * ncols, 60), cell_h * len(grid.entries)),
                             squeeze=False)
    image = None
    for r, (rm, m) in enumerate(grid.entries):
        for c in range(ncols):
            ax = axes[r, c]
            if m is None or (c > 0 and (m.heads == 1 or c > m.heads)):
                ax.axis("off")
                if c == 0:
                    ax.text(0.5, 0.5, f"{rm.row.label} ({rm.row.model}): no {grid.name} map", ha="center",
                            va="center", fontsize=8, transform=ax.transAxes)
                continue
            matrix = m.weights.mean(0) if c == 0 else m.weights[c - 1]
            image = ax.imshow(matrix[qs, ks], cmap=ATTENTION_CMAP, vmin=0.0, vmax=vmax, aspect="auto")
            if c == 0:
                ax.set_xticks(range(len(m.keys[ks])), m.keys[ks], rotation=90, fontsize=7)
                ax.set_yticks(range(len(m.queries[qs])), m.queries[qs], fontsize=7)
                ax.set_ylabel(f"{rm.row.label} ({rm.row.model})\nseed {rm.seed}", fontsize=8)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
            title = ("head mean" if m.heads > 1 else "weights") if c == 0 else f"head {c - 1}"
            ax.set_title(title, fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), fraction=0.02, pad=0.01, label="attention weight (one scale)")
    fig.suptitle(f"{section.name}: probe {grid.probe}, {grid.name} (rows: query tokens; columns: key tokens)",
                 fontsize=10)
    return png(fig, dpi=90)


def _pooling_figure(section: Section, grid: ProbeGrid, ks: slice, vmax: float) -> bytes:
    """A single query per map: per variant, one strip per head (and their mean), and the importance strip."""
    plt = pyplot()
    blocks = []  # (row maps, map, rows of the attention strip, labels, importance or None, explain entry or None)
    for rm, m in grid.entries:
        if m is None:
            blocks.append((rm, None, None, [f"{rm.row.label} ({rm.row.model}): no {grid.name} map"], None, None))
            continue
        strips = m.weights[:, 0, ks]
        labels = ["attention"] if m.heads == 1 else [f"head {h}" for h in range(min(m.heads, MAX_HEADS))]
        strips = strips[:MAX_HEADS]
        if m.heads > 1:
            strips, labels = np.vstack([m.weights[:, 0, ks].mean(0, keepdims=True), strips]), ["head mean", *labels]
        entry = rm.importance.get(grid.probe)
        importance = None
        if entry is not None and len(entry.get("gradient") or []) == len(m.keys):
            importance = _normalised(entry["gradient"])[ks]
        blocks.append((rm, m, strips, labels, importance, entry))
    heights = []
    for _, m, strips, _, importance, _ in blocks:
        heights.append(0.6 if m is None else len(strips))
        if importance is not None:
            heights.append(1.0)
    width = ks.stop - ks.start
    fig, axes = plt.subplots(len(heights), 1, figsize=(max(6.0, 0.22 * width + 3.5), 0.9 + 0.24 * sum(heights)
                                                        + 0.35 * len(heights)),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.15}, squeeze=False)
    axes = list(axes[:, 0])
    attention_image = importance_image = None
    i = 0
    for rm, m, strips, labels, importance, entry in blocks:
        ax = axes[i]
        i += 1
        if m is None:
            ax.axis("off")
            ax.text(0.0, 0.5, labels[0], fontsize=8, va="center", transform=ax.transAxes)
            continue
        attention_image = ax.imshow(strips, cmap=ATTENTION_CMAP, vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel(f"{rm.row.label}\n({rm.row.model}, seed {rm.seed})", fontsize=7, rotation=0, ha="right",
                      va="center")
        ax.set_xticks([])
        last = ax
        if importance is not None:
            ax = axes[i]
            i += 1
            importance_image = ax.imshow(importance[None, :], cmap=IMPORTANCE_CMAP, vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_yticks([0], ["|gradient x input|"], fontsize=7)
            ax.set_xticks([])
            last = ax
        if entry is not None and "predicted" in entry:
            wrong = " (wrong)" if entry.get("predicted") != entry.get("label") else ""
            ax.text(1.005, 0.5, f"pred {entry['predicted']}{wrong}", fontsize=7, va="center", transform=ax.transAxes)
    keys = next(m.keys for _, m, _, _, _, _ in blocks if m is not None)[ks]
    last.set_xticks(range(len(keys)), keys, rotation=90, fontsize=8)
    if attention_image is not None:
        fig.colorbar(attention_image, ax=axes, fraction=0.015, pad=0.13, label="attention weight (one scale)")
    if importance_image is not None:
        fig.colorbar(importance_image, ax=axes, location="top", fraction=0.012, pad=0.02, aspect=60,
                     label="|gradient x input|, share of its largest")
    # above the importance colour bar at the top (the cropped PNG keeps what lies above the figure)
    lift = 0.55 / fig.get_size_inches()[1] if importance_image is not None else 0.0
    fig.suptitle(f"{section.name}: probe {grid.probe}, {grid.name}", fontsize=10, y=0.98 + lift)
    return png(fig, dpi=100)
