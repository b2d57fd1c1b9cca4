"""`attnbench leaderboard`: run records in, leaderboard.md/.csv/.json and plots out; a pure function of the records.

    records (metrics.json + config.yaml + predictions.jsonl) -> rows per task (attention x backbone, plus any
    setting that varies within one) -> seed statistics -> paired bootstrap vs the baseline, Holm-corrected
    -> tables, plots, provenance

Statistics
- Over seeds: mean, sample standard deviation (n-1) and a 95% Student-t confidence interval of the mean.
- Against the baseline variant (same backbone, same other settings): a paired bootstrap over test examples
  (Koehn, 2004). Each resample draws test examples with replacement; the primary metric of every seed's
  predictions is computed on it (BLEU from sacreBLEU's n-gram statistics, ROUGE and accuracy as means of
  per-example values), averaged over seeds, and the variant's average minus the baseline's is the resampled
  difference. The two-sided p-value is twice the smaller tail of differences at or beyond zero. The p-values
  of the variants of one (task, backbone) are Holm-corrected together (statsmodels).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from attnbench.errors import ConfigError
from attnbench.tasks.metrics import RESAMPLABLE, example_statistics, score_from_sums
from attnbench.tracking.record import write_atomic

REQUIRED = ("run_id", "status", "task", "attention", "model", "seed", "metrics", "cost", "provenance")
# Settings that never make two runs different cells.
HOUSEKEEPING = ("seed", "run_id", "output_dir", "data_dir", "cache_dir", "wandb", "trainer.enable_progress_bar",
                "trainer.num_workers", "trainer.log_every_n_steps")
NOT_REPORTED = ("loss", "ppl")  # secondary columns are the other test metrics
COST_COLUMNS = (("params", "params"), ("train_seconds", "train s"), ("tokens_per_second", "tokens/s"),
                ("peak_memory_mb", "peak MB"))


@dataclass
class Run:
    path: Path
    record: dict
    config: dict
    primary: str

    @property
    def run_id(self) -> str:
        return self.record["run_id"]


@dataclass
class Row:
    task: str
    attention: str
    model: str
    extra: tuple[tuple[str, Any], ...] = ()
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.attention + "".join(f" [{k}={v}]" for k, v in self.extra)

    @property
    def missing(self) -> bool:
        return not self.runs


@dataclass
class Report:
    tasks: dict[str, list[Row]]
    skipped: list[str]
    warnings: list[str]
    provenance: dict[str, Any]
    n_records: int
    files: list[Path] = field(default_factory=list)


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
    config_path = path.parent / "config.yaml"
    try:
        config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    except Exception as err:
        raise ValueError(f"no readable config.yaml beside it ({type(err).__name__})") from None
    try:
        primary = config["task"]["monitor"]
        value = record["metrics"]["test"][primary]
    except (KeyError, TypeError):
        raise ValueError("no test value of the task's primary metric (task.monitor)") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"test {primary} is {value!r}, not a number")
    return Run(path.parent, record, config, primary)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def _is_housekeeping(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in HOUSEKEEPING)


# ----------------------------------------------------------------------------------------------- rows


def make_rows(runs: list[Run]) -> tuple[dict[str, list[Row]], list[str]]:
    """Rows per task: attention x backbone, split further by any setting that varies within one (ablations)."""
    warnings: list[str] = []
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_task[run.record["task"]].append(run)
    # The grid: every attention seen x every backbone seen; a cell without runs in a task is shown as missing.
    pairs = [(a, m) for a in sorted({r.record["attention"] for r in runs}) for m in sorted({r.record["model"] for r in runs})]
    tasks: dict[str, list[Row]] = {}
    for task, task_runs in sorted(by_task.items()):
        groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
        for run in task_runs:
            groups[(run.record["attention"], run.record["model"])].append(run)
        varying = _varying_keys(list(groups.values()))
        rows: dict[tuple, Row] = {}
        for (attention, model), group in groups.items():
            for run in group:
                flat = _flatten(run.config)
                extra = tuple((key, flat.get(key)) for key in varying)
                row = rows.setdefault((attention, model, extra), Row(task, attention, model, extra))
                row.runs.append(run)
        for attention, model in pairs:
            if not any(key[:2] == (attention, model) for key in rows):
                rows[(attention, model, ())] = Row(task, attention, model)
        ordered = sorted(rows.values(), key=lambda r: (r.model, r.attention, [str(v) for _, v in r.extra]))
        for row in ordered:
            seeds = [run.record["seed"] for run in row.runs]
            if len(seeds) != len(set(seeds)):
                warnings.append(f"{task} {row.model} {row.label}: seed repeated ({sorted(seeds)}); "
                                "every record is counted: point --runs at one suite")
        tasks[task] = ordered
    return tasks, warnings


def _varying_keys(groups: list[list[Run]]) -> list[str]:
    """Config keys (outside housekeeping) whose value differs between runs of the same attention and backbone."""
    keys: set[str] = set()
    for group in groups:
        flats = [_flatten(run.config) for run in group]
        for key in set().union(*flats):
            if not _is_housekeeping(key) and len({json.dumps(f.get(key), default=str) for f in flats}) > 1:
                keys.add(key)
    return sorted(keys)


# ----------------------------------------------------------------------------------------------- statistics


def seed_statistics(values: list[float]) -> dict[str, Any]:
    """Mean, sample std (n-1) and the 95% Student-t interval of the mean; std and CI need n >= 2."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def load_statistics(run: Run, metric: str) -> tuple[list, np.ndarray]:
    """(example ids, (N, K) per-example statistics of `metric`) from the run's predictions.jsonl."""
    path = run.path / "predictions.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} missing")
    ids, predictions, golds = [], [], []
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                ids.append(row["id"])
                predictions.append(row["prediction"])
                golds.append(row["gold"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path} line {line_no} is not a prediction row (id, prediction, gold)") from None
    if not ids:
        raise ValueError(f"{path} is empty")
    statistics = example_statistics(metric, predictions, golds)
    recorded = run.record["metrics"]["test"][metric]
    rescored = float(score_from_sums(metric, statistics.sum(0, keepdims=True), len(ids))[0])
    if not math.isclose(rescored, recorded, rel_tol=1e-3, abs_tol=1e-3):
        raise ValueError(f"{path} gives test {metric} {rescored:.4f} but metrics.json says {recorded:.4f}")
    return ids, statistics


def paired_bootstrap(variant: list[np.ndarray], baseline: list[np.ndarray], metric: str, samples: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of (mean over variant seeds) - (mean over baseline seeds) of `metric`.

    Each list holds one (N, K) statistics array per seed, rows aligned on the same N test examples.
    Returns the observed difference, its 95% percentile interval and the two-sided p-value.
    """
    n = variant[0].shape[0]
    if any(a.shape[0] != n for a in [*variant, *baseline]):
        raise ValueError("runs were scored on different numbers of test examples")
    rng = np.random.default_rng(seed)
    # counts[s, i]: how often resample s drew example i; counts @ statistics = the resamples' summed statistics.
    counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(samples)]).astype(float)

    def mean_score(arrays: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        return np.mean([score_from_sums(metric, weights @ a, n) for a in arrays], axis=0)

    everything = np.ones((1, n))
    observed = float(mean_score(variant, everything)[0] - mean_score(baseline, everything)[0])
    diffs = mean_score(variant, counts) - mean_score(baseline, counts)
    below = (1 + np.sum(diffs <= 0)) / (samples + 1)
    above = (1 + np.sum(diffs >= 0)) / (samples + 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"delta": observed, "delta_low": float(low), "delta_high": float(high),
            "p": float(min(1.0, 2 * min(below, above)))}


def holm(p_values: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, method="holm")[1]]


def compare_to_baseline(rows: list[Row], baseline: str, samples: int, problems: list[str]) -> None:
    """Fill row.stats['test'] for each row against the baseline row of its backbone and settings."""
    cache: dict[str, tuple[list, np.ndarray]] = {}

    def stats_of(row: Row) -> list[tuple[list, np.ndarray]]:
        out = []
        for run in sorted(row.runs, key=lambda r: r.record["seed"]):
            if run.run_id not in cache:
                cache[run.run_id] = load_statistics(run, run.primary)
            out.append(cache[run.run_id])
        return out

    families: dict[tuple, list[tuple[Row, dict]]] = defaultdict(list)
    for row in rows:
        if row.missing or row.attention == baseline:
            continue
        base = next((r for r in rows if r.attention == baseline and r.model == row.model and r.extra == row.extra
                     and not r.missing), None)
        if base is None:
            row.stats["test_note"] = f"no {baseline} baseline"
            continue
        metric = row.runs[0].primary
        if metric not in RESAMPLABLE:
            row.stats["test_note"] = f"{metric} is not resampled"
            continue
        fingerprints = {r.record["provenance"].get("dataset_fingerprint") for r in [*row.runs, *base.runs]}
        if len(fingerprints) > 1:
            row.stats["test_note"] = "different test data than the baseline"
            continue
        try:
            ours, theirs = stats_of(row), stats_of(base)
            order = ours[0][0]
            if any(ids != order for ids, _ in [*ours, *theirs]):
                raise ValueError("predictions list different test examples than the baseline's")
            result = paired_bootstrap([a for _, a in ours], [a for _, a in theirs], metric, samples=samples)
        except ValueError as err:
            row.stats["test_note"] = "no test: see skipped"
            problems.append(f"{row.task} {row.model} {row.label}: significance test skipped: {err}")
            continue
        families[(row.model, row.extra)].append((row, result))
    for family in families.values():
        adjusted = holm([result["p"] for _, result in family])
        for (row, result), p_holm in zip(family, adjusted):
            row.stats["test"] = {**result, "p_holm": p_holm, "baseline": baseline}


def summarize(rows: list[Row]) -> None:
    for row in rows:
        if row.missing:
            continue
        primary = row.runs[0].primary
        test_metrics = sorted({k for run in row.runs for k in run.record["metrics"]["test"] if k not in NOT_REPORTED})
        row.stats["primary"] = primary
        row.stats["metrics"] = {
            key: seed_statistics([run.record["metrics"]["test"][key] for run in row.runs
                                  if isinstance(run.record["metrics"]["test"].get(key), (int, float))])
            for key in test_metrics
        }
        row.stats["cost"] = {
            key: _mean([run.record["cost"].get(key) for run in row.runs]) for key, _ in COST_COLUMNS
        }
        row.stats["seeds"] = sorted(run.record["seed"] for run in row.runs)


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return float(np.mean(numbers)) if numbers else None


# ----------------------------------------------------------------------------------------------- the report


def build_leaderboard(runs_dir: Path, out_dir: Path, baseline: str = "additive", samples: int = 1000,
                      title: str = "attnbench leaderboard") -> Report:
    if samples < 100:
        raise ConfigError(f"--samples {samples} is too few for a bootstrap p-value: use at least 100 (default 1000)")
    runs, skipped = read_runs(runs_dir)
    if not runs:
        raise ConfigError(f"no completed run records under {runs_dir}" + (f" ({len(skipped)} skipped)" if skipped else "")
                          + ": run `attnbench run ...` or `attnbench sweep ...` first, or pass --runs <folder>")
    tasks, warnings = make_rows(runs)
    for rows in tasks.values():
        summarize(rows)
        compare_to_baseline(rows, baseline, samples, skipped)
    report = Report(tasks, skipped, warnings, provenance(runs), len(runs))
    files = {
        "leaderboard.md": render_markdown(report, baseline, title, runs_dir),
        "leaderboard.csv": render_csv(report),
        "leaderboard.json": json.dumps(to_json(report, baseline), indent=2) + "\n",
    }
    files.update(render_plots(report))
    # Everything is rendered before anything is written: a failure leaves the previous leaderboard intact.
    for name, content in files.items():
        write_atomic(out_dir / name, content)
    report.files = [out_dir / name for name in files]
    return report


def provenance(runs: list[Run]) -> dict[str, Any]:
    def values(key: str) -> list[str]:
        return sorted({str(run.record["provenance"].get(key)) for run in runs})

    signatures: dict[str, set[str]] = defaultdict(set)
    fingerprints: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for metric, signature in (run.record["provenance"].get("metric_signatures") or {}).items():
            signatures[metric].add(signature)
        fingerprints[f"{run.record['task']}/{run.record.get('dataset')}"].add(
            str(run.record["provenance"].get("dataset_fingerprint")))
    return {
        "git_sha": values("git_sha"),
        "git_dirty": sorted({bool(run.record["provenance"].get("git_dirty")) for run in runs}),
        "hardware": values("device"),
        "precision": values("precision"),
        "metric_signatures": {k: sorted(v) for k, v in sorted(signatures.items())},
        "dataset_fingerprints": {k: sorted(v) for k, v in sorted(fingerprints.items())},
        "versions": sorted({json.dumps(run.record["provenance"].get("versions"), sort_keys=True) for run in runs}),
        "finished": [min(values("finished_at")), max(values("finished_at"))],
    }


PERCENT = ("accuracy", "f1")  # recorded as fractions (torchmetrics), shown as percentages


def _metric(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    value = 100 * value if metric in PERCENT else value
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _fmt_int(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _best(rows: list[Row]) -> Row | None:
    present = [r for r in rows if not r.missing]
    return max(present, key=lambda r: r.stats["metrics"][r.stats["primary"]]["mean"]) if present else None


def render_markdown(report: Report, baseline: str, title: str, runs_dir: Path) -> str:
    lines = [f"# {title}", "",
             f"Generated by `attnbench leaderboard` from {report.n_records} run records in `{runs_dir}`; "
             "nothing here is edited by hand.",
             f"Primary metric: the task's monitored test metric, mean ± sample std over seeds (n), 95% Student-t "
             f"interval of the mean. Δ: difference to `{baseline}` on the same backbone, paired bootstrap over test "
             "examples (seeds averaged), two-sided p Holm-corrected across the variants of a backbone; * p < 0.05. "
             "**Bold**: best mean of the task. Accuracy and F1 in %, times in seconds, memory in MiB.", ""]
    for task, rows in report.tasks.items():
        present = [r for r in rows if not r.missing]
        primary = present[0].stats["primary"]
        secondary = sorted({k for r in present for k in r.stats["metrics"]} - {primary})
        best = _best(rows)
        lines += [f"## {task}", "",
                  "| attention | backbone | " + f"{primary} | n | 95% CI | Δ {primary} vs {baseline} | p (Holm) | "
                  + "".join(f"{m} | " for m in secondary) + " | ".join(label for _, label in COST_COLUMNS) + " |",
                  "|" + "---|" * (7 + len(secondary) + len(COST_COLUMNS))]
        for row in rows:
            if row.missing:
                cells = [row.label, row.model, "missing", "0"] + [""] * (3 + len(secondary) + len(COST_COLUMNS))
                lines.append("| " + " | ".join(cells) + " |")
                continue
            m = row.stats["metrics"][primary]
            value = _metric(primary, m["mean"]) + (f" ± {_metric(primary, m['std'])}" if m["std"] is not None else "")
            if row is best:
                value = f"**{value}**"
            ci = (f"[{_metric(primary, m['ci_low'])}, {_metric(primary, m['ci_high'])}]" if m["ci_low"] is not None
                  else "n/a (n=1)")
            test = row.stats.get("test")
            if test:
                delta = " ".join([_metric(primary, test["delta"], signed=True),
                                  f"[{_metric(primary, test['delta_low'], signed=True)},",
                                  f"{_metric(primary, test['delta_high'], signed=True)}]"])
                p = f"{test['p_holm']:.3f}" + ("*" if test["p_holm"] < 0.05 else "")
            else:
                delta, p = ("baseline", "") if row.attention == baseline else (row.stats.get("test_note", ""), "")
            cells = [row.label, row.model, value, str(m["n"]), ci, delta, p]
            cells += [_metric(k, row.stats["metrics"][k]["mean"]) if k in row.stats["metrics"] else "" for k in secondary]
            cost = row.stats["cost"]
            cells += [_fmt_int(cost["params"]), _fmt(cost["train_seconds"]), _fmt_int(cost["tokens_per_second"]),
                      _fmt_int(cost["peak_memory_mb"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"![{task}: quality vs training time](plots/{task}-quality-vs-time.png)",
                  f"![{task}: {primary} per variant](plots/{task}-{primary}.png)", ""]
    prov = report.provenance
    lines += ["## Provenance", "",
              f"- git SHAs: {', '.join(f'`{s}`' for s in prov['git_sha'])}"
              + (" (some runs from a modified tree)" if True in prov["git_dirty"] else ""),
              f"- hardware: {'; '.join(prov['hardware'])}; precision: {', '.join(prov['precision'])}",
              f"- runs finished between {prov['finished'][0]} and {prov['finished'][1]}"]
    for metric, signatures in prov["metric_signatures"].items():
        lines.append(f"- {metric}: {'; '.join(f'`{s}`' for s in signatures)}")
    for dataset, fingerprints in prov["dataset_fingerprints"].items():
        lines.append(f"- data {dataset}: fingerprint {', '.join(f'`{f}`' for f in fingerprints)}")
    if report.warnings or report.skipped:
        lines += ["", "## Warnings and skipped records", ""]
        lines += [f"- {w}" for w in report.warnings] + [f"- skipped {s}" for s in report.skipped]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("task", "attention", "backbone", "settings", "metric", "n", "mean", "std", "ci_low", "ci_high",
              "baseline", "delta", "delta_low", "delta_high", "p", "p_holm", "params", "train_seconds",
              "tokens_per_second", "peak_memory_mb", "seeds", "run_ids")


def render_csv(report: Report) -> str:
    """One line per (task, row, test metric); missing rows have n=0 and empty values."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for task, rows in report.tasks.items():
        for row in rows:
            base = {"task": task, "attention": row.attention, "backbone": row.model,
                    "settings": ";".join(f"{k}={v}" for k, v in row.extra)}
            if row.missing:
                writer.writerow({**base, "metric": "", "n": 0})
                continue
            for metric, s in row.stats["metrics"].items():
                test = row.stats.get("test", {}) if metric == row.stats["primary"] else {}
                writer.writerow({
                    **base, "metric": metric, **{k: s[k] for k in ("n", "mean", "std", "ci_low", "ci_high")},
                    **{k: test.get(k) for k in ("baseline", "delta", "delta_low", "delta_high", "p", "p_holm")},
                    **row.stats["cost"], "seeds": " ".join(map(str, row.stats["seeds"])),
                    "run_ids": " ".join(sorted(run.run_id for run in row.runs)),
                })
    return buffer.getvalue()


def to_json(report: Report, baseline: str) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "tasks": {
            task: [{"attention": r.attention, "backbone": r.model, "settings": dict(r.extra), "missing": r.missing,
                    **{k: v for k, v in r.stats.items()}, "run_ids": sorted(run.run_id for run in r.runs)}
                   for r in rows]
            for task, rows in report.tasks.items()
        },
        "provenance": report.provenance,
        "warnings": report.warnings,
        "skipped": report.skipped,
    }


def render_plots(report: Report) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, bytes] = {}
    for task, rows in report.tasks.items():
        present = [r for r in rows if not r.missing]
        primary = present[0].stats["primary"]
        models = sorted({r.model for r in present})
        markers = dict(zip(models, "os^Dv<>"))

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for row in present:
            m = row.stats["metrics"][primary]
            x = row.stats["cost"]["train_seconds"] or 0.0
            ax.errorbar(x, m["mean"], yerr=m["std"] or 0.0, fmt=markers.get(row.model, "o"), capsize=3,
                        label=f"{row.label} ({row.model})")
            ax.annotate(row.label, (x, m["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("training time per run (s)")
        ax.set_ylabel(f"test {primary} (mean ± std over seeds)")
        ax.set_title(f"{task}: quality vs training time")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
        files[f"plots/{task}-quality-vs-time.png"] = _png(fig)

        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4.5))
        labels = [f"{r.label}\n{r.model}" for r in rows]
        means = [r.stats["metrics"][primary]["mean"] if not r.missing else 0.0 for r in rows]
        errors = [(r.stats["metrics"][primary]["std"] or 0.0) if not r.missing else 0.0 for r in rows]
        colors = [f"C{models.index(r.model)}" if r.model in models else "lightgrey" for r in rows]
        bars = ax.bar(range(len(rows)), means, yerr=errors, capsize=3, color=colors)
        for bar, row in zip(bars, rows):
            if row.missing:  # missing is drawn as a label, never as a zero-height result
                bar.set_visible(False)
                ax.text(bar.get_x() + bar.get_width() / 2, 0, "missing", rotation=90, ha="center", va="bottom",
                        fontsize=7, color="grey")
        ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(f"test {primary} (mean ± std over seeds)")
        ax.set_title(f"{task}: {primary} per attention variant and backbone")
        ax.grid(axis="y", alpha=0.3)
        files[f"plots/{task}-{primary}.png"] = _png(fig)
    return files


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()
