"""The full attention interface for variants that implement only part of it.

Every caller (decoders, MultiHead, check_attention) calls a variant the same way:
`forward(query, key, value, mask=None, need_weights=False, causal=False, prepared=False)` and `prepare(key, value)`.
Built-ins have all of it. A custom variant may leave out `prepare` (and `prepared`), or even `causal`;
`full_interface` fills the gap: `prepare` returns (key, value) unchanged, so `prepared=True` hands it the raw keys
(a decoder recomputes over them every step), and `causal=True` is refused with a TypeError naming the class.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths.
query (B, Tq, Dq), key (B, Tk, Dk), value (B, Tk, Dv), mask bool (B, 1|Tq, Tk) True = keep.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import torch
from torch import nn


def accepts(function: Any, keyword: str) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _has_full_interface(cls: type) -> bool:
    return callable(getattr(cls, "prepare", None)) and accepts(cls.forward, "causal")


class _FullInterface(nn.Module):
    """Mixed in front of a variant class that lacks part of the interface (see `full_interface`)."""

    _variant: ClassVar[type[nn.Module]]  # the class it extends
    _prepares: ClassVar[bool]  # the variant has its own prepare (and so takes `prepared`)
    _takes_causal: ClassVar[bool]

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._prepares:
            return super().prepare(key, value)  # type: ignore[misc]
        return key, value  # nothing to cache: "prepared" keys are the raw ones, (B, Tk, Dk), (B, Tk, Dv)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
        need_weights: bool = False, causal: bool = False, prepared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Keywords the variant lacks are passed only when set, as callers did before this adapter existed.
        extra: dict[str, bool] = {}
        if causal:
            if not self._takes_causal:
                raise TypeError(
                    f"attention {self._variant.__qualname__} has no `causal` keyword in forward, so it cannot be a "
                    "causal (decoder) self-attention: add forward(..., causal=False) that hides key j > query i"
                )
            extra["causal"] = True
        if prepared and self._prepares:
            extra["prepared"] = True
        return super().forward(query, key, value, mask, need_weights=need_weights, **extra)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The extended class is made at run time, so pickle cannot find it by name: rebuild it from the variant.
        _, _, *state = super().__reduce_ex__(protocol)
        return (_new, (self._variant,), *state)


@functools.cache
def _extended(cls: type[nn.Module]) -> type[nn.Module]:
    namespace = {
        "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__, "_variant": cls,
        "_prepares": callable(getattr(cls, "prepare", None)), "_takes_causal": accepts(cls.forward, "causal"),
    }
    return type(cls.__name__, (_FullInterface, cls), namespace)


def _new(cls: type[nn.Module]) -> nn.Module:
    return object.__new__(_extended(cls))


def full_interface(module: nn.Module) -> nn.Module:
    """`module` itself, given the full keyword interface and `prepare` if its class lacks them.

    The object is extended in place (its class becomes a subclass that adds only `prepare` and the keywords),
    not wrapped: parameter names, state_dict keys, `isinstance` checks and hooks stay exactly those of the
    variant, so checkpoints of custom variants load as before. Modules that already have the interface
    (every built-in) are returned untouched.
    """
    cls = type(module)
    if not _has_full_interface(cls):
        module.__class__ = _extended(cls)
    return module


__all__ = ["full_interface"]
