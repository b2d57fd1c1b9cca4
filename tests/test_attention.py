"""The attention variants: the contract on every variant, reference parity, incremental decoding (prepare),
the registry and its errors."""

from __future__ import annotations

import importlib.metadata
import math
import os
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnbench.attention as attention
from attnbench.attention import (
    ATTENTION, Additive, Dot, MultiHead, ScaledDot, available_attention, build_attention, resolve_attention,
)
from attnbench.testing import check_attention

HERE = __name__  # this module's own import path, whatever rootdir/import mode pytest uses
# The device the contract tests run the variants on: the CPU here and in CI; scripts/gpu_check.py sets "cuda", so on
# a GPU the fast paths checked are the GPU's (SDPA's CUDA kernels, the compiled Triton additive kernel).
DEVICE = os.environ.get("ATTNBENCH_TEST_DEVICE", "cpu")


class TinyAttention(nn.Module):
    """A minimal correct custom variant: scaled dot product with a learned score offset per key position."""

    description: ClassVar[str] = "tiny custom variant for the tests"

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.tensor(1.5))
        self.dropout = dropout
        self.out_dim = value_dim

    def scores(self, query, key):
        return query @ key.transpose(-2, -1) / self.temperature  # (B, Tq, Tk)

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = self.scores(query, key)  # (B, Tq, Tk)
        keep = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
        if causal:
            keep = keep & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        weights = scores.masked_fill(~keep, -1e9).softmax(-1).masked_fill(~keep, 0.0)
        out = F.dropout(weights, self.dropout, self.training) @ value  # (B, Tq, Dv)
        return out, weights.unsqueeze(1) if need_weights else None


NotAModule = math.sqrt  # for the "not an nn.Module subclass" error


# --- the contract on every variant -------------------------------------------------------------------------

CONTRACT_CASES = {name: (name, {}) for name in ATTENTION} | {
    "multihead-additive": ("multihead", {"score": "additive", "heads": 2}),
    "multihead-dot": ("multihead", {"score": "dot", "heads": 4}),
    "multihead-general": ("multihead", {"score": "general", "heads": 2}),
    "multihead-heads1": ("multihead", {"heads": 1}),
    "multihead-heads2": ("multihead", {"heads": 2}),
    "multihead-heads4": ("multihead", {"heads": 4}),
    "multihead-custom-score": ("multihead", {"score": f"{HERE}:TinyAttention", "heads": 2}),
    # head_dim decouples d_k from d_model (the scaling ablation): wider and narrower heads than d_model / heads
    "multihead-head_dim-wide": ("multihead", {"heads": 1, "head_dim": 40}),
    "multihead-dot-head_dim": ("multihead", {"score": "dot", "heads": 2, "head_dim": 6}),
    "multihead-additive-head_dim": ("multihead", {"score": "additive", "heads": 3, "head_dim": 8}),
    "custom-impl": (f"{HERE}:TinyAttention", {}),
}


@pytest.mark.parametrize("name, kwargs", CONTRACT_CASES.values(), ids=CONTRACT_CASES.keys())
def test_contract(name: str, kwargs: dict) -> None:
    check_attention(resolve_attention(name), device=DEVICE, **kwargs)


@pytest.mark.parametrize("name, kwargs", [
    ("additive", {"hidden_dim": 5}), ("general", {}), ("multihead", {"heads": 3, "score": "additive"}),
])
def test_contract_with_unequal_widths(name: str, kwargs: dict) -> None:
    check_attention(ATTENTION[name], query_dim=12, key_dim=20, value_dim=8, device=DEVICE, **kwargs)


def test_additive_contract_when_chunked() -> None:
    def tiny_chunks(*args, **kwargs) -> Additive:
        module = Additive(*args, **kwargs)
        module.chunk_elements = 1  # one query per chunk
        return module
    tiny_chunks.description = Additive.description  # type: ignore[attr-defined]
    check_attention(tiny_chunks, device=DEVICE)


# --- check_attention must reject broken variants ------------------------------------------------------------

class IgnoresMask(TinyAttention):
    description: ClassVar[str] = "broken: attends to padding"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        return super().forward(query, key, value, None, need_weights, causal)


class NaNOnEmptyRows(TinyAttention):
    description: ClassVar[str] = "broken: -inf fill, so a fully masked row is NaN"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = query @ key.transpose(-2, -1)  # (B, Tq, Tk)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        return weights @ value, weights.unsqueeze(1) if need_weights else None


