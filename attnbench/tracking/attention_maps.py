"""Attention maps of fixed probe examples: W&B images every validation epoch, PNG + npz in the run folder.

The probes are the same validation examples for every variant and seed, so maps can be compared side by
side. The task module computes them from the model's own return value (`need_weights=True`), never from
hidden state: `module.probe_maps(batch, examples) -> list[ProbeMaps]`, where `examples` are the data
module's probe examples (their tokens and texts) and `batch` the same examples collated.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from attnbench.plotting import png, pyplot
from attnbench.tasks.probes import ProbeMaps
from attnbench.tracking.record import write_atomic


def heatmap_png(weights: np.ndarray, queries: list[str], keys: list[str], title: str) -> bytes:
    """(H, Tq, Tk) weights as labelled heatmaps, PNG bytes.

    One panel when H == 1; otherwise the mean of the heads, labelled with every token, then one panel per head on
    the same grid and colour scale, titled but not labelled again (the labels are what makes a figure slow to
    render: an 8-head map with every panel labelled took ~9 s). A single query (attention pooling) is drawn as
    one row per head instead, which reads better than H one-row panels.
    """
    heads, rows, cols = weights.shape
    if rows == 1:
        matrix = weights[:, 0, :]  # (H, Tk)
        labels = [f"head {h}" for h in range(heads)] if heads > 1 else queries
        if heads > 1:
            matrix, labels = np.vstack([matrix, matrix.mean(0, keepdims=True)]), labels + ["mean"]
        panels = [(matrix, labels, title)]
    elif heads == 1:
        panels = [(weights[0], queries, title)]
    else:
        panels = [(weights.mean(0), queries, f"{title} | mean of {heads} heads")]
        panels += [(weights[h], None, f"head {h}") for h in range(heads)]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    # ~0.14 in a token: room for a 7-point label.
    cell_w, cell_h = max(4.0, 0.14 * cols + 1.8), max(1.6, 0.14 * len(panels[0][0]) + 1.4)
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(cell_w * ncols, cell_h * nrows), dpi=90, squeeze=False)
    vmax = max(max(float(matrix.max()) for matrix, _, _ in panels), 1e-6)
    for ax, (matrix, row_labels, panel_title) in zip(axes.flat, panels):
        image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0.0, vmax=vmax)
        if row_labels is None:
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_xticks(range(cols), keys, rotation=90, fontsize=7)
            ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
        ax.set_title(panel_title, fontsize=8)
    fig.colorbar(image, ax=list(axes.flat), fraction=0.02, pad=0.01)  # one scale for every panel
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return png(fig, dpi=90)


def figures(probes: list[ProbeMaps]) -> dict[tuple[int, str], bytes]:
    return {
        (p.id, name): heatmap_png(w, p.queries[name], p.keys[name], f"{name} | probe {p.id} | {p.title}")
        for p in probes
        for name, w in p.maps.items()
    }


def npz_bytes(probes: list[ProbeMaps]) -> bytes:
    """Raw weights and their token labels, one entry per probe and map: `probe<id>.<map>` (H, Tq, Tk)."""
    arrays: dict[str, np.ndarray] = {"ids": np.array([p.id for p in probes])}
    for p in probes:
        for name, weights in p.maps.items():
            arrays[f"probe{p.id}.{name}"] = weights.astype(np.float32)
            arrays[f"probe{p.id}.{name}.queries"] = np.array(p.queries[name], dtype=str)
            arrays[f"probe{p.id}.{name}.keys"] = np.array(p.keys[name], dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


class AttentionMaps(pl.Callback):
    def __init__(self, examples: list[dict], batch: dict[str, torch.Tensor], run_dir: Path,
                 log_images: bool = True) -> None:
        self.examples = examples
        self.batch = batch
        self.out_dir = run_dir / "attention"
        self.log_images = log_images

    @torch.no_grad()
    def compute(self, module: pl.LightningModule) -> list[ProbeMaps]:
        was_training = module.training
        module.eval()
        try:
            return module.probe_maps({k: v.to(module.device) for k, v in self.batch.items()}, self.examples)
        finally:
            module.train(was_training)

    def _logs_images(self, trainer: pl.Trainer) -> bool:
        return self.log_images and trainer.logger is not None and hasattr(trainer.logger, "log_image")

    def _log(self, trainer: pl.Trainer, probes: list[ProbeMaps], pngs: dict[tuple[int, str], bytes], prefix: str) -> None:
        from PIL import Image

        captions = {p.id: p.caption[:300] for p in probes}
        # One key per probe and map, so W&B shows each as a panel whose slider steps through the epochs.
        for (probe_id, name), image in pngs.items():
            trainer.logger.log_image(key=f"{prefix}/probe{probe_id}/{name}", images=[Image.open(io.BytesIO(image))],
                                     caption=[captions[probe_id]], step=trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # Figures are rendered only to be logged (rendering an 8-head map takes seconds); this runs inside the
        # validation window, which the cost clock keeps off the training time.
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking  # not the final validate()
        if not fitting or not self.examples or not trainer.is_global_zero or not self._logs_images(trainer):
            return
        probes = self.compute(module)
        self._log(trainer, probes, figures(probes), "attention")

    def on_test_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Maps of the tested (best) checkpoint are the ones saved with the run (PNG and npz, always)."""
        if not self.examples or not trainer.is_global_zero:
            return
        probes = self.compute(module)
        pngs = figures(probes)
        if self._logs_images(trainer):
            self._log(trainer, probes, pngs, "attention_best")
        for (probe_id, name), image in pngs.items():
            write_atomic(self.out_dir / f"probe{probe_id}_{name}.png", image)
        write_atomic(self.out_dir / "attention.npz", npz_bytes(probes))
