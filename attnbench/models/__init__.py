"""Backbones and task models (plain PyTorch). `build_classifier` turns config values into modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from attnbench.attention import build_attention
from attnbench.models.classifier import AttentionPooling, Classifier
from attnbench.models.rnn import RNNEncoder
from attnbench.models.transformer import TransformerEncoder

MODELS = {
    "rnn": "BiLSTM/BiGRU encoder + attention pooling with a learned query (Jain & Wallace, 2019)",
    "transformer": "pre-LN transformer encoder with the variant as self-attention + attention pooling",
}


def attention_factory(attention: Mapping[str, Any], dim: int, *, projected: bool) -> Callable[[], nn.Module]:
    """A constructor for the configured attention at width `dim`.

    `projected=True` wraps the variant in MultiHead's Q/K/V/O projections (as in every transformer layer),
    with `attention.heads` heads; `multihead` is always projected. Otherwise the bare score function runs.
    """
    name = attention["impl"] if attention["name"] == "custom" else attention["name"]
    own: dict[str, Any] = dict(attention.get("kwargs") or {})
    if attention.get("hidden_dim") is not None:
        own["hidden_dim"] = attention["hidden_dim"]
    dims = {"query_dim": dim, "key_dim": dim, "value_dim": dim, "dropout": attention["dropout"]}
    if name == "multihead" or projected:
        score = attention["score"] if name == "multihead" else name
        return lambda: build_attention(
            "multihead", heads=attention["heads"], score=score, score_kwargs=own, **dims
        )
    return lambda: build_attention(name, **dims, **own)


def build_classifier(
    model: Mapping[str, Any], attention: Mapping[str, Any], *, vocab_size: int, num_labels: int, pad_id: int
) -> Classifier:
    if model["name"] == "rnn":
        encoder: nn.Module = RNNEncoder(
            vocab_size, embed_dim=model["embed_dim"], hidden_dim=model["hidden_dim"],
            num_layers=model["num_layers"], cell=model["cell"], dropout=model["dropout"], pad_id=pad_id,
        )
    elif model["name"] == "transformer":
        encoder = TransformerEncoder(
            vocab_size, d_model=model["embed_dim"], ff_dim=model["ff_dim"], num_layers=model["num_layers"],
            attention=attention_factory(attention, model["embed_dim"], projected=True),
            dropout=model["dropout"], max_positions=model["max_positions"], pad_id=pad_id,
        )
    else:
        raise ValueError(f"unknown model '{model['name']}': choose one of {', '.join(MODELS)}")
    pooling = AttentionPooling(encoder.out_dim, attention_factory(attention, encoder.out_dim, projected=False)())
    return Classifier(encoder, pooling, num_labels, model["dropout"])


__all__ = ["MODELS", "AttentionPooling", "Classifier", "RNNEncoder", "TransformerEncoder", "attention_factory",
           "build_classifier"]
