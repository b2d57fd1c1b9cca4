"""Scoring without Lightning: the metric libraries' scores, per-example statistics for resampling, trivial
baselines. The leaderboard reads records through this package alone, so it never imports a training stack."""
