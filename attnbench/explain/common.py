"""What every explain diagnostic shares: agreement of an attention map with an importance (Kendall tau from SciPy,
its p, top-k overlap), entropy, and the summaries explain.json gives of per-example values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMPORTANCES = ("gradient", "loo", "ig")
IMPORTANCE_LABELS = {"gradient": "gradient x input", "loo": "leave-one-out", "ig": "integrated gradients"}
SIGNIFICANCE = 0.05  # a tau whose p is below this counts as significant (Jain & Wallace 2019)


@dataclass(frozen=True)
class Settings:
    ig_steps: int = 20  # Integrated Gradients: points on the path from the [PAD] baseline
    permutations: int = 100  # random permutations of the attention per example
    fractions: tuple[float, ...] = (0.1, 0.2, 0.5)  # ERASER: share of the tokens kept or removed
    top_k: int = 5  # top-k overlap (k = min(top_k, n))
    seed: int = 0  # permutations and the random ranking
    chunk: int = 512  # sequences per forward pass when deleting tokens
    sample: int = 500  # seq2seq: test examples explained, a fixed random sample (by seed); 0 = all
    probes: int | None = None  # classification: validation probes explained token by token; None: the run's
    # task.probes (the examples its attention maps show)


@dataclass
class Agreement:
    """One attention map (a head, or the head mean) against every importance, per example."""

    tau: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    p: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    overlap: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    entropy: list[float] = field(default_factory=list)

    def add(self, scores: np.ndarray, importance: dict[str, np.ndarray], entropy: float, top_k: int) -> None:
        """scores (n,) of one example's real tokens against each importance (n,)."""
        self.entropy.append(entropy)
        for name, imp in importance.items():
            for values, value in zip((self.tau[name], self.p[name], self.overlap[name]), agree(scores, imp, top_k)):
                values.append(value)


def agree(scores: np.ndarray, importance: np.ndarray, top_k: int) -> tuple[float, float, float]:
    """(Kendall tau, its p, top-k overlap) of two scorings of one example's n real tokens; NaN when n < 2."""
    n = scores.size
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    from scipy import stats  # a second to import; the leaderboard reads this module for its labels only

    tau, p = stats.kendalltau(scores, importance)
    k = min(top_k, n)
    return float(tau), float(p), len(set(np.argsort(-scores)[:k]) & set(np.argsort(-importance)[:k])) / k


def describe(values: list[float]) -> dict[str, Any]:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "std": None, "median": None}
    return {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else None,
            "median": float(np.median(x))}


def agreement_summary(tau: dict[str, list[float]], p: dict[str, list[float]], overlap: dict[str, list[float]],
                      top_k: int) -> dict[str, Any]:
    """Per importance: tau's distribution, the share of significant taus, the top-k overlap's distribution."""
    block = {}
    for name in (n for n in IMPORTANCES if n in tau and tau[n]):
        values = np.asarray(p[name], dtype=np.float64)
        finite = np.isfinite(values)
        block[name] = {"tau": describe(tau[name]),
                       "significant_share": float((values[finite] < SIGNIFICANCE).mean()) if finite.any() else None,
                       f"top{top_k}_overlap": describe(overlap[name])}
    return block
