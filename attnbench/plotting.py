"""matplotlib for every figure attnbench writes: the Agg backend (no display on servers, CI or a Slurm node) and
one way to turn a figure into PNG bytes, which the callers write atomically or log."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported on first use: the leaderboard and the CLI start fast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any, dpi: int = 110, tight: bool = True) -> bytes:
    """The figure as PNG bytes (cropped to its content when `tight`); the figure is closed."""
    buffer = io.BytesIO()
    if not tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
    return buffer.getvalue()
