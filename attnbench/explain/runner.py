"""`attnbench explain <run_dir>`: the faithfulness diagnostics of a completed run's best checkpoint.

    run folder (completed record, config.yaml, best checkpoint) -> the run's data module and model, weights of the
    best checkpoint -> every test example (classification, explain/classification.py) or a fixed sample of them
    (seq2seq, explain/seq2seq.py), length-sorted batches -> explain.json
    (settings, library versions, seconds, every diagnostic's distribution: "pooling" for the pooling attention's
    head mean, "maps" per head and per self-attention layer, "probes" token by token for the validation probes;
    "seq2seq" for an encoder-decoder), explain.npz
    (per-example or per-step values, for plots and the leaderboard), explain_tau.png, explain_entropy.png and,
    for classification, explain_permutation.png

Every file is written atomically and only after the whole computation; then the numbers (flattened, under
explain/...) and the plots go to the run's W&B run (resumed by its id, in the run's W&B mode), and explain.json is
written last: without it the other files are not to be trusted (a failure before leaves the folder without it).
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from attnbench.config import load_saved_config
from attnbench.config.families import FAMILIES
from attnbench.data.batching import collate_classification, collate_seq2seq
from attnbench.errors import ConfigError
from attnbench.explain.classification import Examples, explain_batches, explain_probes, summarize
from attnbench.explain.common import IMPORTANCE_LABELS, IMPORTANCES, Agreement, Settings
from attnbench.explain.seq2seq import Steps, explain_steps, summarize_steps
from attnbench.plotting import png, pyplot
from attnbench.tasks.families import family
from attnbench.tracking.record import versions, write_atomic, write_json
from attnbench.tracking.wandb_setup import check_wandb, log_to_run
from attnbench.training.verify import read_record

EXPLAIN_PACKAGES = ("captum", "scipy")


def explain_run(run_dir: Path, settings: Settings = Settings(), batch_size: int = 64) -> dict[str, Any]:
    """Run the diagnostics on `run_dir` and write its explain files; returns explain.json's content."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    cfg = load_saved_config(run_dir / "config.yaml")
    spec = FAMILIES[cfg.task.family]
    if not (spec.labelled or spec.decodes):
        raise ConfigError(f"{run_dir}: attnbench explain covers classification and seq2seq runs; this is a "
                          f"{cfg.task.family} run")
    checkpoint = _best_checkpoint(run_dir, record)
    check_wandb(cfg)  # an online run whose server cannot be reached: refused before any work
    started = time.perf_counter()
    data = family(cfg).datamodule(cfg)
    data.prepare()
    model = family(cfg).build_model(cfg, data)
    model.load_state_dict(_model_state(checkpoint))
    if settings.probes is None:
        settings = replace(settings, probes=int(cfg.task.probes))
    torch.manual_seed(settings.seed)
    if spec.labelled:
        examples = explain_batches(model, _test_batches(data, batch_size), data.pad_id, settings)
        blocks = _blocks(summarize(examples, settings))
        blocks["probes"] = explain_probes(model, data.probe_examples(settings.probes), data.probe_batch(settings.probes),
                                          data.pad_id, settings) if settings.probes else []
        files = {run_dir / "explain.npz": _arrays(examples), run_dir / "explain_tau.png": _tau_plot(examples, cfg),
                 run_dir / "explain_permutation.png": _permutation_plot(examples, cfg),
                 run_dir / "explain_entropy.png": _entropy_plot(
                     {("pooling", "mean"): Agreement(entropy=examples.entropy), **examples.maps}, cfg)}
    else:
        task = family(cfg).build_task(cfg, data, model)
        steps = explain_steps(model, task, _seq2seq_batches(data, settings, max(1, batch_size // 2)), settings)
        blocks = {"seq2seq": summarize_steps(steps, task, settings)}
        files = {run_dir / "explain.npz": _step_arrays(steps), run_dir / "explain_tau.png": _step_tau_plot(steps, cfg),
                 run_dir / "explain_entropy.png": _entropy_plot(steps.maps, cfg)}
    report = {
        "run_id": record.get("run_id"), "attention": record.get("attention"), "model": record.get("model"),
        "task": record.get("task"), "seed": record.get("seed"), "checkpoint": str(checkpoint.relative_to(run_dir)),
        # fp32 whatever the run trained in (attributions need it): a bf16 run's test metrics may differ by rounding
        "settings": {**asdict(settings), "batch_size": batch_size, "precision": "32-true",
                     "run_precision": record.get("provenance", {}).get("precision"), "split": "test"},
        "versions": versions(EXPLAIN_PACKAGES),
        **blocks,
        "seconds": round(time.perf_counter() - started, 2),
    }
    for path, content in files.items():
        write_atomic(path, content)
    images = {f"explain/{path.stem.removeprefix('explain_')}": path for path in files if path.suffix == ".png"}
    run_id = record.get("provenance", {}).get("wandb_run_id") or cfg.run_id
    log_to_run(cfg, run_dir, run_id, flat_scalars({k: report[k] for k in blocks}, "explain"), images)
    write_json(run_dir / "explain.json", report)  # last: its presence says the others are whole
    return report


def flat_scalars(block: Any, prefix: str) -> dict[str, float]:
    """Every number in a nested explain block, keyed by its path ("explain/pooling/agreement/gradient/tau/mean")."""
    if isinstance(block, dict):
        return {k: v for key, value in block.items() for k, v in flat_scalars(value, f"{prefix}/{key}").items()}
    if isinstance(block, (int, float)) and not isinstance(block, bool):
        return {prefix: float(block)}
    return {}


def _blocks(summary: dict[str, Any]) -> dict[str, Any]:
    """explain.json's "pooling" block (the head mean) and its "maps" block (per head, per self-attention layer)."""
    maps = summary.pop("maps")
    return {"pooling": summary, "maps": maps}


def summary_lines(report: dict[str, Any], run_dir: Path) -> list[str]:
    """What the CLI prints: tau per importance, the uniform-attention accuracy (or metric), the permutation
    sensitivity."""
    if "seq2seq" in report:
        return [*_seq2seq_lines(report["seq2seq"]), f"explain.json written in {run_dir} ({report['seconds']:.0f} s)"]
    block = report["pooling"]
    lines = []
    for name, entry in block["agreement"].items():
        tau = entry["tau"]
        if tau["mean"] is None:
            continue
        lines.append(f"tau(attention, {name}): mean {tau['mean']:.3f} +/- {tau['std'] or 0:.3f}, "
                     f"{100 * (entry['significant_share'] or 0):.0f}% of examples significant (p < 0.05)")
    uniform, permutation = block["uniform"], block["permutation"]["median_tvd"]
    if uniform["accuracy"] is not None:
        lines.append(f"uniform attention: accuracy {100 * uniform['accuracy']:.2f} -> "
                     f"{100 * uniform['uniform_accuracy']:.2f}; median output TVD under permutation "
                     f"{permutation['median']:.4f}")
    for name, block in report.get("maps", {}).items():
        tau, uniform = block["mean"]["agreement"]["gradient"]["tau"], block.get("uniform")
        if tau["mean"] is not None and uniform is not None:
            lines.append(f"{name} (head mean): tau(received attention, gradient) {tau['mean']:.3f}; uniform weights "
                         f"in this layer: accuracy {100 * uniform['accuracy']:.2f} -> "
                         f"{100 * uniform['uniform_accuracy']:.2f}")
    lines.append(f"explain.json written in {run_dir} ({report['seconds']:.0f} s)")
    return lines


def _seq2seq_lines(block: dict[str, Any]) -> list[str]:
    lines = []
    for name, of_map in block["maps"].items():
        entry = of_map["mean"]["agreement"].get("gradient")
        if entry and entry["tau"]["mean"] is not None:
            lines.append(f"{name} (head mean): tau(attention, gradient) per target step {entry['tau']['mean']:.3f} "
                         f"+/- {entry['tau']['std'] or 0:.3f}, {100 * (entry['significant_share'] or 0):.0f}% of "
                         f"{entry['tau']['n']} steps significant (p < 0.05)")
    uniform = block["uniform"]
    for metric, change in uniform["change"].items():
        lines.append(f"uniform cross-attention: {metric} {uniform['metrics'][metric]:.2f} -> "
                     f"{uniform['uniform_metrics'][metric]:.2f} ({change:+.2f}) on {block['examples']} test examples")
    return lines


def _seq2seq_batches(data, settings: Settings, batch_size: int):
    """A fixed random sample of the test split (settings.sample rows, by settings.seed; all when 0 or more than the
    split), in batches of similar source length, longest first; deterministic."""
    test = data.splits["test"]
    chosen = range(len(test))
    if 0 < settings.sample < len(test):
        chosen = sorted(np.random.default_rng(settings.seed).choice(len(test), settings.sample, replace=False).tolist())
    rows = [{"src_ids": list(test[i]["src_ids"]), "tgt_ids": list(test[i]["tgt_ids"]), "id": test[i]["id"]}
            for i in chosen]
    rows.sort(key=lambda r: (-len(r["src_ids"]), r["id"]))
    for start in range(0, len(rows), batch_size):
        yield collate_seq2seq(rows[start:start + batch_size], data.pad_id, data.bos_id, data.eos_id)


def _best_checkpoint(run_dir: Path, record: dict) -> Path:
    relative = record.get("best_checkpoint")
    path = run_dir / relative if relative else None
    if path is None or not path.is_file():
        raise ConfigError(f"{run_dir} has no best checkpoint ({relative or 'none recorded'}): explain needs the "
                          "trained weights; re-run the configuration")
    return path


def _model_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The model's weights in a Lightning checkpoint of a TaskModule (keys model.*, or model._orig_mod.* when
    the model was compiled)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model = {}
    for key, value in state.items():
        if key.startswith("model."):
            model[key.removeprefix("model.").removeprefix("_orig_mod.")] = value
    return model


def _test_batches(data, batch_size: int):
    """The test split in batches of similar length (little padding), longest first; deterministic."""
    test = data.splits["test"]
    rows = sorted(({"input_ids": list(r["input_ids"]), "label": r["label"], "id": r["id"]} for r in test),
                  key=lambda r: (-len(r["input_ids"]), r["id"]))
    for start in range(0, len(rows), batch_size):
        yield collate_classification(rows[start:start + batch_size], data.pad_id)


def _arrays(ex: Examples) -> bytes:
    arrays = {"ids": ex.ids, "length": ex.length, "correct": ex.correct, "uniform_correct": ex.uniform_correct,
              "max_attention": ex.max_attention, "permutation_tvd": ex.permutation_tvd, "entropy": ex.entropy}
    for name in IMPORTANCES:
        arrays.update({f"tau.{name}": ex.tau[name], f"p.{name}": ex.p[name], f"overlap.{name}": ex.overlap[name]})
        for (map_name, key), of_map in ex.maps.items():
            arrays[f"{map_name}.{key}.tau.{name}"] = of_map.tau[name]
    for (map_name, key), of_map in ex.maps.items():
        arrays[f"{map_name}.{key}.entropy"] = of_map.entropy
    for map_name, correct in ex.layer_uniform_correct.items():
        arrays[f"{map_name}.uniform_correct"] = correct
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _step_arrays(steps: Steps) -> bytes:
    arrays: dict[str, Any] = {"source_length": steps.source_length}
    for (name, key), of_map in steps.maps.items():
        arrays.update({f"{name}.{key}.tau.gradient": of_map.tau["gradient"], f"{name}.{key}.p.gradient":
                       of_map.p["gradient"], f"{name}.{key}.entropy": of_map.entropy})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _step_tau_plot(steps: Steps, cfg: DictConfig) -> bytes:
    plt = pyplot()
    names = sorted({name for name, _ in steps.maps})
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        tau = np.asarray(steps.maps[(name, "mean")].tau["gradient"], dtype=float)
        tau = tau[np.isfinite(tau)]
        ax.hist(tau, bins=np.linspace(-1, 1, 41), color="tab:blue")
        ax.axvline(float(np.mean(tau)) if tau.size else 0.0, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"Kendall tau, {name} (head mean) vs gradient x input")
    axes[0][0].set_ylabel("target steps")
    fig.suptitle(f"{_title(cfg)}: cross-attention vs source importance per target step (dashed: mean)")
    return png(fig)


def _entropy_plot(maps: dict[tuple[str, str], Any], cfg: DictConfig) -> bytes:
    """Mean entropy (nats) per map and head: one row per map, one column per head."""
    plt = pyplot()
    names = sorted({name for name, _ in maps})
    heads = sorted({key for _, key in maps if key != "mean"}, key=lambda k: int(k.removeprefix("head")))
    columns = ["mean", *heads]
    grid = np.full((max(1, len(names)), len(columns)), np.nan)
    for r, name in enumerate(names):
        for c, key in enumerate(columns):
            if (name, key) in maps and maps[(name, key)].entropy:
                grid[r, c] = float(np.nanmean(maps[(name, key)].entropy))
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(columns), 1 + 0.5 * max(1, len(names))))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(max(1, len(names))), names or ["(one head: see explain.json)"])
    for (r, c), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean entropy (nats)")
    ax.set_title(f"{_title(cfg)}: attention entropy per map and head")
    return png(fig)


def _title(cfg: DictConfig) -> str:
    return f"{cfg.task.name} {cfg.model.name} {cfg.attention.name} seed {cfg.seed}"


def _tau_plot(ex: Examples, cfg: DictConfig) -> bytes:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(IMPORTANCES), figsize=(4 * len(IMPORTANCES), 3), sharey=True)
    for ax, name in zip(axes, IMPORTANCES):
        tau = np.asarray(ex.tau[name], dtype=float)
        tau = tau[np.isfinite(tau)]
        ax.hist(tau, bins=np.linspace(-1, 1, 41), color="tab:blue")
        ax.axvline(float(np.mean(tau)) if tau.size else 0.0, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"Kendall tau, attention vs {IMPORTANCE_LABELS[name]}")
    axes[0].set_ylabel("test examples")
    fig.suptitle(f"{_title(cfg)}: agreement of attention with importance (dashed: mean)")
    return png(fig)


def _permutation_plot(ex: Examples, cfg: DictConfig) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(ex.max_attention, ex.permutation_tvd, s=4, alpha=0.5)
    ax.set_xlabel("max attention weight")
    ax.set_ylabel("median output TVD under permutation")
    ax.set_title(f"{_title(cfg)}: permutation sensitivity")
    return png(fig)
