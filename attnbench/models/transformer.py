"""Pre-LN transformer encoder whose self-attention is any attention variant.

Shapes: B batch, T tokens, D model width (d_model), F feed-forward width.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

AttentionFactory = Callable[[], nn.Module]


# Initial scales (fairseq; Vaswani et al. 2017). Tokens are N(0, d^-1/2), so after the forward's √d scale
# every component has unit scale, and a tied output layer gives unit-scale logits: a near-uniform first
# prediction (nn.Embedding's N(0, 1) put the tied initial loss at ~250 nats for d = 256, V = 8000, log V = 9).
# Learned positions are N(0, 1), as loud as the scaled tokens, so word order is not drowned out from the start.


def token_embedding(vocab_size: int, d_model: int, pad_id: int) -> nn.Embedding:
    """A (vocab_size, D) table, N(0, d^-1/2), its padding row zero; scale lookups by √d_model."""
    embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
    nn.init.normal_(embed.weight, std=d_model**-0.5)
    with torch.no_grad():
        embed.weight[pad_id].zero_()
    return embed


def position_embedding(max_positions: int, d_model: int) -> nn.Embedding:
    """A learned (max_positions, D) table, N(0, 1): the scale of a √d-scaled `token_embedding` lookup."""
    positions = nn.Embedding(max_positions, d_model)
    nn.init.normal_(positions.weight, std=1.0)
    return positions


class EncoderLayer(nn.Module):
    """x + Attn(LN(x)); x + FF(LN(x)) (pre-LN: stable without warm-up tricks, Xiong et al. 2020)."""

    def __init__(self, d_model: int, ff_dim: int, attention: nn.Module, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = attention
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm1(x)
        attended, weights = self.attn(
            h, h, h, mask=mask, need_weights=need_weights, causal=False, prepared=False
        )  # (B, T, D), (B, H, T, T) | None
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ff(self.norm2(x)))
        return x, weights


class TransformerEncoder(nn.Module):
    def __init__(
        self, vocab_size: int, *, d_model: int, ff_dim: int, num_layers: int, attention: AttentionFactory,
        dropout: float = 0.1, max_positions: int = 512, pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.embed = token_embedding(vocab_size, d_model, pad_id)
        # The source token embeddings, where attributions are taken (attnbench explain): a point of its own, as
        # a tied decoder may look tokens up in the same `embed`.
        self.token_embeddings = nn.Identity()
        self.positions = position_embedding(max_positions, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, ff_dim, attention(), dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(d_model)
        self.max_positions = max_positions
        self.out_dim = d_model

    def attention_modules(self) -> dict[str, str]:
        """{map name: submodule path} of the attentions behind forward's maps (attention/override.py)."""
        return {f"self_attention.layer{i}": f"layers.{i}.attn" for i in range(len(self.layers))}

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        T = input_ids.size(1)
        if T > self.max_positions:
            raise ValueError(
                f"sequence of {T} tokens is longer than model.max_positions={self.max_positions}: "
                "raise model.max_positions or lower task.max_length"
            )
        pos = torch.arange(T, device=input_ids.device)
        x = self.dropout(self.token_embeddings(self.embed(input_ids)) * self.scale + self.positions(pos))  # (B, T, D)
        key_mask = mask[:, None, :]  # (B, 1, T): every query sees the real tokens
        maps: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, key_mask, need_weights)
            if weights is not None:
                maps[f"self_attention.layer{i}"] = weights  # (B, H, T, T)
        return self.norm(x), maps
