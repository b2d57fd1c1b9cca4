"""Attention variants and their registry.

Every variant is an `nn.Module` built as `Cls(query_dim, key_dim, value_dim, *, dropout=0.0, **kwargs)`
with an `out_dim` attribute and
`forward(query, key, value, mask=None, need_weights=False, causal=False, prepared=False) -> (output, weights | None)`.

Incremental decoding: every built-in also has `prepare(key, value) -> (key', value')`, the query-independent
work on keys and values (additive: W_k k; multihead: the K/V projections), so that
`forward(q, *prepare(k, v), mask, need_weights, causal, prepared=True) == forward(q, k, v, mask, need_weights, causal)`.
Prepared tensors keep batch at dim 0 and time at dim 1 and are computed position by position, so a decoder
caches them once per source sequence (cross-attention) or grows them with `torch.cat(dim=1)` (self-attention)
and reorders beams with `index_select(0, ...)`. `build_attention` always returns the full interface: a custom
variant without `prepare` (or without the `prepared`/`causal` keywords) is extended by `full_interface`, whose
`prepare` returns the raw keys and values, so callers pass every keyword and never ask what a variant supports.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads, Dh head width.
query (B, Tq, Dq), key (B, Tk, Dk), value (B, Tk, Dv), mask bool (B, 1|Tq, Tk) True = keep,
output (B, Tq, out_dim), weights (B, H, Tq, Tk).

A variant is named three ways: a registry name (`ATTENTION`), a plugin registered under the entry-point
group `attnbench.attention`, or a `package.module:ClassName` string (`attention=custom attention.impl=...`).
"""

from attnbench.attention.additive import Additive
from attnbench.attention.dot import Dot
from attnbench.attention.general import General
from attnbench.attention.interface import full_interface
from attnbench.attention.multihead import MultiHead
from attnbench.attention.registry import (
    ATTENTION,
    ENTRY_POINT_GROUP,
    available_attention,
    build_attention,
    resolve_attention,
)
from attnbench.attention.scaled_dot import ScaledDot

ATTENTION["multihead"] = MultiHead  # last: it wraps any registered variant (attention.inner)

__all__ = [
    "ATTENTION", "ENTRY_POINT_GROUP", "Additive", "Dot", "General", "MultiHead", "ScaledDot", "available_attention",
    "build_attention", "full_interface", "resolve_attention",
]
