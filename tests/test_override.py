"""Counterfactual attention (attention/override.py): an Override with the identity transform is the model itself,
a uniform one averages the real values, every model names the modules behind its maps, and the originals come
back after the block, also on error. Tiny CPU models (vocabulary 13, widths 8-16)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnbench.attention import build_attention
from attnbench.attention.override import Override, attention_modules, override_attention, uniform_weights
from attnbench.models import build_classifier, build_seq2seq

V, PAD = 13, 0
VARIANTS = ["additive", "dot", "general", "scaled_dot", "multihead"]


def identity(weights: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    return weights


def attention_block(name: str) -> dict:
    return {"name": name, "impl": None, "heads": 2 if name == "multihead" else 1, "score": "scaled_dot",
            "dropout": 0.0, "hidden_dim": None, "kwargs": {}}


def model_block(backbone: str) -> dict:
    return {"name": backbone, "embed_dim": 8, "hidden_dim": 8, "num_layers": 2, "dropout": 0.0, "ff_dim": 16,
            "max_positions": 40, "tie_embeddings": False, "cell": "gru", "decoder_style": "bahdanau"}


def inputs(lengths=(7, 5, 2), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), max(lengths)), PAD)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, V, (n,), generator=g)
    return ids, ids != PAD


def classifier(backbone: str, variant: str) -> nn.Module:
    torch.manual_seed(0)
    return build_classifier(model_block(backbone), attention_block(variant), vocab_size=V, num_labels=3,
                            pad_id=PAD).eval()


def seq2seq(backbone: str, variant: str) -> nn.Module:
    torch.manual_seed(0)
    return build_seq2seq(model_block(backbone), attention_block(variant), src_vocab=V, tgt_vocab=V, pad_id=PAD,
                         shared_vocab=True).eval()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("prepared", [False, True])
def test_identity_override_is_the_variant_itself(variant: str, prepared: bool) -> None:
    torch.manual_seed(0)
    attn = build_attention(variant, query_dim=8, key_dim=8, value_dim=8,
                           **({"heads": 2} if variant == "multihead" else {})).eval()
    q, k, v = torch.randn(3, 4, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    mask = torch.ones(3, 1, 6, dtype=torch.bool)
    mask[1, 0, 4:] = False
    mask[2, 0, :] = False  # a query that may see nothing: zero output, zero weights
    with torch.no_grad():
        kk, vv = attn.prepare(k, v) if prepared else (k, v)
        expected, weights = attn(q, kk, vv, mask, need_weights=True, prepared=prepared)
        got, got_weights = Override(attn, identity)(q, kk, vv, mask, need_weights=True, prepared=prepared)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_weights, weights)


def test_uniform_override_of_bare_dot_attention_averages_the_real_values() -> None:
    attn = build_attention("dot", query_dim=4, key_dim=4, value_dim=4)
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, :]  # (B, 1, Tk)
    out, weights = Override(attn, uniform_weights)(q, k, v, mask, need_weights=True)
    torch.testing.assert_close(out[0], v[0].mean(0).expand(3, 4))
    torch.testing.assert_close(out[1], v[1, :2].mean(0).expand(3, 4))
    assert torch.equal(weights[1, 0, :, 2:], torch.zeros(3, 3))


def test_uniform_weights_respect_causal_rows_and_empty_rows() -> None:
    keep = torch.tensor([[[True, False, False], [True, True, False], [False, False, False]]])  # (1, 3, 3)
    w = uniform_weights(torch.rand(1, 2, 3, 3), keep)
    torch.testing.assert_close(w[0, 1], torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 0]]))


@pytest.mark.parametrize("backbone", ["rnn", "transformer"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_classifier_map_can_be_overridden_and_comes_back(backbone: str, variant: str) -> None:
    model = classifier(backbone, variant)
    ids, mask = inputs()
    names = attention_modules(model)
    assert "pooling" in names and (backbone == "rnn") == (set(names) == {"pooling"})
    with torch.no_grad():
        expected, maps = model(ids, mask, need_weights=True)
        assert set(maps) == set(names)  # each named map is made by the module named for it
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with override_attention(model, {name: identity for name in names}):
            same, _ = model(ids, mask)
        with override_attention(model, {"pooling": uniform_weights}):
            uniform, uniform_maps = model(ids, mask, need_weights=True)
    torch.testing.assert_close(same, expected, atol=1e-5, rtol=1e-5)
    w = uniform_maps["pooling"]
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    assert torch.equal(w[2, :, 0, 2:], torch.zeros_like(w[2, :, 0, 2:]))  # padding keeps zero weight
    assert not torch.allclose(uniform, expected)
    assert all(not isinstance(m, Override) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("backbone", ["rnn", "transformer"])
@pytest.mark.parametrize("variant", ["additive", "multihead"])
def test_seq2seq_cross_attention_override_in_teacher_forcing_equals_incremental_decoding(
        backbone: str, variant: str) -> None:
    model = seq2seq(backbone, variant)
    src, src_mask = inputs()
    tgt = torch.randint(3, V, (3, 5), generator=torch.Generator().manual_seed(1))
    tgt_mask = torch.ones_like(tgt, dtype=torch.bool)
    cross = {name: uniform_weights for name in attention_modules(model) if name.startswith("cross_attention")}
    assert cross
    with torch.no_grad():
        normal, _ = model(src, src_mask, tgt, tgt_mask)
        with override_attention(model, cross):
            forced, maps = model(src, src_mask, tgt, tgt_mask, need_weights=True)
            state = model.start(model.encode(src, src_mask))
            steps = []
            for t in range(tgt.size(1)):
                logits, state, _ = model.step(tgt[:, t], state)
                steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(forced, normal)
    for name in cross:  # uniform over the real source tokens at every target step
        expected = (src_mask[:, None, None, :].float() / src_mask.sum(-1)[:, None, None, None]).expand_as(maps[name])
        torch.testing.assert_close(maps[name], expected)


def test_originals_come_back_after_an_error_and_unknown_names_are_refused() -> None:
    model = classifier("transformer", "dot")
    original = model.pooling.attn
    with pytest.raises(RuntimeError, match="inside"):
        with override_attention(model, {"pooling": uniform_weights}):
            assert isinstance(model.pooling.attn, Override)
            raise RuntimeError("inside")
    assert model.pooling.attn is original
    with pytest.raises(KeyError, match="cross_attention.layer0: choose among self_attention.layer0, self_attention.layer1, pooling"):
        with override_attention(model, {"cross_attention.layer0": uniform_weights}):
            pass


def test_a_variant_without_mix_cannot_be_overridden() -> None:
    class NoMix(nn.Module):
        out_dim = 4

        def forward(self, query, key, value, mask=None, need_weights=False):
            return value[:, :1], None

    with pytest.raises(TypeError, match="NoMix has no mix"):
        Override(NoMix(), uniform_weights)
