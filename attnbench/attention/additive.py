"""Additive attention (Bahdanau et al., 2015): score = vᵀ tanh(W_q q + W_k k).

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, A hidden (score) width,
H heads (1 here).
"""

from __future__ import annotations

import functools
import os
from typing import ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from attnbench.attention import functional as AF


@functools.cache
def _triton_kernel():
    """The fused kernel's entry point, or None where Triton is not installed (CPU-only installs)."""
    try:
        from attnbench.attention.additive_triton import additive_attention
    except ImportError:
        return None
    return additive_attention


class Additive(nn.Module):
    description: ClassVar[str] = "Bahdanau additive: score = vᵀ tanh(W_q q + W_k k)"

    # The fast path scores queries in chunks whose (B, chunk, Tk, A) tensor stays under this many elements
    # (2**24 fp32 = 64 MiB). An instance attribute of the same name overrides it (the tests force chunking).
    chunk_elements: int = 2**24
    # The fused Triton kernel (additive_triton.py) is the fast path on CUDA (and on CPU under TRITON_INTERPRET=1)
    # when Triton is installed and no dropout is active; otherwise the chunked PyTorch path below.
    use_kernel: bool = True

    def __init__(
        self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0, hidden_dim: int | None = None
    ) -> None:
        super().__init__()
        hidden_dim = key_dim if hidden_dim is None else hidden_dim
        if hidden_dim < 1:
            raise ValueError(f"additive attention hidden_dim must be positive, got {hidden_dim}")
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim)  # one bias for the sum is enough
        # No bias in v: it would shift every score of a row equally, which softmax ignores (and it would never learn).
        self.v = nn.Linear(hidden_dim, 1, bias=False)
        self.dropout = AF.check_dropout(dropout)
        self.out_dim = value_dim

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, Tq, A) projected queries x (B, Tk, A) projected keys -> (B, Tq, Tk) scores."""
        return self.v(torch.tanh(q[:, :, None, :] + k[:, None, :, :])).squeeze(-1)  # (B, Tq, Tk)

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W_k k, the query-independent half of every score: a decoder computes it once per source sequence
        (or once per new key, growing the cache along dim 1) instead of at every step."""
        return self.W_k(key), value  # (B, Tk, A), (B, Tk, Dv)

    def mix(self, weights: torch.Tensor, value: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        """The output for given weights (B, 1, Tq, Tk) over values (B, Tk, Dv): what forward returns with its
        own weights in eval mode, so diagnostics can swap the weights (uniform, permuted) and keep the rest.
        `prepare` hands values back unchanged, so prepared and raw values are the same here."""
        return AF.mix_values(weights, value)  # (B, Tq, Dv)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
        need_weights: bool = False, causal: bool = False, prepared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = AF.normalize_mask(mask, query, key, causal=causal)  # (B, 1|Tq, Tk)
        keep = AF.keep_mask(mask, query.size(1), key.size(1), query.device, causal)  # (B|1, 1|Tq, Tk)
        k, value = (key, value) if prepared else self.prepare(key, value)  # (B, Tk, A), (B, Tk, Dv)
        q = self.W_q(query)  # (B, Tq, A)
        if not need_weights:
            kernel = self._kernel(q)
            if kernel is not None:
                return kernel(q, k, self.v.weight.view(-1), value, keep), None  # (B, Tq, Dv)
            return self._chunked(q, k, value, keep), None  # (B, Tq, Dv)
        scores = self._scores(q, k)  # (B, Tq, Tk)
        out, weights = AF.attend(scores, value, keep, self.dropout, self.training)  # (B, Tq, Dv)
        return out, weights.unsqueeze(1)  # (B, 1, Tq, Tk)

    def _kernel(self, q: torch.Tensor):
        if not self.use_kernel or (self.training and self.dropout > 0):
            return None
        kernel = _triton_kernel()
        if kernel is None or not (q.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
            return None
        return kernel

    def _chunked(
        self, q: torch.Tensor, k: torch.Tensor, value: torch.Tensor, keep: torch.Tensor | None
    ) -> torch.Tensor:
        """The explicit path's output, one chunk of queries at a time: never the whole (B, Tq, Tk, A) tensor."""
        B, Tq, A = q.shape
        chunk = max(1, self.chunk_elements // max(1, B * k.size(1) * A))
        # Under autograd every chunk's tanh output would be saved for backward, which adds up to the whole
        # tensor again; so when it does not fit the budget in one chunk, each chunk is checkpointed and
        # recomputed in backward (bounded memory for ~1.5-2x time). The checkpoint replays the RNG state,
        # so dropout masks match between forward and recomputation.
        recompute = Tq > chunk and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, value))
        outs = []
        for i in range(0, Tq, chunk):
            q_i = q[:, i:i + chunk]  # (B, c, A)
            keep_i = keep if keep is None or keep.size(1) == 1 else keep[:, i:i + chunk]  # (B|1, 1|c, Tk)
            if recompute:
                outs.append(checkpoint(self._attend_chunk, q_i, k, value, keep_i, use_reentrant=False))
            else:
                outs.append(self._attend_chunk(q_i, k, value, keep_i))  # (B, c, Dv)
        return torch.cat(outs, dim=1)  # (B, Tq, Dv)

    def _attend_chunk(
        self, q: torch.Tensor, k: torch.Tensor, value: torch.Tensor, keep: torch.Tensor | None
    ) -> torch.Tensor:
        return AF.attend(self._scores(q, k), value, keep, self.dropout, self.training)[0]  # (B, c, Dv)
