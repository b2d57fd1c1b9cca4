"""Backbones and task models (plain PyTorch). `build_classifier` turns config values into modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from attnbench.attention import build_attention
from attnbench.models.beam_search import beam_search, greedy_search
from attnbench.models.classifier import AttentionPooling, Classifier
from attnbench.models.rnn import RNNEncoder
from attnbench.models.rnn_seq2seq import RNNSeq2Seq
from attnbench.models.seq2seq import Memory, Seq2SeqModel
from attnbench.models.transformer import TransformerEncoder
from attnbench.models.transformer_seq2seq import TransformerSeq2Seq

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


def build_seq2seq(
    model: Mapping[str, Any], attention: Mapping[str, Any], *, src_vocab: int, tgt_vocab: int, pad_id: int,
    shared_vocab: bool,
) -> RNNSeq2Seq | TransformerSeq2Seq:
    """The encoder-decoder of `model.name` with the configured variant as its (cross-)attention.

    rnn: the bare variant (multihead when configured) attends from the decoder over the encoder states, both
    2 * hidden_dim wide. transformer: every self- and cross-attention is the variant in Q/K/V/O projections.
    `shared_vocab`: source and target share one tokenizer, so with tie_embeddings one table serves both.
    """
    tie = bool(model.get("tie_embeddings", False))
    if shared_vocab and src_vocab != tgt_vocab:
        raise ValueError(f"shared_vocab needs src_vocab == tgt_vocab, got {src_vocab} and {tgt_vocab}")
    if model["name"] == "rnn":
        width = 2 * model["hidden_dim"]
        return RNNSeq2Seq(
            src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_dim=model["embed_dim"], hidden_dim=model["hidden_dim"],
            attention=attention_factory(attention, width, projected=False)(), num_layers=model["num_layers"],
            cell=model.get("cell", "lstm"), decoder_style=model.get("decoder_style", "bahdanau"),
            dropout=model["dropout"], tie_embeddings=tie, shared_vocab=shared_vocab, pad_id=pad_id,
        )
    if model["name"] == "transformer":
        return TransformerSeq2Seq(
            src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=model["embed_dim"], ff_dim=model["ff_dim"],
            num_layers=model["num_layers"], attention=attention_factory(attention, model["embed_dim"], projected=True),
            dropout=model["dropout"], max_positions=model["max_positions"], tie_embeddings=tie,
            shared_vocab=shared_vocab, pad_id=pad_id,
        )
    raise ValueError(f"unknown model '{model['name']}': choose one of {', '.join(MODELS)}")


__all__ = ["MODELS", "AttentionPooling", "Classifier", "Memory", "RNNEncoder", "RNNSeq2Seq", "Seq2SeqModel",
           "TransformerEncoder", "TransformerSeq2Seq", "attention_factory", "beam_search", "build_classifier",
           "build_seq2seq", "greedy_search"]