class IgnoresCausal(TinyAttention):
    description: ClassVar[str] = "broken: ignores causal"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        return super().forward(query, key, value, mask, need_weights, False)


class FastPathDiffers(TinyAttention):
    description: ClassVar[str] = "broken: the fast path computes something else"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        if need_weights:
            return super().forward(query, key, value, mask, need_weights, causal)
        out, _ = super().forward(query, key, value, mask, True, causal)
        return out * 1.5, None


class DropoutInEval(TinyAttention):
    description: ClassVar[str] = "broken: dropout also in eval mode"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        out, weights = super().forward(query, key, value, mask, need_weights, causal)
        return F.dropout(out, self.dropout, True), weights


class Detached(TinyAttention):
    description: ClassVar[str] = "broken: the temperature never learns"

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = query @ key.transpose(-2, -1) / self.temperature.detach()
        keep = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
        if causal:
            keep = keep & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        weights = scores.masked_fill(~keep, -1e9).softmax(-1).masked_fill(~keep, 0.0)
        return weights @ value, weights.unsqueeze(1) if need_weights else None


class PreparedTwice(TinyAttention):
    description: ClassVar[str] = "broken: prepare scales the keys, and forward(prepared=True) scales them again"

    def prepare(self, key, value):
        return key / self.temperature, value

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False, prepared=False):
        return super().forward(query, key, value, mask, need_weights, causal)


class MixesTime(TinyAttention):
    description: ClassVar[str] = "broken: prepare sums keys over time, so a cache grown step by step goes stale"

    def prepare(self, key, value):
        return key.cumsum(1), value

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False, prepared=False):
        key, value = (key, value) if prepared else self.prepare(key, value)
        return super().forward(query, key, value, mask, need_weights, causal)


class QueryIndexBias(TinyAttention):
    description: ClassVar[str] = "broken for decoding: a |i - j| bias, but a lone query always thinks it is i = 0"

    def prepare(self, key, value):
        return key, value

    def scores(self, query, key):
        distance = torch.arange(query.size(1))[:, None] - torch.arange(key.size(1))  # (Tq, Tk): i - j
        return super().scores(query, key) - 0.5 * distance.abs()

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False, prepared=False):
        return super().forward(query, key, value, mask, need_weights, causal)


class MixIgnoresWeights(TinyAttention):
    description: ClassVar[str] = "broken: mix averages the values whatever the weights"

    def mix(self, weights, value):
        return value.mean(1, keepdim=True).expand(-1, weights.size(2), -1)


class ScaledValues(TinyAttention):
    description: ClassVar[str] = "broken: prepare doubles the values and mix(prepared=True) doubles them again"

    def prepare(self, key, value):
        return key, 2 * value

    def mix(self, weights, value, prepared=False):
        return weights[:, 0] @ (2 * value)

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False, prepared=False):
        key, value = (key, value) if prepared else self.prepare(key, value)
        return super().forward(query, key, value, mask, need_weights, causal)


class NoOutDim(TinyAttention):
    description: ClassVar[str] = "broken: no out_dim"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.out_dim


@pytest.mark.parametrize("broken, message", [
    (IgnoresMask, "masked keys got non-zero weight"),
    (NaNOnEmptyRows, "NaN"),
    (IgnoresCausal, "causal"),
    (FastPathDiffers, "fast path"),
    (DropoutInEval, "dropout=0.5 in eval mode"),
    (Detached, "no gradient reached parameter 'temperature'"),
    (NoOutDim, "out_dim"),
    (MixIgnoresWeights, "mix\\(weights, value\\) with forward's own weights.*differs"),
    (ScaledValues, "mix\\(weights, value, prepared=True\\) over prepare's values"),
    (PreparedTwice, "prepared == raw keys.*outputs differ"),
    (MixesTime, "concatenating prepared chunks along time"),
    (QueryIndexBias, "incremental decoding.*row 1 of causal attention"),
])
def test_check_attention_rejects_broken_variants(broken: type, message: str) -> None:
    with pytest.raises(AssertionError, match=message) as info:
        check_attention(broken)
    assert f"check_attention({broken.__qualname__})" in str(info.value)


# --- reference parity ---------------------------------------------------------------------------------------

B, TQ, TK, D = 3, 5, 7, 16


