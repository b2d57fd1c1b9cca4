"""Recurrent encoder-decoder with attention: Bahdanau et al. (2015) or Luong et al. (2015) decoder.

The encoder is the classifier's bidirectional `RNNEncoder` (padding never enters a state). Its
states are projected to the decoder width D = 2 * hidden_dim and serve as keys = values, so every variant,
dot products included, fits; the decoder starts from the final encoder states through a bridge
(Linear + tanh). The decoder steps one token at a time in both teacher forcing and generation (the
attention of step t depends on the state of step t - 1), so incremental decoding is the same computation.

Shapes: B batch, S source tokens, T target tokens, E embedding size, D = 2 * hidden_dim decoder width,
A the attention's output width (D for every built-in), L decoder layers, F output-feature width, V target
vocabulary, H attention heads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from attnbench.models.rnn import CELLS, RNNEncoder, run_rnn
from attnbench.models.seq2seq import Maps, Memory, OutputLayer, reorder_rows

DecoderStyle = Literal["bahdanau", "luong"]


@dataclass
class RNNState:
    hidden: torch.Tensor  # (B, L, D) batch first, unlike nn.GRU/nn.LSTM, so reorder_rows works on dim 0
    cell: torch.Tensor | None  # (B, L, D) LSTM cell state; None for the GRU
    feed: torch.Tensor | None  # (B, D) Luong's attentional vector h~_{t-1} (input feeding); None for Bahdanau
    keys: torch.Tensor  # (B, S, ·) cross-attention keys through `prepare`, once per source sentence
    values: torch.Tensor  # (B, S, ·)
    mask: torch.Tensor  # (B, S) bool


def _run_cell(
    rnn: nn.Module, x: torch.Tensor, state: RNNState
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One time step of a (multi-layer) GRU/LSTM: x (B, 1, in) -> top output (B, 1, D), new hidden, new cell."""
    h = state.hidden.transpose(0, 1).contiguous()  # (L, B, D)
    if state.cell is None:
        out, h = run_rnn(rnn, x, h)
        return out, h.transpose(0, 1), None
    out, (h, c) = run_rnn(rnn, x, (h, state.cell.transpose(0, 1).contiguous()))
    return out, h.transpose(0, 1), c.transpose(0, 1)  # (B, 1, D), (B, L, D), (B, L, D)


