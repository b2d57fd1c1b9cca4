"""Helpers every variant shares: mask normalisation, causal merge, masked softmax, guarded SDPA, head layout.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads, Dh head width.
Masks are bool, True = keep, shaped (B, 1|Tq, Tk): 1 broadcasts one key-padding row over every query.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_dropout(dropout: float) -> float:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"attention dropout must be in [0, 1), got {dropout}")
    return float(dropout)


def normalize_mask(
    mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor, *, causal: bool = False
) -> torch.Tensor | None:
    """Validate the inputs' mask and return it as bool (B, 1|Tq, Tk), or None.

    Also rejects `causal` when Tq != Tk: which keys a query may see is ambiguous then (aligned at the
    start or at the end?), so we refuse rather than guess.
    """
    B, Tq, Tk = query.size(0), query.size(1), key.size(1)
    if causal and Tq != Tk:
        raise ValueError(f"causal attention needs as many queries as keys, got Tq={Tq} and Tk={Tk}")
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        if mask.is_floating_point():
            # A float mask is most likely additive (-inf = drop), whose meaning is the opposite of ours.
            raise TypeError(f"attention mask must be bool (True = keep), got {mask.dtype}: pass mask.bool()")
        mask = mask != 0  # integer 0/1 masks, as tokenizers produce them
    if mask.dim() != 3 or mask.size(0) not in (1, B) or mask.size(1) not in (1, Tq) or mask.size(2) != Tk:
        raise ValueError(
            f"attention mask must have shape (B, 1 or Tq, Tk) = ({B}, 1 or {Tq}, {Tk}), got {tuple(mask.shape)}: "
            "a key-padding mask (B, Tk) becomes mask[:, None, :]"
        )
    return mask.to(query.device).expand(B, -1, -1)  # (B, 1|Tq, Tk)


def merge_causal(mask: torch.Tensor | None, Tq: int, Tk: int, device: torch.device) -> torch.Tensor:
    """The mask with key j > query i also dropped: (B, Tq, Tk), or (1, Tq, Tk) when `mask` is None."""
    causal = torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril()  # (Tq, Tk)
    return causal[None] if mask is None else mask & causal  # (B|1, Tq, Tk)


def keep_mask(mask: torch.Tensor | None, Tq: int, Tk: int, device: torch.device, causal: bool) -> torch.Tensor | None:
    """The effective keep-mask of the explicit paths: `mask` merged with the causal triangle if asked."""
    return merge_causal(mask, Tq, Tk, device) if causal else mask


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim where masked keys get exactly 0 and fully masked rows are all 0.

    The fill value is the dtype's finite minimum, not -inf: a row of -inf makes softmax return NaN, and
    its backward NaN too, even if the NaNs are overwritten afterwards.
    """
    if keep is None:
        return scores.softmax(dim=-1)
    filled = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    # A fully masked row comes out uniform here; zeroing every masked entry turns it into zeros
    # and also makes the masked entries exactly 0 (exp of min - max underflows, but say so explicitly).
    return filled.softmax(dim=-1).masked_fill(~keep, 0.0)


def attend(
    scores: torch.Tensor, value: torch.Tensor, keep: torch.Tensor | None, dropout: float, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit path tail: (output (..., Tq, Dv), pre-dropout weights (..., Tq, Tk))."""
    weights = masked_softmax(scores, keep)  # (B, Tq, Tk)
    out = F.dropout(weights, dropout, training) @ value  # (B, Tq, Dv)
    return out, weights


def mix_values(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A single-head variant's output for given weights: (B, 1, Tq, Tk) @ (B, Tk, Dv) -> (B, Tq, Dv)."""
    if weights.dim() != 4 or weights.size(1) != 1:
        raise ValueError(f"weights must be (B, 1, Tq, Tk) for a single-head variant, got {tuple(weights.shape)}")
    return weights[:, 0].to(value.dtype) @ value


def sdpa(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, *,
    causal: bool, scale: float | None, dropout: float, training: bool,
) -> torch.Tensor:
    """`F.scaled_dot_product_attention` on (B, Tq, D) inputs with our mask contract.

    `mask` is the normalised (B, 1|Tq, Tk) mask (not yet merged with `causal`). SDPA returns NaN for a
    query that may see no key, so such rows are unmasked for the kernel and zeroed afterwards; their
    gradient is then exactly zero instead of NaN.
    """
    dropout_p = dropout if training else 0.0
    if mask is None:
        # Causal alone never empties a row (Tq == Tk: query i sees key i), so the fused causal kernel is safe.
        return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout_p, is_causal=causal, scale=scale)
    keep = keep_mask(mask, query.size(-2), key.size(-2), query.device, causal)  # (B, 1|Tq, Tk)
    empty = ~keep.any(dim=-1, keepdim=True)  # (B, 1|Tq, 1)
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=keep | empty, dropout_p=dropout_p, scale=scale
    )  # (B, Tq, Dv)
    return out.masked_fill(empty, 0.0)


def dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, *,
    causal: bool, scale: float | None, dropout: float, training: bool, need_weights: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """score = scale * q·k (scale None: 1/√Dk) by either path: the fused SDPA kernel when no weights are
    wanted, else the explicit product that returns them. `mask` is normalised, not merged with `causal`.
    Returns (output (B, Tq, Dv), weights (B, 1, Tq, Tk) or None).
    """
    if not need_weights:
        return sdpa(query, key, value, mask, causal=causal, scale=scale, dropout=dropout, training=training), None
    keep = keep_mask(mask, query.size(-2), key.size(-2), query.device, causal)  # (B|1, 1|Tq, Tk)
    scale = 1.0 / math.sqrt(key.size(-1)) if scale is None else scale  # SDPA's default, the same number
    scores = (query @ key.transpose(-2, -1)) * scale  # (B, Tq, Tk)
    out, weights = attend(scores, value, keep, dropout, training)  # (B, Tq, Dv)
    return out, weights.unsqueeze(1)  # (B, 1, Tq, Tk)


def fold_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H, X) -> (B*H, T, X): heads folded into the batch, so a single-head score runs on all of them."""
    B, T, H, X = x.shape
    return x.transpose(1, 2).reshape(B * H, T, X)  # (B*H, T, X)


def unfold_heads(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*H, T, X) -> (B, T, H, X), the inverse of `fold_heads`: time back at dim 1 (a view, no copy)."""
    _, T, X = x.shape
    return x.view(batch, -1, T, X).transpose(1, 2)  # (B, T, H, X)
