"""Backbones and task models (plain PyTorch). `build_classifier` and `build_seq2seq` turn config values into
modules through the backbone registry (models/backbones.py: BACKBONES)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnbench.models.backbones import BACKBONES, Backbone, backbone
from attnbench.models.beam_search import beam_search, greedy_search
from attnbench.models.classifier import AttentionPooling, Classifier
from attnbench.models.rnn import RNNEncoder
from attnbench.models.rnn_seq2seq import RNNSeq2Seq
from attnbench.models.seq2seq import Memory, Seq2SeqModel
from attnbench.models.factory import attention_factory
from attnbench.models.transformer import TransformerEncoder
from attnbench.models.transformer_seq2seq import TransformerSeq2Seq


def build_classifier(
    model: Mapping[str, Any], attention: Mapping[str, Any], *, vocab_size: int, num_labels: int, pad_id: int
) -> Classifier:
    """The backbone's encoder (models/backbones.py) + attention pooling with the bare variant + a linear head."""
    encoder = backbone(model["name"]).encoder(model, attention, vocab_size=vocab_size, pad_id=pad_id)
    pooling = AttentionPooling(encoder.out_dim, attention_factory(attention, encoder.out_dim, projected=False)())
    return Classifier(encoder, pooling, num_labels, model["dropout"])


def build_seq2seq(
    model: Mapping[str, Any], attention: Mapping[str, Any], *, src_vocab: int, tgt_vocab: int, pad_id: int,
    shared_vocab: bool,
) -> Seq2SeqModel:
    """The encoder-decoder of `model.name` (models/backbones.py) with the configured variant as its
    (cross-)attention. `shared_vocab`: source and target share one tokenizer, so with tie_embeddings one table
    serves both."""
    if shared_vocab and src_vocab != tgt_vocab:
        raise ValueError(f"shared_vocab needs src_vocab == tgt_vocab, got {src_vocab} and {tgt_vocab}")
    return backbone(model["name"]).seq2seq(model, attention, src_vocab=src_vocab, tgt_vocab=tgt_vocab, pad_id=pad_id,
                                           shared_vocab=shared_vocab)


# `attnbench list`: each backbone's one-line description.
MODELS = {name: spec.description for name, spec in BACKBONES.items()}

__all__ = ["BACKBONES", "MODELS", "Backbone", "AttentionPooling", "Classifier", "Memory", "RNNEncoder", "RNNSeq2Seq", "Seq2SeqModel",
           "TransformerEncoder", "TransformerSeq2Seq", "attention_factory", "backbone", "beam_search", "build_classifier",
           "build_seq2seq", "greedy_search"]
