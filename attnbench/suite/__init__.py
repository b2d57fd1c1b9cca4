"""Suites of runs: sweeps over grids, trivial baselines, and the leaderboard built from run records."""
