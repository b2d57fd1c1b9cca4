"""Counterfactual attention: run a model with some of its attentions' weights replaced (uniform, permuted, ...).

`Override(attention, transform)` is itself an attention variant with the full interface. It computes the wrapped
variant's weights, hands them to `transform(weights, keep)` and returns the wrapped variant's `mix` of the new
weights, so everything but the weights (value path, output projection) is the variant's own. `override_attention`
puts Overrides in place of a model's attentions, named by the maps they make (`attention_modules()` of every
model), for the duration of a `with` block, and puts the originals back afterwards, also on error.

    with override_attention(model, {"cross_attention.layer0": uniform_weights}):
        hypotheses = decode(model, ...)  # every step's cross-attention is uniform over the real source tokens

Shapes: B batch, H heads, Tq queries, Tk keys; weights (B, H, Tq, Tk), keep bool (B, 1|Tq, Tk) True = may attend,
or None (every key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from attnbench.attention import functional as AF

Transform = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def uniform_weights(weights: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Every query spreads its weight evenly over the keys it may see (Wiegreffe & Pinter's uniform baseline);
    a query that may see none keeps all-zero weights."""
    if keep is None:
        return torch.full_like(weights, 1.0 / weights.size(-1))
    keep = keep[:, None].expand_as(weights).to(weights.dtype)  # (B, H, Tq, Tk)
    return keep / keep.sum(-1, keepdim=True).clamp(min=1)


class Override(nn.Module):
    """`attention` with its weights passed through `transform` before its value path; a full-interface variant
    (forward, prepare) whose parameters are the wrapped one's. Needs the wrapped variant's `mix`."""

    def __init__(self, attention: nn.Module, transform: Transform) -> None:
        super().__init__()
        if not callable(getattr(attention, "mix", None)):
            raise TypeError(f"attention {type(attention).__qualname__} has no mix(weights, value): its weights cannot "
                            "be overridden; add mix (see the Attention variants section of the README)")
        self.attention, self.transform = attention, transform
        self.out_dim = attention.out_dim

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attention.prepare(key, value)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
        need_weights: bool = False, causal: bool = False, prepared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, weights = self.attention(query, key, value, mask, need_weights=True, causal=causal, prepared=prepared)
        keep = AF.keep_mask(AF.normalize_mask(mask, query, key, causal=causal), query.size(1), key.size(1),
                            query.device, causal)  # (B|1, 1|Tq, Tk) | None
        if keep is not None:
            keep = keep.expand(query.size(0), -1, -1)  # (B, 1|Tq, Tk)
        weights = self.transform(weights, keep)  # (B, H, Tq, Tk)
        if prepared:
            out = self.attention.mix(weights, value, prepared=True)  # (B, Tq, Dv)
        else:
            out = self.attention.mix(weights, value)  # (B, Tq, Dv)
        return out, weights if need_weights else None


def attention_modules(model: nn.Module) -> dict[str, str]:
    """{map name: submodule path} of the attentions that make `model`'s maps (its `attention_modules()`)."""
    names = getattr(model, "attention_modules", None)
    if names is None:
        raise TypeError(f"{type(model).__name__} does not say which modules make its attention maps: give it "
                        "attention_modules() -> {map name: submodule path}")
    return names()


@contextlib.contextmanager
def override_attention(model: nn.Module, transforms: Mapping[str, Transform]) -> Iterator[nn.Module]:
    """`model` with the attention that makes each named map replaced by its Override, inside the block."""
    paths = attention_modules(model)
    unknown = sorted(set(transforms) - set(paths))
    if unknown:
        raise KeyError(f"{type(model).__name__} makes no attention map named {', '.join(unknown)}: choose among "
                       f"{', '.join(paths)}")
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for name, transform in transforms.items():
            parent_path, _, child = paths[name].rpartition(".")
            parent = model.get_submodule(parent_path)
            original = getattr(parent, child)
            setattr(parent, child, Override(original, transform))
            swapped.append((parent, child, original))
        yield model
    finally:
        for parent, child, original in reversed(swapped):
            setattr(parent, child, original)


__all__ = ["Override", "Transform", "attention_modules", "override_attention", "uniform_weights"]
