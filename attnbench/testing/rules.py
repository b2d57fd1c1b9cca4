"""The rules every variant obeys in one forward call: shapes, weights, masking, causality, gradients, dropout.

Shapes: B batch, Tq queries, Tk keys, H heads.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.attention.interface import accepts
from attnbench.testing.contract import (
    Contract, backward_is_finite, check_output, check_rows, fully_masked_cases, mask_cases,
)


def check_interface(c: Contract, module: nn.Module) -> None:
    description = getattr(type(module), "description", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        c.fail("missing one-line `description`", f"got {description!r}",
               'add a class attribute, e.g. description: ClassVar[str] = "my score = ..." (shown by attnbench list)')
    if not isinstance(getattr(module, "out_dim", None), int):
        c.fail("missing integer `out_dim`", f"got {getattr(module, 'out_dim', None)!r}",
               "set self.out_dim in __init__ to the size of the output's last dimension")


def check_shapes_and_weights(c: Contract, module: nn.Module) -> None:
    for B, Tq, Tk in ((3, 5, 7), (2, 1, 6), (2, 6, 6)):
        q, k, v = c.inputs(B, Tq, Tk)
        with torch.no_grad():
            for need_weights in (False, True):
                rule = f"shapes (B={B}, Tq={Tq}, Tk={Tk}, need_weights={need_weights})"
                out, weights = c.call(module, rule, q, k, v, None, need_weights)
                check_output(c, module, rule, out, weights, B, Tq, Tk)
                if need_weights:
                    check_rows(c, f"weights without a mask (B={B}, Tq={Tq}, Tk={Tk})", weights, None)


def check_masking(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    with torch.no_grad():
        for label, mask in mask_cases(B, Tq, Tk, c.gen).items():
            rule = f"masking with a {label}"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights=True)
            check_output(c, module, rule, out, weights, B, Tq, Tk)
            check_rows(c, rule, weights, mask)


def check_fully_masked_rows(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    for label, mask in fully_masked_cases(B, Tq, Tk, c.gen).items():
        empty = ~mask.any(-1)  # (B, 1|Tq)
        for need_weights in (False, True):
            rule = f"fully masked rows ({label}, need_weights={need_weights})"
            q, k, v = c.inputs(B, Tq, Tk, requires_grad=True)
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            check_output(c, module, rule, out, weights, B, Tq, Tk)
            dead = out.masked_select(empty[..., None].expand_as(out))
            if (dead != 0).any():
                c.fail(f"{rule}: a query with no kept key must give an all-zero output",
                       f"largest |output| in such rows: {dead.abs().max().item():.3g}",
                       "zero those rows after the softmax (and after any output projection: its bias leaks in)")
            if weights is not None:
                check_rows(c, rule, weights, mask)
            backward_is_finite(c, module, rule, out, weights, (q, k, v))


def check_padding_invariance(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk, P = 3, 5, 7, 3
    q, k, v = c.inputs(B, Tq, Tk)
    _, k_pad, v_pad = c.inputs(B, Tq, P)
    for label, mask in mask_cases(B, Tq, Tk, c.gen).items():
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


def check_causal(c: Contract, module: nn.Module) -> None:
    B, T = 2, 6
    q, k, v = c.inputs(B, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # (Tq, Tk): key j > query i
    padding = mask_cases(B, T, T, c.gen)["key-padding mask (B, 1, Tk)"]
    with torch.no_grad():
        for label, mask in (("no mask", None), ("key-padding mask", padding)):
            rule = f"causal=True with {label}"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights=True, causal=True)
            check_output(c, module, rule, out, weights, B, T, T)
            keep = ~future[None] if mask is None else mask & ~future  # (B|1, Tq, Tk)
            check_rows(c, rule, weights, keep.expand(B, T, T))
            # Changing the last key/value may only change the last query's output, in both paths.
            k2, v2 = k.clone(), v.clone()
            k2[:, -1], v2[:, -1] = k2[:, -1] + 1.0, v2[:, -1] - 1.0
            for need_weights in (False, True):
                before, _ = c.call(module, rule, q, k, v, mask, need_weights, causal=True)
                after, _ = c.call(module, rule, q, k2, v2, mask, need_weights, causal=True)
                c.close(after[:, :-1], before[:, :-1],
                        f"{rule}, need_weights={need_weights}: earlier queries saw a later key",
                        "merge the causal triangle (key j > query i dropped) with the mask")


def check_fast_equals_explicit(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    cases: dict[str, tuple[torch.Tensor | None, bool, torch.Tensor]] = {"no mask": (None, False, q)}
    cases.update({label: (mask, False, q) for label, mask in mask_cases(B, Tq, Tk, c.gen).items()})
    cases.update({label: (mask, False, q) for label, mask in fully_masked_cases(B, Tq, Tk, c.gen).items()})
    q_sq, _, _ = c.inputs(B, Tk, Tk)
    cases["causal"] = (None, True, q_sq)
    padding = mask_cases(B, Tk, Tk, c.gen)["key-padding mask (B, 1, Tk)"]
    cases["causal with a key-padding mask"] = (padding, True, q_sq)
    with torch.no_grad():
        for label, (mask, causal, query) in cases.items():
            rule = f"fast path (need_weights=False) vs explicit path (need_weights=True), eval mode, {label}"
            fast, _ = c.call(module, rule, query, k, v, mask, need_weights=False, causal=causal)
            explicit, _ = c.call(module, rule, query, k, v, mask, need_weights=True, causal=causal)
            c.close(fast, explicit, f"{rule}: outputs differ",
                    "both paths must compute the same function; only the returned weights may differ")


def check_gradients(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 2, 4, 6
    mask = mask_cases(B, Tq, Tk, c.gen)["key-padding mask (B, 1, Tk)"]
    module.train()  # training runs the fast path; gradients must flow there as much as in the explicit one
    try:
        for need_weights in (False, True):
            rule = f"gradients (need_weights={need_weights}, key-padding mask)"
            q, k, v = c.inputs(B, Tq, Tk, requires_grad=True)
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            backward_is_finite(c, module, rule, out, weights, (q, k, v))
    finally:
        module.eval()
        module.zero_grad(set_to_none=True)


def check_dropout(c: Contract, module: nn.Module) -> None:
    dropped = c.build(dropout=0.5)
    try:
        dropped.load_state_dict(module.state_dict())
    except Exception as err:
        c.fail("dropout: a build with dropout=0.5 has different parameters than with dropout=0.0", str(err))
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    mask = mask_cases(B, Tq, Tk, c.gen)["key-padding mask (B, 1, Tk)"]
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
                check_rows(c, f"{rule}: returned weights must be the pre-dropout probabilities", weights, mask)


def check_batch_one(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    mask = mask_cases(B, Tq, Tk, c.gen)["per-query mask (B, Tq, Tk)"]
    with torch.no_grad():
        for need_weights in (False, True):
            rule = f"batch of one (need_weights={need_weights})"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights)
            for b in range(B):
                out_b, weights_b = c.call(module, rule, q[b:b + 1], k[b:b + 1], v[b:b + 1], mask[b:b + 1],
                                          need_weights)
                check_output(c, module, rule, out_b, weights_b, 1, Tq, Tk)
                c.close(out_b, out[b:b + 1], f"{rule}: sequence {b} alone differs from it inside the batch",
                        "sequences of a batch must not interact")
                if weights is not None and weights_b is not None:
                    c.close(weights_b, weights[b:b + 1], f"{rule}: weights of sequence {b} differ from the batch's")


def check_mix(c: Contract, module: nn.Module) -> None:
    """A variant with `mix(weights, value)` (optional: attnbench explain's counterfactual weights need it) gives
    forward's output when handed forward's own weights, with and without masks, in eval mode, and so does
    `mix(weights, prepared_value, prepared=True)` where mix takes that keyword. NotImplementedError
    from mix means it cannot (MultiHead over a score without mix) and is not a failure."""
    mix = getattr(module, "mix", None)
    if mix is None:
        return
    B, Tq, Tk = 3, 4, 6
    q, k, v = c.inputs(B, Tq, Tk)
    cases: dict[str, torch.Tensor | None] = {"no mask": None, **mask_cases(B, Tq, Tk, c.gen),
                                             **fully_masked_cases(B, Tq, Tk, c.gen)}
    with torch.no_grad():
        for label, mask in cases.items():
            rule = f"mix(weights, value) with forward's own weights, {label}"
            out, weights = c.call(module, rule, q, k, v, mask, need_weights=True)
            try:
                mixed = mix(weights, v)
            except NotImplementedError:
                return
            except Exception as err:
                c.fail(f"{rule}: mix raised", f"{type(err).__name__}: {err}",
                       "mix takes (B, H, Tq, Tk) weights and the raw (B, Tk, Dv) values")
            c.close(mixed, out, f"{rule}: differs from forward's output",
                    "mix must run forward's value path on the given weights")
            if accepts(mix, "prepared"):  # a decoder's cached values, as attention/override.py hands them over
                key, value = module.prepare(k, v)
                c.close(mix(weights, value, prepared=True), out,
                        f"mix(weights, value, prepared=True) over prepare's values, {label}: differs from forward's "
                        "output", "with prepared=True mix reads the values that prepare returned")
