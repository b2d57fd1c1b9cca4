"""How the leaderboard writes a number or a list as text: shared by the rows' notes and every renderer."""

from __future__ import annotations

from attnbench.metrics.registry import percent


def format_metric(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    value = 100 * value if percent(metric) else value  # recorded as a fraction, shown as a percentage
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def fmt_int(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def listing(items: list[str], limit: int = 6) -> str:
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")
