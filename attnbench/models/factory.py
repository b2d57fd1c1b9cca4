"""How a backbone gets its attention: a constructor for the configured variant at a given width."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from attnbench.attention import build_attention


def attention_factory(attention: Mapping[str, Any], dim: int, *, projected: bool) -> Callable[[], nn.Module]:
    """A constructor for the configured attention at width `dim`.

    `projected=True` wraps the variant in MultiHead's Q/K/V/O projections (as in every transformer layer),
    with `attention.heads` heads of width `attention.head_dim` (null: dim // heads); `multihead` is always
    projected. Otherwise the bare score function runs.
    """
    name = attention["impl"] if attention["name"] == "custom" else attention["name"]
    own: dict[str, Any] = dict(attention.get("kwargs") or {})
    if attention.get("hidden_dim") is not None:
        own["hidden_dim"] = attention["hidden_dim"]
    dims = {"query_dim": dim, "key_dim": dim, "value_dim": dim, "dropout": attention["dropout"]}
    if name == "multihead" or projected:
        score = attention["score"] if name == "multihead" else name
        return lambda: build_attention(
            "multihead", heads=attention["heads"], score=score, score_kwargs=own,
            head_dim=attention.get("head_dim"), **dims,
        )
    return lambda: build_attention(name, **dims, **own)
