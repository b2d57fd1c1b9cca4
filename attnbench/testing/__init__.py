"""The attention contract as one call, public so researchers can run it on their own variants.

    from attnbench.testing import check_attention
    check_attention(MyAttention)                    # raises AssertionError naming the first broken rule
    check_attention(MyAttention, query_dim=12, key_dim=20, value_dim=8, temperature=0.5)

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from attnbench.testing.contract import Contract, no_global_side_effects
from attnbench.testing.decoding import (
    check_incremental_decoding, check_prepare_is_positionwise, check_prepared_equals_raw,
)
from attnbench.testing.rules import (
    check_batch_one, check_causal, check_dropout, check_fast_equals_explicit, check_fully_masked_rows, check_gradients,
    check_interface, check_masking, check_mix, check_padding_invariance, check_shapes_and_weights,
)


def check_attention(
    factory: Callable[..., nn.Module] | type, *, query_dim: int = 16, key_dim: int = 16, value_dim: int = 16,
    seed: int = 0, device: str = "cpu", **kwargs: Any,
) -> None:
    """Run the attention contract on a variant; raise AssertionError describing the first broken rule.

    The variant is built as `factory(query_dim, key_dim, value_dim, dropout=..., **kwargs)` and checked on
    small CPU fp32 inputs: shapes and `out_dim`; weights (B, H, Tq, Tk) whose rows sum to 1; masked keys get
    exactly zero weight; a fully masked row gives zero weights, zero output and finite gradients; appended
    masked keys change nothing; `causal=True` hides later keys; gradients reach the inputs and every
    parameter; the fast path (need_weights=False) equals the explicit one; dropout is off in eval mode and
    on in training; Tq != Tk and batch 1 work. Incremental decoding: `forward(q, *prepare(k, v), ...,
    prepared=True)` equals `forward(q, k, v, ...)` in both paths; prepared tensors are (B, Tk, ...) and computed
    per position (concatenating prepared chunks along time equals preparing the whole, index_select on the batch
    commutes); and one query at a time against a growing prepared cache reproduces causal attention. A variant
    without `prepare` is checked as `build_attention` returns it (`attnbench.attention.full_interface`: prepare
    gives back the raw keys), so the decoding rules then check what decoders do with it. A variant with the
    optional `mix(weights, value)` (the output for given weights; attnbench explain swaps in uniform or permuted
    weights through it) must give forward's output when handed forward's own weights.

    `device="cuda"` runs every rule with the variant and its inputs on that device (the same inputs, drawn on the
    CPU): GPU fast paths, such as the fused Triton additive kernel, are then the ones checked.
    """
    with no_global_side_effects(device):
        c = Contract(factory, (query_dim, key_dim, value_dim), seed, kwargs)
        module = c.build().eval()
        check_interface(c, module)
        check_shapes_and_weights(c, module)
        check_masking(c, module)
        check_fully_masked_rows(c, module)
        check_padding_invariance(c, module)
        check_causal(c, module)
        check_fast_equals_explicit(c, module)
        check_gradients(c, module)
        check_dropout(c, module)
        check_batch_one(c, module)
        check_mix(c, module)
        check_prepared_equals_raw(c, module)
        check_prepare_is_positionwise(c, module)
        check_incremental_decoding(c, module)


__all__ = ["check_attention"]
