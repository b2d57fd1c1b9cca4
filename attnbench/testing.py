"""The attention contract as one call, public so researchers can run it on their own variants.

    from attnbench.testing import check_attention
    check_attention(MyAttention)                    # raises AssertionError naming the first broken rule
    check_attention(MyAttention, query_dim=12, key_dim=20, value_dim=8, temperature=0.5)

Shapes: B batch, Tq queries, Tk keys, Dq/Dk/Dv query/key/value widths, H heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from attnbench.attention import supports_prepare

Output = tuple[torch.Tensor, torch.Tensor | None]


class _Contract:
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
        return module

    def inputs(self, B: int, Tq: int, Tk: int, requires_grad: bool = False) -> list[torch.Tensor]:
        Dq, Dk, Dv = self.dims
        tensors = [torch.randn(B, T, D, generator=self.gen) for T, D in ((Tq, Dq), (Tk, Dk), (Tk, Dv))]
        return [t.requires_grad_(requires_grad) for t in tensors]

    def call(self, module: nn.Module, rule: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             mask: torch.Tensor | None, need_weights: bool, causal: bool = False, prepared: bool = False) -> Output:
        # `prepared` is passed only when set, so variants without incremental decoding never see it.
        extra = {"prepared": True} if prepared else {}
        try:
            result = module(q, k, v, mask, need_weights=need_weights, causal=causal, **extra)
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
def _no_global_side_effects() -> Iterator[None]:
    # The checks seed the global RNG (so builds match); the caller's RNG stream should not notice.
    with torch.random.fork_rng(devices=[]):
        yield


def check_attention(
    factory: Callable[..., nn.Module] | type, *, query_dim: int = 16, key_dim: int = 16, value_dim: int = 16,
    seed: int = 0, **kwargs: Any,
) -> None:
    """Run the attention contract on a variant; raise AssertionError describing the first broken rule.

    The variant is built as `factory(query_dim, key_dim, value_dim, dropout=..., **kwargs)` and checked on
    small CPU fp32 inputs: shapes and `out_dim`; weights (B, H, Tq, Tk) whose rows sum to 1; masked keys get
    exactly zero weight; a fully masked row gives zero weights, zero output and finite gradients; appended
    masked keys change nothing; `causal=True` hides later keys; gradients reach the inputs and every
    parameter; the fast path (need_weights=False) equals the explicit one; dropout is off in eval mode and
    on in training; Tq != Tk and batch 1 work. A variant with `prepare(key, value)` (incremental decoding)
    also gets: `forward(q, *prepare(k, v), ..., prepared=True)` equals `forward(q, k, v, ...)` in both paths;
    prepared tensors are (B, Tk, ...) and computed per position (concatenating prepared chunks along time
    equals preparing the whole, index_select on the batch commutes); and one query at a time against a
    growing prepared cache reproduces causal attention.
    """
    with _no_global_side_effects():
        c = _Contract(factory, (query_dim, key_dim, value_dim), seed, kwargs)
        module = c.build().eval()
        _check_interface(c, module)
        _check_shapes_and_weights(c, module)
        _check_masking(c, module)
        _check_fully_masked_rows(c, module)
        _check_padding_invariance(c, module)
        _check_causal(c, module)
        _check_fast_equals_explicit(c, module)
        _check_gradients(c, module)
        _check_dropout(c, module)
        _check_batch_one(c, module)
        if supports_prepare(module):
            _check_prepared_equals_raw(c, module)
            _check_prepare_is_positionwise(c, module)
            _check_incremental_decoding(c, module)


def _check_interface(c: _Contract, module: nn.Module) -> None:
    if not isinstance(module, nn.Module):
        c.fail("the factory must return an nn.Module", f"got {type(module).__name__}")
    description = getattr(type(module), "description", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        c.fail("missing one-line `description`", f"got {description!r}",
               'add a class attribute, e.g. description: ClassVar[str] = "my score = ..." (shown by attnbench list)')
    if not isinstance(getattr(module, "out_dim", None), int):
        c.fail("missing integer `out_dim`", f"got {getattr(module, 'out_dim', None)!r}",
               "set self.out_dim in __init__ to the size of the output's last dimension")


def _check_output(c: _Contract, module: nn.Module, rule: str, out: torch.Tensor, weights: torch.Tensor | None,
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


def _check_rows(c: _Contract, rule: str, weights: torch.Tensor, keep: torch.Tensor | None) -> None:
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


def _masks(B: int, Tq: int, Tk: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([Tk, max(1, Tk - 2), 1][:B] + [Tk] * max(0, B - 3))
    padding = (torch.arange(Tk)[None] < lengths[:, None])[:, None]  # (B, 1, Tk)
    per_query = torch.rand(B, Tq, Tk, generator=gen) < 0.6  # (B, Tq, Tk)
    per_query[:, :, 0] = True  # every row keeps a key here; fully masked rows have their own check
    return {"key-padding mask (B, 1, Tk)": padding, "per-query mask (B, Tq, Tk)": per_query}


def _check_shapes_and_weights(c: _Contract, module: nn.Module) -> None:
    for B, Tq, Tk in ((3, 5, 7), (2, 1, 6), (2, 6, 6)):
        q, k, v = c.inputs(B, Tq, Tk)
        with torch.no_grad():
            for need_weights in (False, True):
                rule = f"shapes (B={B}, Tq={Tq}, Tk={Tk}, need_weights={need_weights})"
                out, weights = c.call(module, rule, q, k, v, None, need_weights)
                _check_output(c, module, rule, out, weights, B, Tq, Tk)
                if need_weights:
                    _check_rows(c, f"weights without a mask (B={B}, Tq={Tq}, Tk={Tk})", weights, None)


def _check_masking(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    with torch.no_grad():
        for label, mask in _masks(B, Tq, Tk, c.gen).items():
            rule = f"masking with a {label}"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights=True)
            _check_output(c, module, rule, out, weights, B, Tq, Tk)
            _check_rows(c, rule, weights, mask)


def _fully_masked(B: int, Tq: int, Tk: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    per_query = torch.rand(B, Tq, Tk, generator=gen) < 0.6
    per_query[:, :, 0] = True
    per_query[0, 1] = False  # one query of batch 0 sees nothing
    padding = torch.ones(B, 1, Tk, dtype=torch.bool)
    padding[-1] = False  # the whole last sequence is padding
    return {"per-query mask with a fully masked row": per_query, "key-padding mask with an empty sequence": padding}


def _check_fully_masked_rows(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    for label, mask in _fully_masked(B, Tq, Tk, c.gen).items():
        empty = ~mask.any(-1)  # (B, 1|Tq)
        for need_weights in (False, True):
            rule = f"fully masked rows ({label}, need_weights={need_weights})"
            q, k, v = c.inputs(B, Tq, Tk, requires_grad=True)
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            _check_output(c, module, rule, out, weights, B, Tq, Tk)
            dead = out.masked_select(empty[..., None].expand_as(out))
            if (dead != 0).any():
                c.fail(f"{rule}: a query with no kept key must give an all-zero output",
                       f"largest |output| in such rows: {dead.abs().max().item():.3g}",
                       "zero those rows after the softmax (and after any output projection: its bias leaks in)")
            if weights is not None:
                _check_rows(c, rule, weights, mask)
            _backward_is_finite(c, module, rule, out, weights, (q, k, v))


def _backward_is_finite(c: _Contract, module: nn.Module, rule: str, out: torch.Tensor,
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


def _check_padding_invariance(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk, P = 3, 5, 7, 3
    q, k, v = c.inputs(B, Tq, Tk)
    _, k_pad, v_pad = c.inputs(B, Tq, P)
    for label, mask in _masks(B, Tq, Tk, c.gen).items():
        padded_mask = torch.cat([mask, torch.zeros(B, mask.size(1), P, dtype=torch.bool)], dim=-1)  # (B, 1|Tq, Tk+P)
        for need_weights in (False, True):
            rule = f"padding invariance ({label}, {P} masked keys appended, need_weights={need_weights})"
            with torch.no_grad():
                out, weights = c.call(module, rule, q, k, v, mask, need_weights)
                out_p, weights_p = c.call(module, rule, q, torch.cat([k, k_pad], 1), torch.cat([v, v_pad], 1),
                                          padded_mask, need_weights)
            c.close(out_p, out, f"{rule}: output changed",
                    "masked keys must not influence anything, including normalisation over the key axis")
            if weights is not None and weights_p is not None:
                c.close(weights_p[..., :Tk], weights, f"{rule}: weights of the original keys changed")


def _check_causal(c: _Contract, module: nn.Module) -> None:
    B, T = 2, 6
    q, k, v = c.inputs(B, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (Tq, Tk): key j > query i
    padding = _masks(B, T, T, c.gen)["key-padding mask (B, 1, Tk)"]
    with torch.no_grad():
        for label, mask in (("no mask", None), ("key-padding mask", padding)):
            rule = f"causal=True with {label}"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights=True, causal=True)
            _check_output(c, module, rule, out, weights, B, T, T)
            keep = ~future[None] if mask is None else mask & ~future  # (B|1, Tq, Tk)
            _check_rows(c, rule, weights, keep.expand(B, T, T))
            # Changing the last key/value may only change the last query's output, in both paths.
            k2, v2 = k.clone(), v.clone()
            k2[:, -1], v2[:, -1] = k2[:, -1] + 1.0, v2[:, -1] - 1.0
            for need_weights in (False, True):
                before, _ = c.call(module, rule, q, k, v, mask, need_weights, causal=True)
                after, _ = c.call(module, rule, q, k2, v2, mask, need_weights, causal=True)
                c.close(after[:, :-1], before[:, :-1],
                        f"{rule}, need_weights={need_weights}: earlier queries saw a later key",
                        "merge the causal triangle (key j > query i dropped) with the mask")


def _check_fast_equals_explicit(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    cases: dict[str, tuple[torch.Tensor | None, bool, torch.Tensor]] = {"no mask": (None, False, q)}
    cases.update({label: (mask, False, q) for label, mask in _masks(B, Tq, Tk, c.gen).items()})
    cases.update({label: (mask, False, q) for label, mask in _fully_masked(B, Tq, Tk, c.gen).items()})
    q_sq, _, _ = c.inputs(B, Tk, Tk)
    cases["causal"] = (None, True, q_sq)
    cases["causal with a key-padding mask"] = (_masks(B, Tk, Tk, c.gen)["key-padding mask (B, 1, Tk)"], True, q_sq)
    with torch.no_grad():
        for label, (mask, causal, query) in cases.items():
            rule = f"fast path (need_weights=False) vs explicit path (need_weights=True), eval mode, {label}"
            fast, _ = c.call(module, rule, query, k, v, mask, need_weights=False, causal=causal)
            explicit, _ = c.call(module, rule, query, k, v, mask, need_weights=True, causal=causal)
            c.close(fast, explicit, f"{rule}: outputs differ",
                    "both paths must compute the same function; only the returned weights may differ")


def _check_gradients(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 2, 4, 6
    mask = _masks(B, Tq, Tk, c.gen)["key-padding mask (B, 1, Tk)"]
    module.train()  # training runs the fast path; gradients must flow there as much as in the explicit one
    try:
        for need_weights in (False, True):
            rule = f"gradients (need_weights={need_weights}, key-padding mask)"
            q, k, v = c.inputs(B, Tq, Tk, requires_grad=True)
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            _backward_is_finite(c, module, rule, out, weights, (q, k, v))
    finally:
        module.eval()
        module.zero_grad(set_to_none=True)


def _check_dropout(c: _Contract, module: nn.Module) -> None:
    dropped = c.build(dropout=0.5)
    try:
        dropped.load_state_dict(module.state_dict())
    except Exception as err:
        c.fail("dropout: a build with dropout=0.5 has different parameters than with dropout=0.0", str(err))
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    mask = _masks(B, Tq, Tk, c.gen)["key-padding mask (B, 1, Tk)"]
    with torch.no_grad():
        dropped.eval()
        for need_weights in (False, True):
            rule = f"dropout=0.5 in eval mode (need_weights={need_weights})"
            out, weights = c.call(dropped, rule, q, k, v, mask, need_weights)
            ref_out, ref_weights = c.call(module, rule, q, k, v, mask, need_weights)
            c.close(out, ref_out, f"{rule}: output differs from dropout=0.0", "apply dropout only when self.training")
            if weights is not None and ref_weights is not None:
                c.close(weights, ref_weights, f"{rule}: weights differ from dropout=0.0")
        dropped.train()
        for need_weights in (False, True):
            rule = f"dropout=0.5 in training mode (need_weights={need_weights})"
            out, weights = c.call(dropped, rule, q, k, v, mask, need_weights)
            ref_out, _ = c.call(module, rule, q, k, v, mask, need_weights)
            if torch.allclose(out, ref_out):
                c.fail(f"{rule}: output is unchanged by dropout",
                       hint="apply dropout to the attention weights in training mode")
            if weights is not None:
                _check_rows(c, f"{rule}: returned weights must be the pre-dropout probabilities", weights, mask)


def _check_batch_one(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    mask = _masks(B, Tq, Tk, c.gen)["per-query mask (B, Tq, Tk)"]
    with torch.no_grad():
        for need_weights in (False, True):
            rule = f"batch of one (need_weights={need_weights})"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            for b in range(B):
                out_b, weights_b = c.call(module, rule, q[b:b + 1], k[b:b + 1], v[b:b + 1], mask[b:b + 1],
                                          need_weights)
                _check_output(c, module, rule, out_b, weights_b, 1, Tq, Tk)
                c.close(out_b, out[b:b + 1], f"{rule}: sequence {b} alone differs from it inside the batch",
                        "sequences of a batch must not interact")
                if weights is not None and weights_b is not None:
                    c.close(weights_b, weights[b:b + 1], f"{rule}: weights of sequence {b} differ from the batch's")


def _check_prepared_equals_raw(c: _Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    q_sq, _, _ = c.inputs(B, Tk, Tk)
    masks = _masks(B, Tq, Tk, c.gen)
    cases = {label: (mask, False, q) for label, mask in (("no mask", None), *masks.items())}
    cases["causal with a key-padding mask"] = (masks["key-padding mask (B, 1, Tk)"], True, q_sq)
    with torch.no_grad():
        prepared = c.prepare(module, "prepared == raw", k, v)
        for label, (mask, causal, query) in cases.items():
            for need_weights in (False, True):
                rule = f"prepared == raw keys ({label}, need_weights={need_weights})"
                out, weights = c.call(module, rule, query, k, v, mask, need_weights, causal)
                out_p, weights_p = c.call(module, rule, query, *prepared, mask, need_weights, causal, prepared=True)
                hint = "forward(prepared=True) must skip exactly the work prepare did, nothing more or less"
                c.close(out_p, out, f"{rule}: outputs differ", hint)
                if weights is not None and weights_p is not None:
                    c.close(weights_p, weights, f"{rule}: weights differ", hint)


def _check_prepare_is_positionwise(c: _Contract, module: nn.Module) -> None:
    B, Tk, split = 3, 7, 3
    _, k, v = c.inputs(B, 1, Tk)
    order = torch.tensor([2, 0, 0, 1])  # beam search reorders, repeats and drops batch rows
    with torch.no_grad():
        whole = c.prepare(module, "prepare", k, v)
        head = c.prepare(module, "prepare", k[:, :split], v[:, :split])
        tail = c.prepare(module, "prepare", k[:, split:], v[:, split:])
        picked = c.prepare(module, "prepare", k[order], v[order])
    for i, name in enumerate(("keys", "values")):
        c.close(torch.cat([head[i], tail[i]], dim=1), whole[i],
                f"prepared {name}: concatenating prepared chunks along time differs from preparing the whole",
                "prepare must work position by position (no normalisation or mixing over time), "
                "so that a decoder can grow its cache one step at a time")
        c.close(whole[i].index_select(0, order), picked[i],
                f"prepared {name}: index_select on the batch differs from preparing the selected rows",
                "keep batch at dim 0 of prepared tensors; sequences must not interact")


def _check_incremental_decoding(c: _Contract, module: nn.Module) -> None:
    B, T = 2, 6
    q, k, v = c.inputs(B, T, T)
    with torch.no_grad():
        full, full_weights = c.call(module, "incremental decoding", q, k, v, None, need_weights=True, causal=True)
        cache: tuple[torch.Tensor, ...] = ()
        for t in range(T):
            step = c.prepare(module, "incremental decoding", k[:, t:t + 1], v[:, t:t + 1])
            cache = step if not cache else tuple(torch.cat(pair, dim=1) for pair in zip(cache, step))
            for need_weights in (False, True):
                rule = (f"incremental decoding (query {t} alone against the {t + 1} cached keys, "
                        f"need_weights={need_weights})")
                out, weights = c.call(module, rule, q[:, t:t + 1], *cache, None, need_weights, prepared=True)
                hint = "a query's output may depend only on the keys it sees, not on its index or on later keys"
                c.close(out, full[:, t:t + 1], f"{rule}: output differs from row {t} of causal attention", hint)
                if weights is not None:
                    c.close(weights, full_weights[:, :, t:t + 1, :t + 1],
                            f"{rule}: weights differ from row {t} of causal attention", hint)
