"""Multi-head attention (Vaswani et al., 2017) around any score function from the registry.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads, Dh the head width (`head_dim`;
Dq // H by default, as in the original transformer; set it to vary d_k without changing d_model),
Do the score module's out_dim (Dh for every built-in), X/Xv the widths of the score's prepared keys/values
(Dh for every built-in but additive, whose prepared keys are its hidden width A).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from attnbench.attention import functional as AF
from attnbench.attention.interface import accepts
from attnbench.attention.registry import build_attention


class MultiHead(nn.Module):
    description: ClassVar[str] = "H heads with their own Q/K/V/O projections around any score (score=NAME)"

    def __init__(
        self, query_dim: int, key_dim: int, value_dim: int, *, heads: int = 8, score: str = "scaled_dot",
        dropout: float = 0.0, bias: bool = True, score_kwargs: dict[str, Any] | None = None,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        d_model = query_dim
        if heads < 1:
            raise ValueError(f"heads={heads}: use at least one head")
        if head_dim is None:
            if d_model % heads:
                raise ValueError(f"d_model {d_model} is not divisible by heads {heads}: choose heads that divide "
                                 "d_model, or set head_dim")
            head_dim = d_model // heads
        elif head_dim < 1:
            raise ValueError(f"head_dim={head_dim}: use a positive head width, or None for d_model // heads")
        self.heads, self.head_dim, self.score_name = heads, head_dim, score
        inner = heads * head_dim  # d_model unless head_dim was given
        self.q_proj = nn.Linear(query_dim, inner, bias=bias)
        self.k_proj = nn.Linear(key_dim, inner, bias=bias)
        self.v_proj = nn.Linear(value_dim, inner, bias=bias)
        # One score module shared by all heads (heads are folded into the batch): the per-head Q/K/V
        # projections already make the heads differ, as in the original transformer. Dropout lives in it.
        self.score = build_attention(
            score, query_dim=self.head_dim, key_dim=self.head_dim, value_dim=self.head_dim, dropout=dropout,
            **(score_kwargs or {}),
        )
        # heads * score.out_dim is heads * head_dim for every built-in; a custom score may return another width.
        self.out_proj = nn.Linear(heads * self.score.out_dim, query_dim, bias=bias)
        self.dropout = AF.check_dropout(dropout)
        self.out_dim = query_dim

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The K/V projections, per head and through the score's own `prepare`, laid out (B, Tk, H, X) so that
        batch stays at dim 0 and time at dim 1: a decoder grows the cache with torch.cat(dim=1) and reorders
        beams with index_select(0) without knowing about heads."""
        B, Tk, H = key.size(0), key.size(1), self.heads
        k = AF.fold_heads(self.k_proj(key).view(B, Tk, H, -1))  # (B*H, Tk, Dh)
        v = AF.fold_heads(self.v_proj(value).view(B, Tk, H, -1))  # (B*H, Tk, Dh)
        # A custom score without its own `prepare` returns k, v unchanged: then only these projections are cached.
        k, v = self.score.prepare(k, v)  # (B*H, Tk, X), (B*H, Tk, Xv)
        return AF.unfold_heads(k, B), AF.unfold_heads(v, B)  # (B, Tk, H, X), (B, Tk, H, Xv)

    def mix(self, weights: torch.Tensor, value: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        """The output for given per-head weights (B, H, Tq, Tk) over raw values (B, Tk, Dv), or over values out of
        `prepare` (B, Tk, H, Xv) when `prepared`: forward's value path (V projection, the score's own mix per
        head, output projection) in eval mode; a query row whose weights are all zero attended to nothing and is
        zero, as in forward."""
        (B, H, Tq, Tk), score_mix = weights.shape, getattr(self.score, "mix", None)
        if H != self.heads:
            raise ValueError(f"weights have {H} heads, this MultiHead has {self.heads}: pass (B, H, Tq, Tk) weights")
        if score_mix is None:
            raise NotImplementedError(f"the score {type(self.score).__qualname__} has no mix(weights, value): add "
                                      "one to swap MultiHead's weights (attnbench explain's counterfactuals need it)")
        if prepared:  # per head through the score's own prepare: tell its mix so (a mix without the keyword
            # belongs to a score whose prepare leaves values as they are)
            extra = {"prepared": True} if accepts(score_mix, "prepared") else {}
            out = score_mix(weights.reshape(B * H, 1, Tq, Tk), AF.fold_heads(value), **extra)  # (B*H, Tq, Do)
        else:
            v = AF.fold_heads(self.v_proj(value).view(B, Tk, H, -1))  # (B*H, Tk, Dh)
            out = score_mix(weights.reshape(B * H, 1, Tq, Tk), v)  # (B*H, Tq, Do)
        out = self.out_proj(AF.unfold_heads(out, B).reshape(B, Tq, -1))  # (B, Tq, Dq)
        empty = weights.sum(dim=(1, -1))[..., None] == 0  # (B, Tq, 1)
        return out.masked_fill(empty, 0.0)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
        need_weights: bool = False, causal: bool = False, prepared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not prepared:
            key, value = self.prepare(key, value)  # (B, Tk, H, X), (B, Tk, H, Xv)
        elif key.dim() != 4 or value.dim() != 4:
            raise ValueError(
                f"prepared keys/values must come from MultiHead.prepare, shaped (B, Tk, H, X), got key "
                f"{tuple(key.shape)} and value {tuple(value.shape)}: pass raw ones with prepared=False"
            )
        mask = AF.normalize_mask(mask, query, key, causal=causal)  # (B, 1|Tq, Tk)
        (B, Tq, _), Tk, H = query.shape, key.size(1), self.heads
        q = AF.fold_heads(self.q_proj(query).view(B, Tq, H, -1))  # (B*H, Tq, Dh)
        k, v = AF.fold_heads(key), AF.fold_heads(value)  # (B*H, Tk, X), (B*H, Tk, Xv)
        head_mask = None
        if mask is not None:
            head_mask = mask[:, None].expand(B, H, -1, Tk).reshape(B * H, -1, Tk)  # (B*H, 1|Tq, Tk)
        out, weights = self.score(
            q, k, v, head_mask, need_weights=need_weights, causal=causal, prepared=True  # k, v went through prepare
        )  # (B*H, Tq, Do), (B*H, 1, Tq, Tk) | None
        out = AF.unfold_heads(out, B).reshape(B, Tq, -1)  # (B, Tq, H*Do)
        out = self.out_proj(out)  # (B, Tq, Dq)
        if mask is not None:
            # A query that may see no key attended to nothing; without this the output bias would leak
            # into its row, and the contract says such rows are zero.
            keep = AF.keep_mask(mask, Tq, Tk, query.device, causal)  # (B, 1|Tq, Tk)
            empty = ~keep.any(dim=-1, keepdim=True)  # (B, 1|Tq, 1)
            out = out.masked_fill(empty, 0.0)
        if weights is not None:
            weights = weights.reshape(B, -1, Tq, Tk)  # (B, H, Tq, Tk)
        return out, weights
