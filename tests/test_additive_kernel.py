"""The fused Triton additive-attention kernel, run on the CPU under Triton's interpreter (TRITON_INTERPRET=1):
outputs and every gradient equal the explicit PyTorch path, masks included, and the full attention contract holds
with the kernel as the fast path. Runs in a subprocess because the interpreter is chosen when kernels are defined."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install triton, Linux x86-64): the kernel is GPU-only")

SCRIPT = textwrap.dedent("""
    import copy

    import torch
    from attnbench.attention import Additive, MultiHead
    from attnbench.attention import additive as additive_module
    from attnbench.testing import check_attention

    assert additive_module._triton_kernel() is not None
    torch.manual_seed(0)
    checked = 0
    for B, Tq, Tk, Dq, Dk, Dv, A, mask in [
        (2, 5, 7, 6, 10, 3, 6, None), (3, 17, 33, 12, 8, 8, 20, "padding"), (2, 19, 19, 16, 16, 16, 16, "causal"),
        (2, 4, 9, 5, 7, 4, 5, "rows"), (1, 1, 40, 8, 8, 24, 33, "padding"),
    ]:
        module = Additive(Dq, Dk, Dv, hidden_dim=A)
        q = torch.randn(B, Tq, Dq, requires_grad=True)
        k = torch.randn(B, Tk, Dk, requires_grad=True)
        v = torch.randn(B, Tk, Dv, requires_grad=True)
        keep, causal = None, mask == "causal"
        if mask == "padding":
            lengths = torch.randint(1, Tk + 1, (B,))
            keep = (torch.arange(Tk)[None] < lengths[:, None])[:, None, :]
        elif mask == "rows":
            keep = torch.rand(B, Tq, Tk) > 0.5
            keep[0, 1] = False  # a fully masked row: zeros, never NaN
        fast, none = module(q, k, v, keep, causal=causal)
        slow, weights = module(q, k, v, keep, need_weights=True, causal=causal)
        assert none is None and weights is not None
        grad = torch.randn_like(fast)
        params = [q, k, v, *module.parameters()]
        g_fast = torch.autograd.grad(fast, params, grad)
        g_slow = torch.autograd.grad(slow, params, grad)
        torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-4)
        for a, b in zip(g_fast, g_slow):
            torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)
        if mask == "rows":
            assert fast[0, 1].abs().max() == 0 and all(torch.isfinite(g).all() for g in g_fast)
        checked += 1
    # bf16 inputs (what autocast feeds it on a GPU): fp32 accumulation inside, bf16 out, finite gradients.
    module = Additive(16, 16, 16).to(torch.bfloat16)
    q, k, v = (torch.randn(2, 9, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out, _ = module(q, k, v)
    reference, _ = copy.deepcopy(module).float()(q.float(), k.float(), v.float(), need_weights=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=3e-2, rtol=3e-2)
    out.float().sum().backward()
    assert all(torch.isfinite(t.grad.float()).all() for t in (q, k, v))
    # The whole public contract with the kernel as the fast path, alone and as multihead's score.
    check_attention(Additive)
    check_attention(lambda q, k, v, dropout=0.0: MultiHead(q, k, v, heads=2, score="additive", dropout=dropout),
                    query_dim=8, key_dim=8, value_dim=8)
    print("kernel cases", checked)
""")


def test_triton_additive_kernel_matches_explicit_path_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "kernel cases 5" in result.stdout