class BahdanauDecoder(nn.Module):
    """Attend from the previous state s_{t-1}; cell input [emb(y_{t-1}); c_t]; features [s_t; c_t; emb(y_{t-1})].

    (Bahdanau et al. 2015 feed the features through a maxout layer; a linear output layer reads them here.)
    """

    def __init__(self, rnn: nn.Module, attention: nn.Module, *, embed_dim: int, width: int) -> None:
        super().__init__()
        self.rnn, self.attn = rnn, attention
        self.feature_dim = width + attention.out_dim + embed_dim

    def initial_feed(self, hidden: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(
        self, emb: torch.Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[torch.Tensor, RNNState, torch.Tensor | None]:
        """emb (B, E) -> features (B, F), next state, weights (B, H, 1, S) | None."""
        query = state.hidden[:, -1:, :]  # (B, 1, D): top layer of s_{t-1}
        context, weights = self.attn(
            query, state.keys, state.values, state.mask[:, None, :], need_weights=need_weights, causal=False,
            prepared=True,
        )  # (B, 1, A)
        out, hidden, cell = _run_cell(self.rnn, torch.cat([emb[:, None, :], context], dim=-1), state)  # (B, 1, D)
        features = torch.cat([out, context, emb[:, None, :]], dim=-1).squeeze(1)  # (B, F)
        return features, dataclasses.replace(state, hidden=hidden, cell=cell), weights


class LuongDecoder(nn.Module):
    """Cell input [emb(y_{t-1}); h~_{t-1}] (input feeding); attend from the new state h_t;
    h~_t = tanh(W_c [c_t; h_t]); features h~_t."""

    def __init__(self, rnn: nn.Module, attention: nn.Module, *, embed_dim: int, width: int) -> None:
        super().__init__()
        self.rnn, self.attn = rnn, attention
        self.combine = nn.Linear(attention.out_dim + width, width)  # W_c
        self.feature_dim = width

    def initial_feed(self, hidden: torch.Tensor) -> torch.Tensor | None:
        return hidden.new_zeros(hidden.size(0), hidden.size(-1))  # (B, D): no attentional vector before step 1

    def forward(
        self, emb: torch.Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[torch.Tensor, RNNState, torch.Tensor | None]:
        """emb (B, E) -> features (B, F), next state, weights (B, H, 1, S) | None."""
        assert state.feed is not None
        x = torch.cat([emb, state.feed], dim=-1)[:, None, :]  # (B, 1, E + D)
        out, hidden, cell = _run_cell(self.rnn, x, state)  # (B, 1, D)
        context, weights = self.attn(
            out, state.keys, state.values, state.mask[:, None, :], need_weights=need_weights, causal=False,
            prepared=True,
        )  # (B, 1, A)
        feed = torch.tanh(self.combine(torch.cat([context, out], dim=-1))).squeeze(1)  # (B, D)
        return feed, dataclasses.replace(state, hidden=hidden, cell=cell, feed=feed), weights


DECODERS: dict[str, type[BahdanauDecoder] | type[LuongDecoder]] = {"bahdanau": BahdanauDecoder, "luong": LuongDecoder}


class RNNSeq2Seq(nn.Module):
    """Bidirectional GRU/LSTM encoder -> attention -> GRU/LSTM decoder of width 2 * hidden_dim."""

    max_target_positions: int | None = None  # no position table: any length decodes

    def __init__(
        self, *, src_vocab: int, tgt_vocab: int, embed_dim: int, hidden_dim: int, attention: nn.Module,
        num_layers: int = 1, cell: str = "lstm", decoder_style: DecoderStyle = "bahdanau", dropout: float = 0.0,
        tie_embeddings: bool = False, shared_vocab: bool = False, pad_id: int = 0,
    ) -> None:
        super().__init__()
        if decoder_style not in DECODERS:
            raise ValueError(f"unknown decoder_style '{decoder_style}': choose one of {', '.join(DECODERS)}")
        width = 2 * hidden_dim
        self.encoder = RNNEncoder(
            src_vocab, embed_dim=embed_dim, hidden_dim=hidden_dim, num_layers=num_layers, cell=cell,
            dropout=dropout, pad_id=pad_id,
        )
        self.memory_proj = nn.Linear(width, width)  # encoder states -> keys = values at the decoder width
        self.bridge = nn.Linear(width, num_layers * width)  # final encoder states -> every decoder layer's h_0
        # With a shared vocabulary and tying, one table embeds source, target and scores the output.
        share = tie_embeddings and shared_vocab
        self.embed = self.encoder.embed if share else nn.Embedding(tgt_vocab, embed_dim, padding_idx=pad_id)
        attn_in = attention.out_dim if decoder_style == "bahdanau" else width
        rnn = CELLS[cell](
            embed_dim + attn_in, width, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.decoder = DECODERS[decoder_style](rnn, attention, embed_dim=embed_dim, width=width)
        self.output = OutputLayer(self.decoder.feature_dim, tgt_vocab, self.embed if tie_embeddings else None)
        self.dropout = nn.Dropout(dropout)
        self.num_layers, self.width, self.hidden_dim = num_layers, width, hidden_dim
        self.is_lstm = cell == "lstm"

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        states, _ = self.encoder(src, src_mask)  # (B, S, D)
        lengths = src_mask.sum(dim=1).clamp(min=1)  # (B,)
        rows = torch.arange(src.size(0), device=src.device)
        # The top layer's final states of both directions: forward at the last real token, backward at the first.
        last_forward = states[rows, lengths - 1, : self.hidden_dim]  # (B, D/2)
        first_backward = states[:, 0, self.hidden_dim:]  # (B, D/2)
        final = torch.cat([last_forward, first_backward], dim=-1)  # (B, D)
        return Memory(states=self.memory_proj(states), mask=src_mask, final=final)

    def start(self, memory: Memory) -> RNNState:
        assert memory.final is not None
        B = memory.final.size(0)
        hidden = torch.tanh(self.bridge(memory.final)).view(B, self.num_layers, self.width)  # (B, L, D)
        # Only h_0 goes through the bridge; the LSTM cell state starts empty.
        cell = torch.zeros_like(hidden) if self.is_lstm else None
        keys, values = self.decoder.attn.prepare(memory.states, memory.states)  # (B, S, ·)
        return RNNState(hidden, cell, self.decoder.initial_feed(hidden), keys, values, memory.mask)

    def step(
        self, tokens: torch.Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[torch.Tensor, RNNState, Maps]:
        """Feed the last emitted tokens (B,); logits (B, V) for the next one."""
        emb = self.dropout(self.embed(tokens))  # (B, E)
        features, state, weights = self.decoder(emb, state, need_weights)  # (B, F)
        maps = {} if weights is None else {"cross_attention.layer0": weights}  # (B, H, 1, S)
        return self.output(self.dropout(features)), state, maps

    def reorder(self, state: RNNState | Memory, index: torch.Tensor) -> RNNState | Memory:
        return reorder_rows(state, index)

    def attention_modules(self) -> dict[str, str]:
        """{map name: submodule path} of the attention behind the decoder's map (attention/override.py)."""
        return {"cross_attention.layer0": "decoder.attn"}

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, Maps]:
        """Teacher forcing: logits (B, T, V) for tgt_in shifted by one. tgt_mask is not needed here (a recurrent
        decoder is causal by construction; logits at padded positions are for the loss to ignore)."""
        state = self.start(self.encode(src, src_mask))
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        features, weights = [], []
        for t in range(tgt_in.size(1)):
            feature, state, w = self.decoder(emb[:, t], state, need_weights)  # (B, F)
            features.append(feature)
            weights.append(w)
        logits = self.output(self.dropout(torch.stack(features, dim=1)))  # (B, T, V)
        maps = {}
        if need_weights and all(w is not None for w in weights):
            maps["cross_attention.layer0"] = torch.cat(weights, dim=2)  # (B, H, T, S)
        return logits, maps


__all__ = ["BahdanauDecoder", "LuongDecoder", "RNNSeq2Seq", "RNNState"]
