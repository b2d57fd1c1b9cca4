"""`attnbench explain <run_dir>`: the faithfulness diagnostics of a completed run's best checkpoint.

    run folder (completed record, config.yaml, best checkpoint) -> the run's data module and model, weights of the
    best checkpoint -> every test example, length-sorted batches (explain/classification.py) -> explain.json
    (settings, library versions, seconds, every diagnostic's distribution: "pooling" for the pooling attention's
    head mean, "maps" per head and per self-attention layer), explain.npz (per-example values, for
    plots and the leaderboard), explain_tau.png and explain_permutation.png

Every file is written atomically and only after the whole computation, so a failure leaves the folder as it was.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from attnbench.config import load_saved_config
from attnbench.config.families import FAMILIES
from attnbench.data.batching import collate_classification
from attnbench.errors import ConfigError
from attnbench.explain.classification import IMPORTANCES, Examples, Settings, explain_batches, summarize
from attnbench.tasks.families import family
from attnbench.tracking.record import versions, write_atomic, write_json
from attnbench.training.verify import read_record

EXPLAIN_PACKAGES = ("captum", "scipy")


def explain_run(run_dir: Path, settings: Settings = Settings(), batch_size: int = 64) -> dict[str, Any]:
    """Run the diagnostics on `run_dir` and write its explain files; returns explain.json's content."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    cfg = load_saved_config(run_dir / "config.yaml")
    if not FAMILIES[cfg.task.family].labelled:
        raise ConfigError(f"{run_dir}: attnbench explain covers classification runs so far; this is a "
                          f"{cfg.task.family} run")
    checkpoint = _best_checkpoint(run_dir, record)
    started = time.perf_counter()
    data = family(cfg).datamodule(cfg)
    data.prepare()
    model = family(cfg).build_model(cfg, data)
    model.load_state_dict(_model_state(checkpoint))
    torch.manual_seed(settings.seed)
    examples = explain_batches(model, _test_batches(data, batch_size), data.pad_id, settings)
    report = {
        "run_id": record.get("run_id"), "attention": record.get("attention"), "model": record.get("model"),
        "task": record.get("task"), "seed": record.get("seed"), "checkpoint": str(checkpoint.relative_to(run_dir)),
        "settings": {**asdict(settings), "batch_size": batch_size, "precision": "32-true", "split": "test"},
        "versions": versions(EXPLAIN_PACKAGES),
        **_blocks(summarize(examples, settings)),
        "seconds": round(time.perf_counter() - started, 2),
    }
    files = {run_dir / "explain.npz": _arrays(examples), run_dir / "explain_tau.png": _tau_plot(examples, cfg),
             run_dir / "explain_permutation.png": _permutation_plot(examples, cfg)}
    for path, content in files.items():
        write_atomic(path, content)
    write_json(run_dir / "explain.json", report)  # last: its presence says the others are whole
    return report


def _blocks(summary: dict[str, Any]) -> dict[str, Any]:
    """explain.json's "pooling" block (the head mean) and its "maps" block (per head, per self-attention layer)."""
    maps = summary.pop("maps")
    return {"pooling": summary, "maps": maps}


def summary_lines(report: dict[str, Any], run_dir: Path) -> list[str]:
    """What the CLI prints: tau per importance, the uniform-attention accuracy, the permutation sensitivity."""
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


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return buffer.getvalue()


def _title(cfg: DictConfig) -> str:
    return f"{cfg.task.name} {cfg.model.name} {cfg.attention.name} seed {cfg.seed}"


def _tau_plot(ex: Examples, cfg: DictConfig) -> bytes:
    plt = _figure()
    fig, axes = plt.subplots(1, len(IMPORTANCES), figsize=(4 * len(IMPORTANCES), 3), sharey=True)
    labels = {"gradient": "gradient x input", "loo": "leave-one-out", "ig": "integrated gradients"}
    for ax, name in zip(axes, IMPORTANCES):
        tau = np.asarray(ex.tau[name], dtype=float)
        tau = tau[np.isfinite(tau)]
        ax.hist(tau, bins=np.linspace(-1, 1, 41), color="tab:blue")
        ax.axvline(float(np.mean(tau)) if tau.size else 0.0, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"Kendall tau, attention vs {labels[name]}")
    axes[0].set_ylabel("test examples")
    fig.suptitle(f"{_title(cfg)}: agreement of attention with importance (dashed: mean)")
    return _png(fig)


def _permutation_plot(ex: Examples, cfg: DictConfig) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(ex.max_attention, ex.permutation_tvd, s=4, alpha=0.5)
    ax.set_xlabel("max attention weight")
    ax.set_ylabel("median output TVD under permutation")
    ax.set_title(f"{_title(cfg)}: permutation sensitivity")
    return _png(fig)
