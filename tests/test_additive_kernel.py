"""The fused Triton additive-attention kernel against the explicit PyTorch path: outputs and every gradient, masks
included, fp32 and bf16, and the full attention contract with the kernel as the fast path. On the CPU it runs under
Triton's interpreter (TRITON_INTERPRET=1); on a CUDA GPU compiled for real, in fp32 with tl.dot at full precision
(the kernel follows torch.backends.cuda.matmul.allow_tf32, off by default) and once more with TF32 allowed, at TF32's
tolerance. Each runs in a subprocess: the interpreter is chosen when kernels are defined."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (pip install triton, Linux x86-64): the kernel is GPU-only")

SCRIPT = textwrap.dedent("""
    import copy
    import os

    import torch
    from attnbench.attention import Additive, MultiHead
    from attnbench.attention import additive as additive_module
    from attnbench.testing import check_attention

    assert additive_module._triton_kernel() is not None
    device = os.environ["KERNEL_DEVICE"]
    torch.manual_seed(0)
    checked = 0
    for B, Tq, Tk, Dq, Dk, Dv, A, mask in [
        (2, 5, 7, 6, 10, 3, 6, None), (3, 17, 33, 12, 8, 8, 20, "padding"), (2, 19, 19, 16, 16, 16, 16, "causal"),
        (2, 4, 9, 5, 7, 4, 5, "rows"), (1, 1, 40, 8, 8, 24, 33, "padding"),
    ]:
        module = Additive(Dq, Dk, Dv, hidden_dim=A).to(device)
        q = torch.randn(B, Tq, Dq, device=device, requires_grad=True)
        k = torch.randn(B, Tk, Dk, device=device, requires_grad=True)
        v = torch.randn(B, Tk, Dv, device=device, requires_grad=True)
        keep, causal = None, mask == "causal"
        if mask == "padding":
            lengths = torch.randint(1, Tk + 1, (B,), device=device)
            keep = (torch.arange(Tk, device=device)[None] < lengths[:, None])[:, None, :]
        elif mask == "rows":
            keep = torch.rand(B, Tq, Tk, device=device) > 0.5
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
    if device == "cuda":  # TF32 allowed: the kernel's tl.dot follows it, to TF32's precision (10-bit mantissa)
        torch.backends.cuda.matmul.allow_tf32 = True
        module = Additive(32, 32, 64, hidden_dim=48).cuda()
        q, k, v = (torch.randn(4, 300, D, device="cuda") for D in (32, 32, 64))
        fast, _ = module(q, k, v)
        slow, _ = module(q, k, v, need_weights=True)
        torch.testing.assert_close(fast, slow, atol=1e-2, rtol=1e-2)
        torch.backends.cuda.matmul.allow_tf32 = False
        print("tf32 case checked")
    # bf16 inputs (what autocast feeds it on a GPU): fp32 accumulation inside, bf16 out, finite gradients.
    module = Additive(16, 16, 16).to(device, torch.bfloat16)
    q, k, v = (torch.randn(2, 9, 16, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out, _ = module(q, k, v)
    reference, _ = copy.deepcopy(module).float()(q.float(), k.float(), v.float(), need_weights=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=3e-2, rtol=3e-2)
    out.float().sum().backward()
    assert all(torch.isfinite(t.grad.float()).all() for t in (q, k, v))
    # The whole public contract with the kernel as the fast path, alone and as multihead's score.
    check_attention(Additive, device=device)
    check_attention(lambda q, k, v, dropout=0.0: MultiHead(q, k, v, heads=2, score="additive", dropout=dropout),
                    query_dim=8, key_dim=8, value_dim=8, device=device)
    print("kernel cases", checked)
""")


def run_script(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "kernel cases 5" in result.stdout
    return result.stdout


def test_triton_additive_kernel_matches_explicit_path_under_interpreter():
    run_script({**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1", "KERNEL_DEVICE": "cpu"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.py runs it on one)")
def test_triton_additive_kernel_compiled_on_cuda_matches_explicit_path():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    assert "tf32 case checked" in run_script({**env, "KERNEL_DEVICE": "cuda"})
