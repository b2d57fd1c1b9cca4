"""Luong dot attention (Luong et al., 2015): score = q · k, no scaling and no parameters.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads (1 here).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from attnbench.attention import functional as AF


class Dot(nn.Module):
    description: ClassVar[str] = "Luong dot: score = q · k (unscaled, no parameters)"

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if query_dim != key_dim:
            raise ValueError(
                f"dot attention needs query_dim == key_dim, got {query_dim} and {key_dim}: "
                "use 'general' (learned W maps queries into key space) or 'additive' for different widths"
            )
        self.dropout = AF.check_dropout(dropout)
        self.out_dim = value_dim

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nothing to cache: keys and values are used as given."""
        return key, value  # (B, Tk, Dk), (B, Tk, Dv)

    def mix(self, weights: torch.Tensor, value: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        """The output for given weights (B, 1, Tq, Tk) over values (B, Tk, Dv): what forward returns with its
        own weights in eval mode, so diagnostics can swap the weights (uniform, permuted) and keep the rest.
        `prepare` hands values back unchanged, so prepared and raw values are the same here."""
        return AF.mix_values(weights, value)  # (B, Tq, Dv)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
        need_weights: bool = False, causal: bool = False, prepared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # `prepared` changes nothing: prepare is the identity, so prepared and raw keys are the same tensors.
        mask = AF.normalize_mask(mask, query, key, causal=causal)  # (B, 1|Tq, Tk)
        return AF.dot_product_attention(
            query, key, value, mask, causal=causal, scale=1.0, dropout=self.dropout, training=self.training,
            need_weights=need_weights,
        )  # (B, Tq, Dv), (B, 1, Tq, Tk) | None
