"""The incremental-decoding rules: `prepare(key, value)`, `forward(prepared=True)` and a growing cache.

A variant without its own `prepare` is checked through `full_interface` (prepare returns the raw keys), so these
rules then test what decoders rely on for it: one query at a time against all keys so far equals causal attention.
Shapes: B batch, Tq queries, Tk keys, H heads.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.testing.contract import Contract, mask_cases


def check_prepared_equals_raw(c: Contract, module: nn.Module) -> None:
    B, Tq, Tk = 3, 5, 7
    q, k, v = c.inputs(B, Tq, Tk)
    q_sq, _, _ = c.inputs(B, Tk, Tk)
    masks = mask_cases(B, Tq, Tk, c.gen)
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


def check_prepare_is_positionwise(c: Contract, module: nn.Module) -> None:
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


def check_incremental_decoding(c: Contract, module: nn.Module) -> None:
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