def _qkv(Tq: int = TQ, Tk: int = TK, dim: int = D) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return tuple(torch.randn(B, T, dim, generator=gen) for T in (Tq, Tk, Tk))  # type: ignore[return-value]


def _padding(Tk: int = TK) -> torch.Tensor:
    return (torch.arange(Tk)[None] < torch.tensor([Tk, 4, 2])[:, None])[:, None]  # (B, 1, Tk)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("variant, scale", [(ScaledDot, None), (Dot, 1.0)])
def test_against_sdpa(variant: type, scale: float | None, need_weights: bool) -> None:
    module = variant(D, D, D).eval()
    q, k, v = _qkv(TK, TK)
    for mask, causal in ((None, False), (_padding(), False), (None, True), (_padding(), True)):
        out, _ = module(q, k, v, mask, need_weights=need_weights, causal=causal)
        if mask is not None and causal:
            ref_mask = mask & torch.ones(TK, TK, dtype=torch.bool).tril()
            ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask, scale=scale)
        else:
            ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)
        torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_multihead_against_nn_multiheadattention(heads: int) -> None:
    torch.manual_seed(0)
    ours = MultiHead(D, D, D, heads=heads).eval()
    ref = nn.MultiheadAttention(D, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    q, k, v = _qkv()
    mask = _padding()
    ref_out, ref_weights = ref(q, k, v, key_padding_mask=~mask[:, 0], need_weights=True, average_attn_weights=False)
    for need_weights in (False, True):
        out, weights = ours(q, k, v, mask, need_weights=need_weights)
        torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)  # (B, H, Tq, Tk)
    _, ref_mean = ref(q, k, v, key_padding_mask=~mask[:, 0], need_weights=True, average_attn_weights=True)
    torch.testing.assert_close(weights.mean(1), ref_mean)


def test_additive_fast_path_chunks_equal_explicit() -> None:
    module = Additive(D, D, D, hidden_dim=8).eval()
    module.chunk_elements = B * TK * 8 * 2  # two queries per chunk: three chunks for Tq = 5
    q, k, v = _qkv(TK, TK)
    calls = []
    original = module._attend_chunk
    module._attend_chunk = lambda *a: calls.append(1) or original(*a)  # type: ignore[method-assign]
    for mask, causal in ((None, False), (_padding(), False), (torch.rand(B, TK, TK) < 0.5, False), (_padding(), True)):
        calls.clear()
        fast, none = module(q, k, v, mask, causal=causal)
        explicit, weights = module(q, k, v, mask, need_weights=True, causal=causal)
        assert none is None and weights.shape == (B, 1, TK, TK)
        assert len(calls) == 4  # ceil(7 / 2)
        torch.testing.assert_close(fast, explicit)


def test_additive_chunked_gradients_match_explicit() -> None:
    module = Additive(D, D, D).train()
    module.chunk_elements = 1
    q, k, v = (t.requires_grad_() for t in _qkv())
    grads = []
    for need_weights in (False, True):
        out, _ = module(q, k, v, _padding(), need_weights=need_weights)
        grads.append(torch.autograd.grad(out.pow(2).sum(), [q, k, v, *module.parameters()]))
    for fast, explicit in zip(*grads):
        torch.testing.assert_close(fast, explicit)


def test_general_is_bilinear() -> None:
    module = build_attention("general", query_dim=6, key_dim=10, value_dim=4)
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, T, dim, generator=gen) for T, dim in ((3, 6), (5, 10), (5, 4)))
    scores = torch.einsum("bqd,ed,bke->bqk", q, module.W.weight, k)  # (W q) · k
    _, weights = module(q, k, v, need_weights=True)
    torch.testing.assert_close(weights[:, 0], scores.softmax(-1))


def test_single_head_weights_and_out_dim() -> None:
    for name in ("additive", "dot", "general", "scaled_dot"):
        module = build_attention(name, query_dim=D, key_dim=D, value_dim=5)
        q, k, _ = _qkv()
        out, weights = module(q, k, torch.randn(B, TK, 5), need_weights=True)
        assert module.out_dim == 5 and out.shape == (B, TQ, 5) and weights.shape == (B, 1, TQ, TK)
    mh = build_attention("multihead", query_dim=12, key_dim=20, value_dim=8, heads=3)
    assert mh.out_dim == 12 and mh.head_dim == 4


# --- incremental decoding: prepare(key, value) and forward(prepared=True) ---------------------------------

