"""A custom variant without `prepare` gets the full interface from build_attention and decodes like a built-in.

Shapes: B batch, S source tokens, T target tokens, Tq queries, Tk keys, D width, V vocabulary.
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest
import torch
from torch import nn

from attnbench.attention import ATTENTION, build_attention, full_interface
from attnbench.models import TransformerSeq2Seq, beam_search
from attnbench.testing import check_attention

HERE = __name__
V, PAD, BOS, EOS, D = 11, 0, 1, 2, 16


class NoPrepare(nn.Module):
    """Dot product over a learned key projection, with no `prepare` and no `prepared` keyword."""

    description: ClassVar[str] = "custom variant without prepare (adapter tests)"

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Linear(key_dim, query_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = value_dim

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = query @ self.proj(key).transpose(-2, -1) / query.size(-1) ** 0.5  # (B, Tq, Tk)
        keep = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
        if causal:
            keep = keep & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        weights = scores.masked_fill(~keep, -1e9).softmax(-1).masked_fill(~keep, 0.0)  # (B, Tq, Tk)
        return self.dropout(weights) @ value, weights.unsqueeze(1) if need_weights else None


class NoCausal(NoPrepare):
    description: ClassVar[str] = "custom variant without the causal keyword (adapter tests)"

    def forward(self, query, key, value, mask=None, need_weights=False):
        return super().forward(query, key, value, mask, need_weights)


def _built(cls: type, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_attention(f"{HERE}:{cls.__qualname__}", query_dim=D, key_dim=D, value_dim=D, **kwargs)


def test_built_custom_variant_has_the_full_interface_and_passes_the_contract() -> None:
    module = _built(NoPrepare)
    assert isinstance(module, NoPrepare) and callable(module.prepare)
    check_attention(NoPrepare)  # built the same way: the decoding rules run on it too
    check_attention(lambda q, k, v, dropout=0.0: build_attention(  # and on build_attention's own result
        f"{HERE}:NoPrepare", query_dim=q, key_dim=k, value_dim=v, dropout=dropout))


def test_adapter_keeps_names_state_dict_and_pickles() -> None:
    plain = NoPrepare(D, D, D)
    module = full_interface(NoPrepare(D, D, D))
    assert list(module.state_dict()) == list(plain.state_dict()) == ["proj.weight", "proj.bias"]
    module.load_state_dict(plain.state_dict())  # checkpoints from before the adapter still load
    assert type(module).__name__ == "NoPrepare" and type(module).description == NoPrepare.description
    assert full_interface(module) is module and type(full_interface(module)) is type(module)
    copy = pickle.loads(pickle.dumps(module))
    assert type(copy) is type(module)
    q, k, v = (torch.randn(2, 4, D) for _ in range(3))
    torch.testing.assert_close(copy(q, k, v)[0], module(q, k, v)[0])


def test_prepared_passes_raw_keys_and_causal_without_the_keyword_is_refused() -> None:
    module = _built(NoPrepare).eval()
    q, k, v = (torch.randn(2, 5, D) for _ in range(3))
    key, value = module.prepare(k, v)
    assert key is k and value is v
    for causal in (False, True):
        expected = module(q, k, v, need_weights=True, causal=causal)
        got = module(q, key, value, need_weights=True, causal=causal, prepared=True)
        torch.testing.assert_close(got, expected)
    no_causal = _built(NoCausal)
    no_causal(q, k, v, None, need_weights=False, causal=False, prepared=True)  # every keyword, none it lacks
    with pytest.raises(TypeError, match="NoCausal has no `causal` keyword"):
        no_causal(q, k, v, causal=True)


def test_builtins_are_returned_untouched() -> None:
    for name, cls in ATTENTION.items():
        assert type(build_attention(name, query_dim=D, key_dim=D, value_dim=D)) is cls


def _model(seed: int = 0) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    model = TransformerSeq2Seq(
        src_vocab=V, tgt_vocab=V, d_model=D, ff_dim=32, num_layers=2, max_positions=32, dropout=0.0,
        attention=lambda: build_attention("multihead", query_dim=D, key_dim=D, value_dim=D, heads=2,
                                          score=f"{HERE}:NoPrepare"),
    )
    return model.eval()


def _source() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(3, V, (3, 6), generator=gen)  # (B, S)
    src_mask = torch.arange(6)[None] < torch.tensor([6, 4, 2])[:, None]  # (B, S)
    return src.masked_fill(~src_mask, PAD), src_mask


def test_incremental_decoding_and_beam_search_equal_full_recomputation() -> None:
    model = _model()
    assert any(isinstance(m, NoPrepare) for m in model.modules())
    src, src_mask = _source()
    with torch.no_grad():
        hyps = beam_search(model, src, src_mask, beam_size=3, max_len_b=6, bos_id=BOS, eos_id=EOS, pad_id=PAD)
        for b, hyp in enumerate(hyps):
            tokens = torch.tensor([[BOS, *hyp]])  # (1, T + 1)
            memory = model.encode(src[b:b + 1], src_mask[b:b + 1])
            state, steps = model.start(memory), []
            for t in range(tokens.size(1)):
                logits, state, _ = model.step(tokens[:, t], state)  # (1, V): against the cache of raw keys
                steps.append(logits)
            full, _ = model(src[b:b + 1], src_mask[b:b + 1], tokens, torch.ones_like(tokens, dtype=torch.bool))
            torch.testing.assert_close(torch.stack(steps, dim=1), full)  # (1, T + 1, V): recomputed in one pass
