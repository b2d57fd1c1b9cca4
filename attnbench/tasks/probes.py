"""What a task hands to the attention-map callback: one probe example's maps with their token labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ProbeMaps:
    """Attention maps of one probe example.

    `maps[name]` is (H, Tq, Tk) for the real tokens only; `queries[name]` labels its Tq rows, `keys[name]`
    its Tk columns (source tokens, generated tokens, or a single learned query).
    """

    id: int
    title: str  # e.g. "gold negative, predicted positive" or the generated sentence
    caption: str  # the probe's input text, for W&B
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
