"""Statistics of the leaderboard: seed summaries, bootstrap tests against a baseline, Holm's correction.

Two bootstrap tests of (variant - baseline) of a corpus metric, both paired on test examples:

- `hierarchical_bootstrap` (the one the leaderboard stars): every resample draws test examples with replacement
  (one draw shared by both systems) AND, independently for each system, that system's seeds with replacement.
  Its p-value answers "does the variant differ", with the variance of training (seeds) and of the test sample
  (examples) both in it: a two-stage resampling (Davison & Hinkley 1997, §3.8; Saravanan et al. 2020) over the
  crossed design seeds x examples (Owen 2007, "the pigeonhole bootstrap"), as Bouthillier et al. (2021) ask of
  benchmark comparisons.
- `paired_bootstrap` (examples only, Koehn 2004): the seeds' trained models are held fixed; its p-value answers
  "do these particular models differ on this test set", never "does the variant differ".

A resample's statistic is the mean over its drawn seeds of the metric on its drawn examples, computed from
per-example statistics that add up (`attnbench.metrics.registry.example_statistics`): BLEU from sacreBLEU's summed
n-gram statistics, accuracy and ROUGE as means. p is two-sided: twice the smaller share of resampled differences
at or beyond zero, each share with the +1 correction ((1 + count) / (samples + 1); Davison & Hinkley 1997,
ch. 4), capped at 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnbench.metrics.registry import score_from_sums

MIN_SEEDS = 3  # per side, for the hierarchical test: with fewer, a seed draw has (almost) nothing to vary


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


def bootstrap_differences(variant: list[np.ndarray], baseline: list[np.ndarray], metric: str, samples: int = 1000,
                          seed: int = 0, resample_seeds: bool = True) -> tuple[float, np.ndarray]:
    """(observed difference, (samples,) resampled differences) of mean-over-seeds `metric`, variant - baseline.

    Each list holds one (N, K) statistics array per seed, rows aligned on the same N test examples. The example
    draws come first from the generator, so both tests see the same example resamples for the same `seed`.
    """
    n = variant[0].shape[0]
    if any(a.shape[0] != n for a in [*variant, *baseline]):
        raise ValueError("runs were scored on different numbers of test examples")
    rng = np.random.default_rng(seed)
    # counts[s, i]: how often resample s drew example i; counts @ statistics = the resamples' summed statistics.
    counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(samples)]).astype(float)

    def resampled(arrays: list[np.ndarray]) -> np.ndarray:
        scores = np.stack([score_from_sums(metric, counts @ a, n) for a in arrays], axis=1)  # (samples, seeds)
        k = len(arrays)
        if not resample_seeds:
            return scores.mean(axis=1)
        # weights[s, j]: share of resample s's k seed draws that picked seed j.
        drawn = rng.integers(0, k, size=(samples, k))
        weights = np.stack([np.bincount(row, minlength=k) for row in drawn]) / k
        return np.sum(weights * scores, axis=1)

    def full(arrays: list[np.ndarray]) -> float:
        return float(np.mean([score_from_sums(metric, a.sum(0, keepdims=True), n)[0] for a in arrays]))

    observed = full(variant) - full(baseline)
    return observed, resampled(variant) - resampled(baseline)


def _summary(observed: float, diffs: np.ndarray) -> dict[str, float]:
    samples = len(diffs)
    below = (1 + np.sum(diffs <= 0)) / (samples + 1)
    above = (1 + np.sum(diffs >= 0)) / (samples + 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"delta": observed, "delta_low": float(low), "delta_high": float(high),
            "p": float(min(1.0, 2 * min(below, above)))}


def hierarchical_bootstrap(variant: list[np.ndarray], baseline: list[np.ndarray], metric: str, samples: int = 1000,
                           seed: int = 0) -> dict[str, float]:
    """Two-level bootstrap (examples shared, seeds per system): observed difference, 95% percentile interval,
    two-sided p. Needs MIN_SEEDS seeds on each side: with fewer, seed variance cannot be estimated."""
    if min(len(variant), len(baseline)) < MIN_SEEDS:
        raise ValueError(f"n < {MIN_SEEDS} seeds: seed variance cannot be estimated")
    return _summary(*bootstrap_differences(variant, baseline, metric, samples, seed, resample_seeds=True))


def paired_bootstrap(variant: list[np.ndarray], baseline: list[np.ndarray], metric: str, samples: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over test examples only, every seed's model fixed (Koehn, 2004): observed difference,
    95% percentile interval, two-sided p about these trained models."""
    return _summary(*bootstrap_differences(variant, baseline, metric, samples, seed, resample_seeds=False))


def holm(p_values: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, method="holm")[1]]
