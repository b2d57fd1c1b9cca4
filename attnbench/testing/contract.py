"""The contract's machinery: the variant under test, its inputs and masks, and the checks the rules share.

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from attnbench.attention import full_interface


Output = tuple[torch.Tensor, torch.Tensor | None]


class Contract:
    """One variant under test: builds it, feeds it inputs, and words failures."""

    def __init__(self, factory: Callable[..., nn.Module], dims: tuple[int, int, int], seed: int,
                 kwargs: dict[str, Any]) -> None:
        self.factory, self.dims, self.seed, self.kwargs = factory, dims, seed, kwargs
        self.name = getattr(factory, "__qualname__", None) or repr(factory)
        self.gen = torch.Generator().manual_seed(seed)

    def fail(self, rule: str, detail: str = "", hint: str = "") -> None:
        message = f"check_attention({self.name}): {rule}"
        message += f"\n  {detail}" if detail else ""
        message += f"\n  hint: {hint}" if hint else ""
        raise AssertionError(message)

    def build(self, dropout: float = 0.0) -> nn.Module:
        torch.manual_seed(self.seed)  # same seed for every build, so parameters match across builds
        try:
            module = self.factory(*self.dims, dropout=dropout, **self.kwargs)
        except Exception as err:
            self.fail("construction failed", f"{type(err).__name__}: {err}",
                      "the class must accept (query_dim, key_dim, value_dim, *, dropout=0.0, **kwargs)")
        if not isinstance(module, nn.Module):
            self.fail("the factory must return an nn.Module", f"got {type(module).__name__}")
        return full_interface(module)  # as build_attention returns it: every rule calls it with every keyword

    def inputs(self, B: int, Tq: int, Tk: int, requires_grad: bool = False) -> list[torch.Tensor]:
        Dq, Dk, Dv = self.dims
        tensors = [on_device(torch.randn(B, T, D, generator=self.gen, device="cpu"))
                   for T, D in ((Tq, Dq), (Tk, Dk), (Tk, Dv))]
        return [t.requires_grad_(requires_grad) for t in tensors]

    def call(self, module: nn.Module, rule: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             mask: torch.Tensor | None, need_weights: bool, causal: bool = False, prepared: bool = False) -> Output:
        try:
            result = module(q, k, v, mask, need_weights=need_weights, causal=causal, prepared=prepared)
        except Exception as err:
            self.fail(f"{rule}: forward raised", self.describe_call(q, k, mask, need_weights, causal, prepared)
                      + f"\n  {type(err).__name__}: {err}")
        if not (isinstance(result, tuple) and len(result) == 2):
            self.fail(f"{rule}: forward must return a tuple (output, weights or None)", f"got {type(result).__name__}")
        out, weights = result
        if need_weights and weights is None:
            self.fail(f"{rule}: need_weights=True returned weights None", hint="return the (B, H, Tq, Tk) weights")
        return out, weights

    @staticmethod
    def describe_call(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, need_weights: bool,
                      causal: bool, prepared: bool = False) -> str:
        mask_text = "None" if mask is None else f"bool {tuple(mask.shape)}"
        return (f"call: query {tuple(q.shape)}, key {tuple(k.shape)}, mask {mask_text}, "
                f"need_weights={need_weights}, causal={causal}" + (", prepared=True" if prepared else ""))

    def prepare(self, module: nn.Module, rule: str, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        try:
            result = module.prepare(k, v)
        except Exception as err:
            self.fail(f"{rule}: prepare raised", f"key {tuple(k.shape)}, value {tuple(v.shape)}"
                      + f"\n  {type(err).__name__}: {err}")
        B, Tk = k.shape[:2]
        if not (isinstance(result, tuple) and len(result) == 2
                and all(isinstance(t, torch.Tensor) and tuple(t.shape[:2]) == (B, Tk) for t in result)):
            got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in result] \
                if isinstance(result, tuple) else type(result).__name__
            self.fail(f"{rule}: prepare must return (key, value) tensors with batch at dim 0 and time at dim 1",
                      f"expected shapes starting ({B}, {Tk}), got {got}",
                      "decoders grow the cache with torch.cat(dim=1) and reorder beams with index_select(0)")
        return result

    def close(self, actual: torch.Tensor, expected: torch.Tensor, rule: str, hint: str = "") -> None:
        try:
            torch.testing.assert_close(actual, expected)
        except AssertionError as err:
            self.fail(rule, str(err).replace("\n", "\n  "), hint)


@contextmanager


def no_global_side_effects(device: str | torch.device = "cpu") -> Iterator[None]:
    """The checks seed the global RNG (so builds match); the caller's RNG stream should not notice. On another
    device (check_attention(device="cuda")), the checks run with it as the default device: the variant is built
    and fed there, while the inputs are still drawn on the CPU, so every device checks the same numbers."""
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), device:
        yield


def on_device(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor drawn on the CPU (the contract's generator), moved to the device the checks run on."""
    return tensor.to(torch.get_default_device())


