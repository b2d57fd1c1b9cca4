"""Sequence classifier: encoder -> attention pooling with a learned query -> linear head.

The pooling follows Jain & Wallace (2019): the attention weights over tokens are the model's
"explanation" that attention-map analyses read. Shapes: B batch, T tokens, D encoder width, C classes.
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionPooling(nn.Module):
    """A learned query attends over the encoder states; returns one vector per sequence."""

    def __init__(self, dim: int, attention: nn.Module) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) / dim**0.5)
        self.attn = attention

    def forward(
        self, states: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self.query.expand(states.size(0), -1, -1)  # (B, 1, D)
        pooled, weights = self.attn(
            query, states, states, mask=mask[:, None, :], need_weights=need_weights, causal=False, prepared=False
        )  # (B, 1, D), (B, H, 1, T) | None
        return pooled.squeeze(1), weights  # (B, D), (B, H, 1, T) | None


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, pooling: AttentionPooling, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.out_dim, num_labels))

    def attention_modules(self) -> dict[str, str]:
        """{map name: submodule path} of every attention that makes one of forward's maps (attention/override.py)."""
        encoder = getattr(self.encoder, "attention_modules", dict)()
        return {**{name: f"encoder.{path}" for name, path in encoder.items()}, "pooling": "pooling.attn"}

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (B, C) and, when need_weights, every attention map by name (else an empty dict)."""
        states, maps = self.encoder(input_ids, mask, need_weights)  # (B, T, D)
        pooled, weights = self.pooling(states, mask, need_weights)  # (B, D)
        if weights is not None:
            maps["pooling"] = weights
        return self.head(pooled), maps
