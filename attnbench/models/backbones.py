"""Backbones (`model=NAME`): one entry per backbone says how its classifier encoder and its encoder-decoder are
built and what width the attention sees, so adding a backbone is its module plus one `BACKBONES` line.

A `Backbone` holds:
  description   one line for `attnbench list`
  encoder       (model, attention, vocab_size, pad_id) -> encoder with `out_dim`, for the classifier (models/classifier.py)
  seq2seq       (model, attention, src_vocab, tgt_vocab, pad_id, shared_vocab) -> Seq2SeqModel
  width         (model) -> the width the attention works at (config validation checks heads divide it)
  width_key     the config key that sets that width (named in the message when heads do not divide it)
  projected     whether its attention always runs inside MultiHead's Q/K/V/O projections (a transformer layer),
                so `attention.heads` applies to every variant, not only to attention=multihead

`model` and `attention` are the plain-dict config blocks (`cfg.model`, `cfg.attention`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from attnbench.models.factory import attention_factory
from attnbench.models.rnn import RNNEncoder
from attnbench.models.rnn_seq2seq import RNNSeq2Seq
from attnbench.models.transformer import TransformerEncoder
from attnbench.models.transformer_seq2seq import TransformerSeq2Seq

Block = Mapping[str, Any]


@dataclass(frozen=True)
class Backbone:
    description: str
    encoder: Callable[..., nn.Module]
    seq2seq: Callable[..., nn.Module]
    width: Callable[[Block], int]
    width_key: str
    projected: bool


def _rnn_encoder(model: Block, attention: Block, *, vocab_size: int, pad_id: int) -> nn.Module:
    return RNNEncoder(vocab_size, embed_dim=model["embed_dim"], hidden_dim=model["hidden_dim"],
                      num_layers=model["num_layers"], cell=model["cell"], dropout=model["dropout"], pad_id=pad_id)


def _rnn_seq2seq(model: Block, attention: Block, *, src_vocab: int, tgt_vocab: int, pad_id: int,
                 shared_vocab: bool) -> nn.Module:
    """The bare variant (multihead when configured) attends from the decoder over the encoder states, both
    2 * hidden_dim wide."""
    return RNNSeq2Seq(
        src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_dim=model["embed_dim"], hidden_dim=model["hidden_dim"],
        attention=attention_factory(attention, _rnn_width(model), projected=False)(), num_layers=model["num_layers"],
        cell=model.get("cell", "lstm"), decoder_style=model.get("decoder_style", "bahdanau"),
        dropout=model["dropout"], tie_embeddings=bool(model.get("tie_embeddings", False)), shared_vocab=shared_vocab,
        pad_id=pad_id,
    )


def _rnn_width(model: Block) -> int:
    return 2 * model["hidden_dim"]  # a bidirectional encoder's states


def _transformer_encoder(model: Block, attention: Block, *, vocab_size: int, pad_id: int) -> nn.Module:
    return TransformerEncoder(
        vocab_size, d_model=model["embed_dim"], ff_dim=model["ff_dim"], num_layers=model["num_layers"],
        attention=attention_factory(attention, model["embed_dim"], projected=True),
        dropout=model["dropout"], max_positions=model["max_positions"], pad_id=pad_id,
    )


def _transformer_seq2seq(model: Block, attention: Block, *, src_vocab: int, tgt_vocab: int, pad_id: int,
                         shared_vocab: bool) -> nn.Module:
    """Every self- and cross-attention is the variant in Q/K/V/O projections."""
    return TransformerSeq2Seq(
        src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=model["embed_dim"], ff_dim=model["ff_dim"],
        num_layers=model["num_layers"], attention=attention_factory(attention, model["embed_dim"], projected=True),
        dropout=model["dropout"], max_positions=model["max_positions"],
        tie_embeddings=bool(model.get("tie_embeddings", False)), tied_output_scale=model.get("tied_output_scale"),
        shared_vocab=shared_vocab, pad_id=pad_id,
    )


BACKBONES: dict[str, Backbone] = {
    "rnn": Backbone("BiLSTM/BiGRU encoder + attention pooling with a learned query (Jain & Wallace, 2019)",
                    _rnn_encoder, _rnn_seq2seq, _rnn_width, "model.hidden_dim", projected=False),
    "transformer": Backbone("pre-LN transformer encoder with the variant as self-attention + attention pooling",
                            _transformer_encoder, _transformer_seq2seq, lambda model: model["embed_dim"],
                            "model.embed_dim", projected=True),
}


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown model '{name}': choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]
