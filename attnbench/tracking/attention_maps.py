"""Attention maps of fixed probe examples: W&B images every validation epoch, PNG + npz in the run folder.

The probes are the same validation examples for every variant and seed, so maps can be compared side by
side. The maps come from the model's own return value (`need_weights=True`), never from hidden state.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch

from attnbench.tracking.record import write_atomic


def heatmap_png(weights: np.ndarray, x_labels: list[str], y_labels: list[str], title: str) -> bytes:
    """A (rows, cols) weight matrix as a labelled heatmap, PNG bytes."""
    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * cols + 1.5), max(1.6, 0.32 * rows + 1.2)), dpi=100)
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(range(cols), x_labels, rotation=90, fontsize=8)
    ax.set_yticks(range(rows), y_labels, fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.02)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _rows(name: str, weights: np.ndarray, tokens: list[str]) -> tuple[np.ndarray, list[str]]:
    """One probe's map as a 2-D matrix: pooling -> heads (+ mean) x tokens; self-attention -> head mean, T x T."""
    heads = weights.shape[0]  # weights: (H, Tq, Tk)
    if name == "pooling":
        matrix = weights[:, 0, :]  # (H, T)
        labels = [f"head {h}" for h in range(heads)] if heads > 1 else ["weight"]
        if heads > 1:
            matrix = np.vstack([matrix, matrix.mean(0, keepdims=True)])
            labels.append("mean")
        return matrix, labels
    return weights.mean(0), tokens  # (T, T)


class AttentionMaps(pl.Callback):
    def __init__(self, probes: list[dict[str, Any]], batch: dict[str, torch.Tensor], run_dir: Path,
                 label_names: list[str], log_images: bool = True) -> None:
        self.probes = probes
        self.label_names = label_names
        self.batch = batch
        self.out_dir = run_dir / "attention"
        self.log_images = log_images

    @torch.no_grad()
    def compute(self, module: pl.LightningModule) -> dict[str, np.ndarray]:
        """Every named map for the probe batch, (P, H, Tq, Tk) float32 arrays."""
        was_training = module.training
        module.eval()
        batch = {k: v.to(module.device) for k, v in self.batch.items()}
        logits, maps = module(batch, need_weights=True)
        module.train(was_training)
        arrays = {name: w.float().cpu().numpy() for name, w in maps.items()}
        arrays["predictions"] = logits.argmax(-1).cpu().numpy()
        return arrays

    def figures(self, arrays: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        figures: dict[str, list[bytes]] = {}
        for name, weights in arrays.items():
            if name == "predictions":
                continue
            for i, probe in enumerate(self.probes):
                n = len(probe["tokens"])
                matrix, labels = _rows(name, weights[i][..., :n, :n] if name != "pooling" else weights[i][..., :n],
                                       probe["tokens"])
                averaged = f" (mean of {weights.shape[1]} heads)" if name != "pooling" and weights.shape[1] > 1 else ""
                gold, pred = self.label_names[probe["label"]], self.label_names[int(arrays["predictions"][i])]
                title = f"{name}{averaged} | probe {probe['id']} | gold {gold}, predicted {pred}"
                figures.setdefault(name, []).append(heatmap_png(matrix, probe["tokens"], labels, title))
        return figures

    def _log(self, trainer: pl.Trainer, figures: dict[str, list[bytes]], prefix: str) -> None:
        if not self.log_images or trainer.logger is None or not hasattr(trainer.logger, "log_image"):
            return
        from PIL import Image

        # One key per probe and map, so W&B shows each as a panel whose slider steps through the epochs.
        for name, pngs in figures.items():
            for probe, png in zip(self.probes, pngs):
                trainer.logger.log_image(
                    key=f"{prefix}/probe{probe['id']}/{name}", images=[Image.open(io.BytesIO(png))],
                    caption=[probe["text"][:200]], step=trainer.global_step,
                )

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.probes or not trainer.is_global_zero:
            return
        self._log(trainer, self.figures(self.compute(module)), "attention")

    def on_test_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Maps of the tested (best) checkpoint are the ones saved with the run."""
        if not self.probes or not trainer.is_global_zero:
            return
        arrays = self.compute(module)
        figures = self.figures(arrays)
        self._log(trainer, figures, "attention_best")
        self.save(arrays, figures)

    def save(self, arrays: dict[str, np.ndarray], figures: dict[str, list[bytes]]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pngs in figures.items():
            for probe, png in zip(self.probes, pngs):
                write_atomic(self.out_dir / f"probe{probe['id']}_{name}.png", png)
        width = max(len(p["tokens"]) for p in self.probes)
        tokens = np.array([p["tokens"] + [""] * (width - len(p["tokens"])) for p in self.probes], dtype=str)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, ids=np.array([p["id"] for p in self.probes]), labels=np.array([p["label"] for p in self.probes]),
            lengths=np.array([len(p["tokens"]) for p in self.probes]), tokens=tokens, **arrays,
        )
        write_atomic(self.out_dir / "attention.npz", buffer.getvalue())

