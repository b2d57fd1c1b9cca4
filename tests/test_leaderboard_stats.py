"""The two-level (seeds x examples) bootstrap against the example-only one, on constructed per-example arrays
whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from attnbench.suite.stats import MIN_SEEDS, bootstrap_differences, hierarchical_bootstrap, paired_bootstrap

N = 2000


def shared_difficulty(rates: list[float], n: int = N, seed: int = 0) -> list[np.ndarray]:
    """One correctness array per seed, all thresholding the same per-example difficulty: a seed with a higher
    rate gets right every example a lower one does, so the systems are perfectly paired on examples."""
    u = np.random.default_rng(seed).random(n)
    return [(u < rate).astype(float)[:, None] for rate in rates]


def independent(rates: list[float], seed: int, n: int = N) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random(n) < rate).astype(float)[:, None] for rate in rates]


def test_large_seed_spread_and_small_delta_is_not_significant_but_looks_so_on_examples_only():
    # Seed-to-seed spread of 15 points, variant 2 points better in every seed, on the same examples.
    variant = shared_difficulty([0.62, 0.77, 0.92])
    baseline = shared_difficulty([0.60, 0.75, 0.90])
    hier = hierarchical_bootstrap(variant, baseline, "accuracy", samples=1000)
    examples = paired_bootstrap(variant, baseline, "accuracy", samples=1000)
    assert hier["delta"] == pytest.approx(0.02, abs=0.005) and examples["delta"] == hier["delta"]
    assert hier["p"] > 0.2
    assert examples["p"] < 0.01  # "these trained models differ": true, and no claim about the variant
    assert hier["delta_low"] < 0 < hier["delta_high"]


def test_small_seed_spread_and_large_delta_is_significant():
    variant = independent([0.80, 0.81, 0.82], seed=1)
    baseline = independent([0.70, 0.71, 0.72], seed=2)
    hier = hierarchical_bootstrap(variant, baseline, "accuracy", samples=1000)
    assert hier["delta"] == pytest.approx(0.10, abs=0.02)
    assert hier["p"] < 0.01 and hier["delta_low"] > 0.05
    reverse = hierarchical_bootstrap(baseline, variant, "accuracy", samples=1000)
    assert reverse["delta"] == pytest.approx(-hier["delta"]) and reverse["p"] < 0.01


def test_identical_systems_with_one_seed_give_p_1_and_delta_0():
    same = independent([0.7], seed=3)
    observed, diffs = bootstrap_differences(same, [a.copy() for a in same], "accuracy", samples=300)
    assert observed == 0.0 and np.all(diffs == 0.0)
    # The star's test refuses fewer than MIN_SEEDS seeds; the example-only test gives the same known answer.
    with pytest.raises(ValueError, match=f"n < {MIN_SEEDS} seeds"):
        hierarchical_bootstrap(same, same, "accuracy")
    result = paired_bootstrap(same, same, "accuracy", samples=300)
    assert result["delta"] == 0.0 and result["p"] == 1.0
    three = independent([0.7, 0.7, 0.7], seed=4)
    # Identical multisets of seeds still differ between draws (seeds drawn independently per side), but the
    # distribution is symmetric around 0: p is large.
    assert hierarchical_bootstrap(three, [a.copy() for a in three], "accuracy", samples=500)["p"] > 0.5


def test_resample_means_are_exact_on_deterministic_inputs():
    # Every example of a seed scores the same: example draws change nothing, only seed draws do. Variant seeds
    # score 0, 1/2 and 1; baseline always 1/4: a resample's difference is (mean of 3 drawn seed scores) - 1/4.
    variant = [np.full((50, 1), v) for v in (0.0, 0.5, 1.0)]
    baseline = [np.full((50, 1), 0.25) for _ in range(3)]
    observed, diffs = bootstrap_differences(variant, baseline, "accuracy", samples=4000, seed=5)
    assert observed == pytest.approx(0.25)
    possible = {round(sum(c) / 6 - 0.25, 9) for c in np.ndindex(3, 3, 3)}  # sum of 3 draws of {0, 1, 2} / 2 / 3
    assert {round(float(d), 9) for d in diffs} <= possible
    assert diffs.mean() == pytest.approx(0.25, abs=0.01)
    # All three draws the same seed: probability 1/27 for each seed (differences -1/4, +1/4, +3/4).
    assert np.mean(diffs == -0.25) == pytest.approx(1 / 27, abs=0.01)
    assert np.mean(diffs == 0.75) == pytest.approx(1 / 27, abs=0.01)
    assert np.var(diffs) == pytest.approx((1 / 6) / 3, rel=0.1)  # Var of a seed score (1/6) over 3 draws
    # Examples only: every resample is exactly the observed difference.
    _, fixed = bootstrap_differences(variant, baseline, "accuracy", samples=200, resample_seeds=False)
    assert np.allclose(fixed, 0.25)


def test_resample_means_of_one_seed_are_the_means_of_the_drawn_examples():
    # One seed a side: the seed draw is always that seed, so each resample's difference is the mean of the
    # drawn examples' differences; with values 0..n-1 it lies in [0, n-1] and averages (n-1)/2.
    n = 11
    variant, baseline = [np.arange(n, dtype=float)[:, None]], [np.zeros((n, 1))]
    observed, diffs = bootstrap_differences(variant, baseline, "accuracy", samples=3000, seed=6)
    assert observed == pytest.approx(5.0)
    assert np.all((diffs >= 0) & (diffs <= n - 1))
    assert np.all(np.isclose(diffs * n, np.round(diffs * n)))  # a mean of n integers
    assert diffs.mean() == pytest.approx(5.0, abs=0.1)
    assert np.var(diffs) == pytest.approx(np.var(np.arange(n)) / n, rel=0.1)


def test_the_seed_draw_widens_the_distribution_when_seeds_differ():
    variant = independent([0.60, 0.75, 0.90], seed=7)
    baseline = independent([0.62, 0.74, 0.88], seed=8)
    _, with_seeds = bootstrap_differences(variant, baseline, "accuracy", samples=1000)
    _, examples_only = bootstrap_differences(variant, baseline, "accuracy", samples=1000, resample_seeds=False)
    assert np.std(with_seeds) > 3 * np.std(examples_only)


def test_bootstrap_is_deterministic_under_a_fixed_seed_and_checks_alignment():
    a, b = independent([0.8, 0.78, 0.82], seed=9), independent([0.75, 0.77, 0.7], seed=10)
    assert hierarchical_bootstrap(a, b, "accuracy", seed=3) == hierarchical_bootstrap(a, b, "accuracy", seed=3)
    assert hierarchical_bootstrap(a, b, "accuracy", seed=3) != hierarchical_bootstrap(a, b, "accuracy", seed=4)
    # Both tests see the same example resamples for the same seed.
    _, first = bootstrap_differences(a, b, "accuracy", samples=50, seed=11, resample_seeds=False)
    _, again = bootstrap_differences(a, b, "accuracy", samples=50, seed=11, resample_seeds=False)
    assert np.array_equal(first, again)
    with pytest.raises(ValueError, match="different numbers of test examples"):
        hierarchical_bootstrap(a, independent([0.7, 0.7, 0.7], seed=12, n=N - 1), "accuracy")


def test_bleu_is_resampled_from_summed_statistics():
    from attnbench.metrics.registry import example_statistics

    refs = ["the cat sat on the mat .", "a dog ran away", "hello there friend", "it rains today", "good morning"] * 8
    good = [r for r in refs]
    bad = ["the cat", "a dog", "hello", "it", "good"] * 8
    variant = [example_statistics("bleu", good, refs)] * 3
    baseline = [example_statistics("bleu", bad, refs)] * 3
    result = hierarchical_bootstrap(variant, baseline, "bleu", samples=200)
    assert result["delta"] > 50 and result["p"] < 0.02