def check_output(c: Contract, module: nn.Module, rule: str, out: torch.Tensor, weights: torch.Tensor | None,
                  B: int, Tq: int, Tk: int) -> None:
    expected = (B, Tq, module.out_dim)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        c.fail(f"{rule}: output shape", f"expected (B, Tq, out_dim) = {expected}, got {got}")
    if weights is not None and (weights.dim() != 4 or tuple(weights.shape[::2]) != (B, Tq)
                                or weights.size(3) != Tk):
        c.fail(f"{rule}: weights shape", f"expected (B, H, Tq, Tk) = ({B}, H, {Tq}, {Tk}), got {tuple(weights.shape)}",
               "a single-head variant returns weights.unsqueeze(1)")
    for label, tensor in (("output", out), ("weights", weights)):
        if tensor is not None and not torch.isfinite(tensor).all():
            c.fail(f"{rule}: {label} contains NaN or inf")


def check_rows(c: Contract, rule: str, weights: torch.Tensor, keep: torch.Tensor | None) -> None:
    """Rows with a kept key sum to 1; masked keys and rows without any kept key are exactly 0."""
    if (weights < 0).any():
        c.fail(f"{rule}: negative attention weights", f"min weight {weights.min().item():.3g}")
    full_keep = torch.ones_like(weights, dtype=torch.bool) if keep is None else keep[:, None].expand_as(weights)
    leaked = weights.masked_select(~full_keep)
    if (leaked != 0).any():
        c.fail(f"{rule}: masked keys got non-zero weight",
               f"{int((leaked != 0).sum())} masked entries, largest {leaked.abs().max().item():.3g}",
               "fill masked scores before the softmax and zero masked weights after it (the mask is True = keep)")
    sums = weights.sum(-1)  # (B, H, Tq)
    has_key = full_keep.any(-1)  # (B, H, Tq)
    c.close(sums[has_key], torch.ones_like(sums[has_key]), f"{rule}: weight rows with a kept key must sum to 1")
    if (sums[~has_key] != 0).any():
        c.fail(f"{rule}: a row whose keys are all masked must have all-zero weights",
               f"row sums {sums[~has_key].tolist()}")


def mask_cases(B: int, Tq: int, Tk: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([Tk, max(1, Tk - 2), 1][:B] + [Tk] * max(0, B - 3))
    padding = (torch.arange(Tk)[None] < lengths[:, None])[:, None]  # (B, 1, Tk)
    per_query = on_device(torch.rand(B, Tq, Tk, generator=gen, device="cpu")) < 0.6  # (B, Tq, Tk)
    per_query[:, :, 0] = True  # every row keeps a key here; fully masked rows have their own check
    return {"key-padding mask (B, 1, Tk)": padding, "per-query mask (B, Tq, Tk)": per_query}


def fully_masked_cases(B: int, Tq: int, Tk: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    per_query = on_device(torch.rand(B, Tq, Tk, generator=gen, device="cpu")) < 0.6
    per_query[:, :, 0] = True
    per_query[0, 1] = False  # one query of batch 0 sees nothing
    padding = torch.ones(B, 1, Tk, dtype=torch.bool)
    padding[-1] = False  # the whole last sequence is padding
    return {"per-query mask with a fully masked row": per_query, "key-padding mask with an empty sequence": padding}


def backward_is_finite(c: Contract, module: nn.Module, rule: str, out: torch.Tensor,
                        weights: torch.Tensor | None, inputs: tuple[torch.Tensor, ...]) -> None:
    module.zero_grad(set_to_none=True)
    loss = out.pow(2).sum()
    if weights is not None:
        loss = loss + (weights * torch.linspace(0, 1, weights.size(-1))).sum()
    try:
        loss.backward()
    except Exception as err:
        c.fail(f"{rule}: backward raised", f"{type(err).__name__}: {err}")
    named = [(name, t) for name, t in zip(("query", "key", "value"), inputs)]
    named += [(f"parameter '{name}'", p) for name, p in module.named_parameters() if p.requires_grad]
    for name, tensor in named:
        if tensor.grad is None:
            c.fail(f"{rule}: no gradient reached {name}",
                   hint="it is not used in forward, or used through .detach()/.data/no_grad")
        if not torch.isfinite(tensor.grad).all():
            c.fail(f"{rule}: gradient of {name} contains NaN or inf",
                   hint="a fully masked row must not softmax over all -inf; fill with a finite minimum and zero after")