PREPARE_CASES = {name: (name, {}) for name in ("additive", "dot", "general", "scaled_dot")} | {
    f"multihead-{score}-heads{heads}": ("multihead", {"score": score, "heads": heads})
    for score in ("additive", "dot", "general", "scaled_dot") for heads in (1, 2, 4)
}


def _built(name: str, kwargs: dict) -> nn.Module:
    torch.manual_seed(0)
    return build_attention(name, query_dim=D, key_dim=D, value_dim=D, **kwargs).eval()


def _decode_one_query_at_a_time(module: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Self-attention as a decoder runs it: query t alone against a cache grown by one prepared key per step."""
    cache, steps = None, []
    for t in range(x.size(1)):
        step = module.prepare(x[:, t:t + 1], x[:, t:t + 1])  # (B, 1, ...) each
        cache = step if cache is None else tuple(torch.cat(pair, dim=1) for pair in zip(cache, step))
        steps.append(module(x[:, t:t + 1], *cache, need_weights=True, prepared=True))  # (B, 1, Dq), (B, H, 1, t+1)
    return steps


@pytest.mark.parametrize("name, kwargs", PREPARE_CASES.values(), ids=PREPARE_CASES.keys())
def test_prepared_equals_raw(name: str, kwargs: dict) -> None:
    module = _built(name, kwargs)
    q, k, v = _qkv(TK, TK)
    per_query = torch.rand(B, TK, TK, generator=torch.Generator().manual_seed(3)) < 0.6  # (B, Tq, Tk)
    prepared = module.prepare(k, v)
    for mask, causal in ((None, False), (_padding(), False), (per_query, False), (_padding(), True)):
        for need_weights in (False, True):
            expected = module(q, k, v, mask, need_weights, causal)
            torch.testing.assert_close(module(q, *prepared, mask, need_weights, causal, prepared=True), expected)


@pytest.mark.parametrize("name, kwargs", PREPARE_CASES.values(), ids=PREPARE_CASES.keys())
def test_prepare_is_positionwise(name: str, kwargs: dict) -> None:
    module = _built(name, kwargs)
    _, k, v = _qkv()
    whole = module.prepare(k, v)
    parts = [module.prepare(k[:, span], v[:, span]) for span in (slice(0, 3), slice(3, 4), slice(4, None))]
    beams = torch.tensor([2, 0, 0])  # reorder and repeat, as beam search does
    for i, prepared in enumerate(whole):  # keys, values
        assert prepared.shape[:2] == (B, TK)
        torch.testing.assert_close(torch.cat([part[i] for part in parts], dim=1), prepared)
        torch.testing.assert_close(prepared.index_select(0, beams), module.prepare(k[beams], v[beams])[i])


@pytest.mark.parametrize("name, kwargs", PREPARE_CASES.values(), ids=PREPARE_CASES.keys())
def test_incremental_decoding_equals_causal(name: str, kwargs: dict) -> None:
    module = _built(name, kwargs)
    x, _, _ = _qkv(TK, TK)
    full, full_weights = module(x, x, x, need_weights=True, causal=True)  # (B, T, Dq), (B, H, T, T)
    for t, (out, weights) in enumerate(_decode_one_query_at_a_time(module, x)):
        torch.testing.assert_close(out, full[:, t:t + 1])
        torch.testing.assert_close(weights, full_weights[:, :, t:t + 1, :t + 1])


@pytest.mark.parametrize("name, kwargs, projections", [
    ("additive", {}, ["W_k"]),
    ("multihead", {"score": "additive", "heads": 2}, ["k_proj", "v_proj", "score.W_k"]),
    ("multihead", {"heads": 2}, ["k_proj", "v_proj"]),
])
def test_prepared_path_skips_key_projections(name: str, kwargs: dict, projections: list[str]) -> None:
    module = _built(name, kwargs)
    calls: list[str] = []
    for path in projections:
        module.get_submodule(path).register_forward_hook(lambda mod, args, out, path=path: calls.append(path))
    q, k, v = _qkv()
    prepared = module.prepare(k, v)
    assert sorted(calls) == sorted(projections)  # prepare did the projections, once each
    calls.clear()
    for need_weights in (False, True):
        module(q, *prepared, _padding(), need_weights, prepared=True)
    assert calls == []
    module(q, k, v)
    assert sorted(calls) == sorted(projections)  # the raw path still projects (and the hooks do fire)


def test_multihead_caches_its_projections_around_a_score_without_prepare() -> None:
    module = _built("multihead", {"score": f"{HERE}:TinyAttention", "heads": 2})
    k, v = _qkv()[1:]
    assert all(a is b for a, b in zip(module.score.prepare(k, v), (k, v)))  # the score has no prepare of its own
    x, _, _ = _qkv(TK, TK)
    key, value = module.prepare(x, x)
    assert key.shape == value.shape == (B, TK, 2, D // 2)  # (B, Tk, H, Dh): only MultiHead's own projections
    full, full_weights = module(x, x, x, need_weights=True, causal=True)
    for t, (out, weights) in enumerate(_decode_one_query_at_a_time(module, x)):
        torch.testing.assert_close(out, full[:, t:t + 1])
        torch.testing.assert_close(weights, full_weights[:, :, t:t + 1, :t + 1])


def test_every_built_variant_has_prepare() -> None:
    assert all(callable(_built(name, kwargs).prepare) for name, kwargs in PREPARE_CASES.values())
    assert not hasattr(TinyAttention(D, D, D), "prepare") and callable(_built(f"{HERE}:TinyAttention", {}).prepare)


def test_multihead_rejects_unprepared_keys_with_prepared_true() -> None:
    module = _built("multihead", {"heads": 2})
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"must come from MultiHead.prepare, shaped \(B, Tk, H, X\)"):
        module(q, k, v, prepared=True)


# --- registry and errors ------------------------------------------------------------------------------------

def test_unknown_name_lists_valid_names() -> None:
    message = ("unknown attention 'foo': valid names are additive, dot, general, multihead, scaled_dot "
               "(or attention=custom attention.impl=package.module:ClassName)")
    with pytest.raises(ValueError) as info:
        build_attention("foo", query_dim=D, key_dim=D, value_dim=D)
    assert str(info.value) == message


def test_heads_must_divide_d_model() -> None:
    with pytest.raises(ValueError, match="d_model 100 is not divisible by heads 3: choose heads that divide d_model"):
        MultiHead(100, 100, 100, heads=3)
    with pytest.raises(ValueError, match="head_dim=0: use a positive head width"):
        MultiHead(100, 100, 100, heads=2, head_dim=0)


def test_head_dim_sets_the_width_of_each_head_not_of_the_model() -> None:
    torch.manual_seed(0)
    wide = MultiHead(32, 32, 32, heads=3, head_dim=64, score="dot")  # 3 does not divide 32: fine with head_dim
    assert wide.q_proj.weight.shape == (192, 32) and wide.out_proj.weight.shape == (32, 192)
    q = torch.randn(2, 5, 32)
    out, weights = wide(q, q, q, need_weights=True)
    assert out.shape == (2, 5, 32) and weights.shape == (2, 3, 5, 5)
    # head_dim = d_model / heads is the default module, parameter for parameter
    default, explicit = MultiHead(32, 32, 32, heads=4), MultiHead(32, 32, 32, heads=4, head_dim=8)
    explicit.load_state_dict(default.state_dict())
    torch.testing.assert_close(explicit(q, q, q)[0], default(q, q, q)[0])


def test_scaled_dot_scales_by_the_head_width_it_is_given() -> None:
    """The scaling ablation's premise: scaled_dot inside MultiHead divides by sqrt(head_dim), dot does not."""
    torch.manual_seed(0)
    q = torch.randn(1, 4, 16)
    dot = MultiHead(16, 16, 16, heads=1, head_dim=256, score="dot")
    scaled = MultiHead(16, 16, 16, heads=1, head_dim=256, score="scaled_dot")
    scaled.load_state_dict(dot.state_dict())
    _, w_dot = dot(q, q, q, need_weights=True)
    _, w_scaled = scaled(q, q, q, need_weights=True)
    qh, kh = dot.q_proj(q), dot.k_proj(q)  # (1, 4, 256)
    torch.testing.assert_close(w_dot[0, 0], (qh @ kh.transpose(-1, -2))[0].softmax(-1))
    torch.testing.assert_close(w_scaled[0, 0], (qh @ kh.transpose(-1, -2) / 16.0)[0].softmax(-1))


@pytest.mark.parametrize("name", ["dot", "scaled_dot"])
def test_dot_products_need_equal_query_and_key_widths(name: str) -> None:
    with pytest.raises(ValueError, match="query_dim == key_dim, got 8 and 12.*general"):
        build_attention(name, query_dim=8, key_dim=12, value_dim=8)


@pytest.mark.parametrize("name", ["additive", "dot", "general", "scaled_dot", "multihead"])
def test_causal_needs_square_attention(name: str) -> None:
    module = build_attention(name, query_dim=D, key_dim=D, value_dim=D, heads=2) if name == "multihead" \
        else build_attention(name, query_dim=D, key_dim=D, value_dim=D)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="causal attention needs as many queries as keys, got Tq=5 and Tk=7"):
        module(q, k, v, causal=True)


