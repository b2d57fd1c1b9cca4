"""The explain diagnostics of many runs as one table: per attention variant, each diagnostic's mean over seeds with
its 95% Student-t interval (suite/stats.py `seed_statistics`), from the explain.json beside each record.

    python -m attnbench.suite.explain_table results/sweeps/explain_sst2 results/explain_sst2.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from attnbench.suite.interpretability import value_at
from attnbench.suite.stats import seed_statistics
from attnbench.tracking.record import write_atomic

# (column, path into explain.json's "pooling" block, scale for display)
COLUMNS = (
    ("accuracy (%)", ("uniform", "accuracy"), 100),
    ("uniform-attention accuracy (%)", ("uniform", "uniform_accuracy"), 100),
    ("tau vs gradient", ("agreement", "gradient", "tau", "mean"), 1),
    ("significant, gradient (%)", ("agreement", "gradient", "significant_share"), 100),
    ("tau vs leave-one-out", ("agreement", "loo", "tau", "mean"), 1),
    ("significant, LOO (%)", ("agreement", "loo", "significant_share"), 100),
    ("tau vs IG", ("agreement", "ig", "tau", "mean"), 1),
    ("median permutation TVD", ("permutation", "median_tvd", "median"), 1),
    ("comprehensiveness@0.2, attention", ("eraser", "attention", "comprehensiveness@0.2"), 1),
    ("comprehensiveness@0.2, random", ("eraser", "random", "comprehensiveness@0.2"), 1),
    ("entropy / log n", ("entropy", "normalized", "mean"), 1),
)


def collect(runs: Path) -> dict[str, list[dict[str, Any]]]:
    """variant -> the explain.json reports found under `runs` (one per seed)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(runs.rglob("explain.json")):
        report = json.loads(path.read_text())
        found[f"{report['model']} {report['attention']}"].append(report)
    return dict(found)


def render(found: dict[str, list[dict[str, Any]]], title: str) -> str:
    lines = [f"# {title}", "", "Mean over seeds [95% t-interval]; per run, each value is over the whole test set.", "",
             "| diagnostic | " + " | ".join(f"{v} (n={len(r)})" for v, r in found.items()) + " |",
             "|---|" + "---|" * len(found)]
    for name, path, scale in COLUMNS:
        cells = []
        for reports in found.values():
            values = [v * scale for v in (value_at(r["pooling"], *path) for r in reports) if v is not None]
            if not values:
                cells.append("-")
                continue
            s = seed_statistics(values)
            interval = f" [{s['ci_low']:.3g}, {s['ci_high']:.3g}]" if s["ci_low"] is not None else ""
            cells.append(f"{s['mean']:.3g}{interval}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    runs, out = Path(argv[0]), Path(argv[1])
    found = collect(runs)
    if not found:
        print(f"no explain.json under {runs}: run `attnbench explain` on its runs first", file=sys.stderr)
        return 2
    write_atomic(out, render(found, f"attnbench explain: {runs.name}"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
