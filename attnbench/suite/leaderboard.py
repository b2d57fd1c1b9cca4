"""`attnbench leaderboard`: run records in, leaderboard.md/.csv/.json and plots out; a pure function of the records.

The pipeline, one module a stage (each way the leaderboard grows has one place):

    records     attnbench.suite.records     read and check metrics.json + config.yaml + predictions.jsonl
    rows        attnbench.suite.rows        sections per (task, dataset, data): trivial-baseline rows + rows of
                                            attention x backbone (plus any setting that varies within one);
                                            degenerate runs flagged; section notes
    statistics  attnbench.suite.row_stats   seed statistics; two-level bootstrap vs the baseline variant, Holm
                                            (the tests themselves: attnbench.suite.stats)
                attnbench.suite.claims      --claims SPEC: a spec's published findings tested on the rows
                attnbench.suite.interpretability   explain.json beside the records: interpretability statistics
    columns     attnbench.suite.columns     every column of the tables, once: what the writers below iterate
    renderers   attnbench.suite.leaderboard_render   Markdown, CSV, JSON, plots
                attnbench.suite.interpretability_render   the interpretability table and plots of a section
    publishing  attnbench.suite.publish     all or nothing: staged beside the targets, moved into place, rolled back
    W&B         attnbench.suite.leaderboard_wandb   the table and plots in a "leaderboard" run (offline by default)
"""

from __future__ import annotations

import os
from pathlib import Path

from attnbench.errors import ConfigError
from attnbench.suite.claims import Claim, evaluate_claims
from attnbench.suite.interpretability import summarize_explain
from attnbench.suite.leaderboard_render import render_all
from attnbench.suite.leaderboard_wandb import check_leaderboard_wandb, log_leaderboard
from attnbench.suite.publish import OUTPUTS, publish
from attnbench.suite.formats import listing
from attnbench.suite.records import Run, provenance, read_runs
from attnbench.suite.row_stats import Reference, compare_to_baseline, summarize
from attnbench.suite.rows import Report, data_notes, flag_degenerate, make_sections
from attnbench.suite.spec import load_spec

__all__ = ["analyze", "build_leaderboard", "check_out", "load_claims", "publish", "read_all", "read_runs"]


def analyze(runs_dirs: list[Path], baseline: str = "additive", samples: int = 1000,
            claims: list[Claim] | None = None) -> Report:
    """The records under runs_dirs in sections and rows, with every statistic and the tests of `claims`; nothing
    written (the leaderboard and the report render this)."""
    if samples < 100:
        raise ConfigError(f"--samples {samples} is too few for a bootstrap p-value: use at least 100 (default 1000)")
    Reference.parse(baseline)  # a malformed --baseline fails before any record is read
    runs, skipped = read_all(runs_dirs)
    if not runs:
        raise ConfigError(f"no completed run records under {listing([str(d) for d in runs_dirs], 4)}"
                          + (f" ({len(skipped)} skipped)" if skipped else "")
                          + ": run `attnbench run ...` or `attnbench sweep ...` first, or pass --runs <folder>")
    sections, warnings = make_sections(runs)
    for section in sections:
        summarize(section.rows)
        summarize_explain(section, warnings)
        flag_degenerate(section)
        compare_to_baseline(section.rows, baseline, samples, warnings)
        data_notes(section)
    report = Report(sections, skipped, warnings, provenance(runs), len(runs))
    report.claims = evaluate_claims(sections, claims or [], samples)
    return report


def load_claims(spec_path: Path) -> list[Claim]:
    """--claims SPEC: the published findings a sweep spec lists (its claims: block), checked."""
    claims = load_spec(spec_path, check_cells=False).claims
    if not claims:
        raise ConfigError(f"--claims {spec_path}: the spec has no claims: block; add one (see "
                          "experiments/ablation_heads_cpu.yaml) or leave out --claims")
    return claims


def read_all(runs_dirs: list[Path]) -> tuple[list[Run], list[str]]:
    """The records of several --runs folders; one folder inside another would count its records twice."""
    resolved = [d.resolve() for d in runs_dirs]
    for i, a in enumerate(resolved):
        for j, b in enumerate(resolved):
            if i != j and (a == b or a in b.parents):
                raise ConfigError(f"--runs {runs_dirs[j]} is inside --runs {runs_dirs[i]} (or the same folder): its "
                                  "records would count twice; pass only the outer folder")
    runs, skipped = [], []
    for folder in runs_dirs:
        found, problems = read_runs(folder)
        runs += found
        skipped += problems
    return runs, skipped


def runs_label(runs_dirs: list[Path]) -> str:
    return ", ".join(f"`{d}`" for d in runs_dirs)


def build_leaderboard(runs_dir: Path | list[Path], out_dir: Path, baseline: str = "additive", samples: int = 1000,
                      title: str = "attnbench leaderboard", wandb: str = "disabled", project: str = "attnbench",
                      entity: str | None = None, claims: Path | None = None) -> Report:
    """The leaderboard of the records under runs_dir (one folder or several), written into out_dir; with wandb
    "offline" or "online" also logged to a W&B "leaderboard" run (attnbench.suite.leaderboard_wandb); with
    `claims` (a sweep spec) its published findings tested."""
    runs_dirs = [runs_dir] if isinstance(runs_dir, Path) else list(runs_dir)
    check_out(out_dir)
    check_leaderboard_wandb(wandb)
    tested = load_claims(claims) if claims is not None else None
    report = analyze(runs_dirs, baseline, samples, tested)
    files = render_all(report, baseline, title, runs_label(runs_dirs), samples)
    report.files = publish(out_dir, files)
    report.wandb_run_id = log_leaderboard(report, files, out_dir, wandb, project, entity, {
        "runs": [str(d) for d in runs_dirs], "baseline": baseline, "samples": samples, "title": title,
        "claims": None if claims is None else str(claims)})
    return report


def check_out(out_dir: Path, outputs: tuple[str, ...] = OUTPUTS, what: str = "leaderboard.md, .csv, .json and plots/") -> None:
    """Refuse an --out that cannot take the leaderboard (or the report: its `outputs`) before any work starts
    (creating nothing)."""
    for path in (out_dir, out_dir / "plots"):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out_dir}: {path} is a file, not a folder: pass --out <a folder> "
                              f"({what} go inside it) or move the file away")
    for path in (out_dir / name for name in outputs):
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