def test_mask_errors() -> None:
    module = Dot(D, D, D)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"shape \(B, 1 or Tq, Tk\)"):
        module(q, k, v, torch.ones(B, TK, dtype=torch.bool))
    with pytest.raises(TypeError, match="must be bool"):
        module(q, k, v, torch.zeros(B, 1, TK))
    out_int, _ = module(q, k, v, _padding().long())
    torch.testing.assert_close(out_int, module(q, k, v, _padding())[0])


def test_bad_dropout_and_kwargs() -> None:
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        build_attention("dot", query_dim=D, key_dim=D, value_dim=D, dropout=1.5)
    with pytest.raises(TypeError, match=r"attention 'dot' cannot be built.*hidden_dim.*Dot\(query_dim"):
        build_attention("dot", query_dim=D, key_dim=D, value_dim=D, hidden_dim=4)


@pytest.mark.parametrize("impl, error, message", [
    ("no_such_pkg.mod:Cls", ImportError, "cannot import module 'no_such_pkg.mod'.*PYTHONPATH"),
    (f"{HERE}:Nope", AttributeError, f"module '{HERE}' has no class 'Nope'.*TinyAttention"),
    (f"{HERE}:NotAModule", TypeError, "not a torch.nn.Module subclass"),
    ("a.b:C:D", ValueError, "must look like package.module:ClassName"),
    (":Cls", ValueError, "must look like package.module:ClassName"),
    ("no_colon_or_name", ValueError, "unknown attention 'no_colon_or_name'"),
])
def test_bad_impl_strings(impl: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        resolve_attention(impl)


def test_resolve_impl_string_and_build() -> None:
    assert resolve_attention(f"{HERE}:TinyAttention") is TinyAttention
    assert isinstance(build_attention(f"{HERE}:TinyAttention", query_dim=4, key_dim=4, value_dim=4), TinyAttention)
    mh = build_attention("multihead", query_dim=8, key_dim=8, value_dim=8, heads=2, score=f"{HERE}:TinyAttention")
    assert isinstance(mh.score, TinyAttention)
    mh = build_attention("multihead", query_dim=8, key_dim=8, value_dim=8, heads=2, score="additive",
                         score_kwargs={"hidden_dim": 3})
    assert mh.score.v.in_features == 3


def test_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    group = attention.ENTRY_POINT_GROUP
    plugins = [
        importlib.metadata.EntryPoint(name="tiny", value=f"{HERE}:TinyAttention", group=group),
        importlib.metadata.EntryPoint(name="dot", value=f"{HERE}:TinyAttention", group=group),  # must not shadow
        importlib.metadata.EntryPoint(name="broken", value="no_such_pkg.mod:Cls", group=group),
    ]
    monkeypatch.setattr(attention.registry, "entry_points", lambda group: [ep for ep in plugins if ep.group == group])
    assert resolve_attention("tiny") is TinyAttention
    assert resolve_attention("dot") is Dot
    with pytest.raises(ImportError, match="attention plugin 'broken'.*failed to load"):
        resolve_attention("broken")
    listed = available_attention()
    assert listed["tiny"] == TinyAttention.description and listed["dot"] == Dot.description
    assert "failed to load" in listed["broken"]
    with pytest.raises(ValueError, match="valid names are additive, broken, dot, general, multihead, scaled_dot, tiny"):
        resolve_attention("nope")


def test_available_attention_describes_builtins() -> None:
    listed = available_attention()
    assert list(listed)[:5] == list(ATTENTION)
    assert all(text and "\n" not in text for text in listed.values())


def test_check_attention_accepts_the_documented_custom_example():
    """The README's custom variant (tests/custom_attention.py) passes the same contract as the built-ins."""
    from tests.custom_attention import GatedDot

    check_attention(GatedDot)
    check_attention(GatedDot, init_temperature=0.5)
