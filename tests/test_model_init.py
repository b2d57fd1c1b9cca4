"""Transformer initialisation: a sane loss before any training, and positions that are not drowned out.

Production widths (d_model 256, vocabulary 8000), two layers, no training. Shapes: B batch, S source tokens,
T target tokens, D d_model, V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnbench.models import build_classifier, build_seq2seq

D, V, PAD = 256, 8000, 0
FIRST_REAL = 3  # 0 PAD, 1 BOS, 2 EOS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Other processes share the cores: one intra-op thread avoids OpenMP threads waiting on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_config(**overrides: Any) -> dict[str, Any]:
    base = {"name": "transformer", "embed_dim": D, "hidden_dim": D, "num_layers": 2, "dropout": 0.1, "ff_dim": 512,
            "max_positions": 64, "tie_embeddings": False}
    return base | overrides


ATTENTION = {"name": "multihead", "impl": None, "heads": 4, "score": "scaled_dot", "dropout": 0.0,
             "hidden_dim": None, "kwargs": {}}


def seq2seq(tie: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_seq2seq(model_config(tie_embeddings=tie), ATTENTION, src_vocab=V, tgt_vocab=V, pad_id=PAD,
                          shared_vocab=True)
    return model.eval()


def real_tokens(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(FIRST_REAL, V, shape, generator=torch.Generator().manual_seed(seed))


def scaled_token_and_position_std(embed: nn.Embedding, positions: nn.Embedding, scale: float) -> tuple[float, float]:
    """Per-component std of what the first layer sees from the tokens and from the positions."""
    tokens = real_tokens(4096)
    with torch.no_grad():
        return (embed(tokens) * scale).std().item(), positions.weight.std().item()


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_initial_cross_entropy_is_near_log_vocab(tie: bool) -> None:
    """An untrained model should be close to uniform: far above log V means logits of huge scale (a tied output
    layer reading N(0, 1) embeddings scaled by √d gave ~250 nats), which wastes the first updates. Tied, the input
    token's own logit would also start at ~√(d/2) without the output rescale (~11 nats here)."""
    model = seq2seq(tie)
    B, S, T = 8, 20, 16
    src, tgt = real_tokens(B, S, seed=1), real_tokens(B, T + 1, seed=2)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    with torch.no_grad():
        logits, _ = model(src, src != PAD, tgt_in, tgt_in != PAD)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1)).item()
    assert abs(loss - math.log(V)) < 1.0, f"initial cross-entropy {loss:.2f} nats, log V = {math.log(V):.2f}"


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_seq2seq_positions_are_as_loud_as_tokens(tie: bool) -> None:
    model = seq2seq(tie)
    for name, embed, positions, scale in (
        ("encoder", model.encoder.embed, model.encoder.positions, model.encoder.scale),
        ("decoder", model.embed, model.positions, model.scale),
    ):
        token_std, position_std = scaled_token_and_position_std(embed, positions, scale)
        assert 0.5 < token_std / position_std < 2.0, (name, token_std, position_std)


def test_classifier_positions_are_as_loud_as_tokens() -> None:
    torch.manual_seed(0)
    classifier = build_classifier(model_config(), ATTENTION, vocab_size=V, num_labels=2, pad_id=PAD)
    encoder = classifier.encoder
    token_std, position_std = scaled_token_and_position_std(encoder.embed, encoder.positions, encoder.scale)
    assert 0.5 < token_std / position_std < 2.0, (token_std, position_std)


def test_padding_rows_start_at_zero() -> None:
    model = seq2seq(tie=False)
    assert model.encoder.embed.weight[PAD].abs().max() == 0
    assert model.embed.weight[PAD].abs().max() == 0


def test_tied_output_scale_defaults_to_t5s_and_can_be_set():
    """model.tied_output_scale: None keeps d^-1/2 (every earlier run's, so their config hashes stay); a value replaces
    it (1.0: fairseq's); an untied model never rescales; zero or negative is refused."""
    from attnbench.config import config_hash
    from attnbench.config.compose import load_config
    from attnbench.errors import ConfigError

    torch.manual_seed(0)
    default = build_seq2seq(model_config(tie_embeddings=True), ATTENTION, src_vocab=V, tgt_vocab=V, pad_id=PAD,
                            shared_vocab=True)
    fairseq = build_seq2seq(model_config(tie_embeddings=True, tied_output_scale=1.0), ATTENTION, src_vocab=V,
                            tgt_vocab=V, pad_id=PAD, shared_vocab=True)
    untied = build_seq2seq(model_config(tied_output_scale=1.0), ATTENTION, src_vocab=V, tgt_vocab=V, pad_id=PAD,
                           shared_vocab=True)
    assert (default.output_scale, fairseq.output_scale, untied.output_scale) == (D**-0.5, 1.0, 1.0)
    base = ["task=translation", "model=transformer", "model.tie_embeddings=true"]
    assert config_hash(load_config(base)) == config_hash(load_config([*base, "model.tied_output_scale=null"]))
    assert config_hash(load_config(base)) != config_hash(load_config([*base, "model.tied_output_scale=1.0"]))
    with pytest.raises(ConfigError, match="tied_output_scale=0.0 must be positive"):
        load_config([*base, "model.tied_output_scale=0"])
