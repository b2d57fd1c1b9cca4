"""Fused additive attention in Triton: out = softmax_j(vᵀ tanh(qp_i + kp_j)) V, forward and backward, with online
softmax (Flash-Attention style), never materialising the (B, Tq, Tk, A) tanh tensor in memory.

Shapes: B batch (heads folded in), Tq queries, Tk keys, A additive hidden width, Dv value width.
qp = W_q q (B, Tq, A) and kp = W_k k (B, Tk, A) come from the module's projections (autograd handles those);
w = v.weight (A,); keep (B|1, 1|Tq, Tk) bool, True = attend (padding and causal combined), or None.

Forward: per block of BLOCK_M queries, loop over key blocks; the scores of a (BLOCK_M, BLOCK_N) tile are summed
over A in chunks of BLOCK_A; running max / sum / output as in FlashAttention; the log-sum-exp is saved.
Backward: Delta = rowsum(dO * O); one kernel per key block accumulates dV, d(kp) and partial dw over all queries;
one kernel per query block accumulates d(qp). Scores are recomputed, not stored. tanh' = 1 - tanh².

Runs on CUDA tensors, or on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1, how the tests check it).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M = 16
BLOCK_N = 16
BLOCK_A = 16


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _tanh_tile(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, offs_a, Tq, Tk, A, s_qm, s_km):
    """tanh(qp[m, a] + kp[n, a]) for one chunk of A: the (M, N, BA) tile, and w over the chunk (0 past A)."""
    a_ok = offs_a < A
    q = tl.load(qp_ptr + offs_m[:, None] * s_qm + offs_a[None, :], mask=(offs_m < Tq)[:, None] & a_ok[None, :],
                other=0.0).to(tl.float32)  # (M, BA)
    k = tl.load(kp_ptr + offs_n[:, None] * s_km + offs_a[None, :], mask=(offs_n < Tk)[:, None] & a_ok[None, :],
                other=0.0).to(tl.float32)  # (N, BA)
    w = tl.load(w_ptr + offs_a, mask=a_ok, other=0.0).to(tl.float32)  # (BA,)
    return _tanh(q[:, None, :] + k[None, :, :]), w  # (M, N, BA), (BA,)


@triton.jit
def _scores(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, Tq, Tk, A, s_qm, s_km,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_A: tl.constexpr):
    """(BLOCK_M, BLOCK_N) scores sum_a w_a tanh(qp[m, a] + kp[n, a]), A in chunks of BLOCK_A."""
    s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for a0 in range(0, A, BLOCK_A):
        t, w = _tanh_tile(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, a0 + tl.arange(0, BLOCK_A), Tq, Tk, A, s_qm, s_km)
        s += tl.sum(t * w[None, None, :], axis=2)
    return s


@triton.jit
def _valid(keep_ptr, offs_m, offs_n, Tq, Tk, s_keep_m, HAS_MASK: tl.constexpr):
    valid = (offs_m < Tq)[:, None] & (offs_n < Tk)[None, :]
    if HAS_MASK:
        keep = tl.load(keep_ptr + offs_m[:, None] * s_keep_m + offs_n[None, :], mask=valid, other=0)
        valid = valid & (keep != 0)
    return valid


@triton.jit
def _forward_kernel(qp_ptr, kp_ptr, w_ptr, v_ptr, keep_ptr, out_ptr, lse_ptr, Tq, Tk, A, Dv,
                    s_qb, s_qm, s_kb, s_km, s_vb, s_vn, s_keep_b, s_keep_m, s_ob, s_om, s_lb,
                    HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_A: tl.constexpr,
                    BLOCK_D: tl.constexpr, DOT: tl.constexpr):
    pid_m, b = tl.program_id(0), tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    qp_ptr += b * s_qb
    kp_ptr += b * s_kb
    v_ptr += b * s_vb
    keep_ptr += b * s_keep_b
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, Tk, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        s = _scores(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, Tq, Tk, A, s_qm, s_km, BLOCK_M, BLOCK_N, BLOCK_A)
        s = tl.where(_valid(keep_ptr, offs_m, offs_n, Tq, Tk, s_keep_m, HAS_MASK), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing to attend to yet
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])  # (M, N)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + offs_n[:, None] * s_vn + offs_d[None, :],
                    mask=(offs_n < Tk)[:, None] & (offs_d < Dv)[None, :], other=0.0).to(tl.float32)  # (N, D)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision=DOT)
        m_i = m_new
    empty = l_i == 0.0  # fully masked row: output 0 (the attention contract), lse +inf so backward gives 0
    out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_i)[:, None])
    lse = tl.where(empty, float("inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
    m_ok = offs_m < Tq
    tl.store(out_ptr + b * s_ob + offs_m[:, None] * s_om + offs_d[None, :], out.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & (offs_d < Dv)[None, :])
    tl.store(lse_ptr + b * s_lb + offs_m, lse, mask=m_ok)


@triton.jit
def _probabilities(qp_ptr, kp_ptr, w_ptr, keep_ptr, lse_ptr, do_ptr, v_ptr, delta_ptr, offs_m, offs_n, offs_d,
                   Tq, Tk, A, Dv, s_qm, s_km, s_vn, s_keep_m, s_om,
                   HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_A: tl.constexpr,
                   DOT: tl.constexpr):
    """For one (M, N) tile: probabilities p, dS = p * (dO·V - Delta), and the dO and V tiles."""
    s = _scores(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, Tq, Tk, A, s_qm, s_km, BLOCK_M, BLOCK_N, BLOCK_A)
    valid = _valid(keep_ptr, offs_m, offs_n, Tq, Tk, s_keep_m, HAS_MASK)
    lse = tl.load(lse_ptr + offs_m, mask=offs_m < Tq, other=float("inf"))
    p = tl.where(valid, tl.exp(s - lse[:, None]), 0.0)  # (M, N)
    do = tl.load(do_ptr + offs_m[:, None] * s_om + offs_d[None, :],
                 mask=(offs_m < Tq)[:, None] & (offs_d < Dv)[None, :], other=0.0).to(tl.float32)  # (M, D)
    v = tl.load(v_ptr + offs_n[:, None] * s_vn + offs_d[None, :],
                mask=(offs_n < Tk)[:, None] & (offs_d < Dv)[None, :], other=0.0).to(tl.float32)  # (N, D)
    delta = tl.load(delta_ptr + offs_m, mask=offs_m < Tq, other=0.0)
    ds = p * (tl.dot(do, tl.trans(v), input_precision=DOT) - delta[:, None])  # (M, N)
    return p, ds, do


@triton.jit
def _backward_kv_kernel(qp_ptr, kp_ptr, w_ptr, v_ptr, keep_ptr, lse_ptr, do_ptr, delta_ptr,
                        dkp_ptr, dv_ptr, dw_ptr, Tq, Tk, A, Dv,
                        s_qb, s_qm, s_kb, s_km, s_vb, s_vn, s_keep_b, s_keep_m, s_ob, s_om, s_lb, n_blocks,
                        HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_A: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr):
    pid_n, b = tl.program_id(0), tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    qp_ptr += b * s_qb
    kp_ptr += b * s_kb
    v_ptr += b * s_vb
    keep_ptr += b * s_keep_b
    lse_ptr += b * s_lb
    delta_ptr += b * s_lb
    do_ptr += b * s_ob
    dkp_ptr += b * s_kb  # dkp (fp32) is laid out like kp; this program owns rows offs_n
    dw_ptr += (b * n_blocks + pid_n) * A  # one partial dw row per program, summed afterwards
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    for m0 in range(0, Tq, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        p, ds, do = _probabilities(qp_ptr, kp_ptr, w_ptr, keep_ptr, lse_ptr, do_ptr, v_ptr, delta_ptr, offs_m,
                                   offs_n, offs_d, Tq, Tk, A, Dv, s_qm, s_km, s_vn, s_keep_m, s_om,
                                   HAS_MASK, BLOCK_M, BLOCK_N, BLOCK_A, DOT)
        dv += tl.dot(tl.trans(p), do, input_precision=DOT)
        for a0 in range(0, A, BLOCK_A):
            offs_a = a0 + tl.arange(0, BLOCK_A)
            a_ok = offs_a < A
            t, w = _tanh_tile(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, offs_a, Tq, Tk, A, s_qm, s_km)  # (M, N, BA)
            g = ds[:, :, None] * (1.0 - t * t)  # d score / d (qp + kp), before w
            dk_ptrs = dkp_ptr + offs_n[:, None] * s_km + offs_a[None, :]
            dk_mask = (offs_n < Tk)[:, None] & a_ok[None, :]
            tl.store(dk_ptrs, tl.load(dk_ptrs, mask=dk_mask, other=0.0) + tl.sum(g, axis=0) * w[None, :], mask=dk_mask)
            dw_part = tl.sum(tl.sum(ds[:, :, None] * t, axis=0), axis=0)  # (BA,)
            tl.store(dw_ptr + offs_a, tl.load(dw_ptr + offs_a, mask=a_ok, other=0.0) + dw_part, mask=a_ok)
    tl.store(dv_ptr + b * s_vb + offs_n[:, None] * s_vn + offs_d[None, :], dv.to(dv_ptr.dtype.element_ty),
             mask=(offs_n < Tk)[:, None] & (offs_d < Dv)[None, :])


@triton.jit
def _backward_q_kernel(qp_ptr, kp_ptr, w_ptr, v_ptr, keep_ptr, lse_ptr, do_ptr, delta_ptr, dqp_ptr, Tq, Tk, A, Dv,
                       s_qb, s_qm, s_kb, s_km, s_vb, s_vn, s_keep_b, s_keep_m, s_ob, s_om, s_lb,
                       HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_A: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr):
    pid_m, b = tl.program_id(0), tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    qp_ptr += b * s_qb
    kp_ptr += b * s_kb
    v_ptr += b * s_vb
    keep_ptr += b * s_keep_b
    lse_ptr += b * s_lb
    delta_ptr += b * s_lb
    do_ptr += b * s_ob
    dqp_ptr += b * s_qb  # fp32, laid out like qp; this program owns rows offs_m
    for n0 in range(0, Tk, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        p, ds, do = _probabilities(qp_ptr, kp_ptr, w_ptr, keep_ptr, lse_ptr, do_ptr, v_ptr, delta_ptr, offs_m,
                                   offs_n, offs_d, Tq, Tk, A, Dv, s_qm, s_km, s_vn, s_keep_m, s_om,
                                   HAS_MASK, BLOCK_M, BLOCK_N, BLOCK_A, DOT)
        for a0 in range(0, A, BLOCK_A):
            offs_a = a0 + tl.arange(0, BLOCK_A)
            a_ok = offs_a < A
            t, w = _tanh_tile(qp_ptr, kp_ptr, w_ptr, offs_m, offs_n, offs_a, Tq, Tk, A, s_qm, s_km)  # (M, N, BA)
            g = ds[:, :, None] * (1.0 - t * t)
            dq_ptrs = dqp_ptr + offs_m[:, None] * s_qm + offs_a[None, :]
            dq_mask = (offs_m < Tq)[:, None] & a_ok[None, :]
            tl.store(dq_ptrs, tl.load(dq_ptrs, mask=dq_mask, other=0.0) + tl.sum(g, axis=1) * w[None, :], mask=dq_mask)


def _keep_layout(keep: torch.Tensor | None, B: int, Tq: int, Tk: int, device) -> tuple[torch.Tensor, int, int, bool]:
    """The mask as int8 broadcast to (B, 1|Tq, Tk) without copying, and its batch / query strides."""
    if keep is None:
        return torch.zeros(1, dtype=torch.int8, device=device), 0, 0, False
    keep = keep.to(torch.int8)
    keep = keep.expand(B, keep.size(1), Tk)
    if keep.stride(2) != 1:
        keep = keep.contiguous()
    return keep, keep.stride(0), (keep.stride(1) if keep.size(1) == Tq and Tq > 1 else 0), True


def _block_d(Dv: int) -> int:
    return max(16, triton.next_power_of_2(Dv))  # tl.dot needs every dimension >= 16


def _dot_precision() -> str:
    """tl.dot's precision for its fp32 tiles (every tile is fp32 here, bf16 inputs included: they are upcast on
    load). Triton's default is TF32 (10-bit mantissa) on Ampere and later; PyTorch's fp32 matmuls are full fp32
    unless torch.backends.cuda.matmul.allow_tf32 is set. The kernel follows PyTorch's setting, so the fast path is
    as precise as the explicit path it replaces: "ieee" by default, "tf32" where the user allowed TF32."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


class AdditiveAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qp, kp, w, value, keep):
        qp, kp, w, value = qp.contiguous(), kp.contiguous(), w.contiguous(), value.contiguous()
        (B, Tq, A), Tk, Dv = qp.shape, kp.size(1), value.size(2)
        out = torch.empty(B, Tq, Dv, device=qp.device, dtype=value.dtype)
        lse = torch.empty(B, Tq, device=qp.device, dtype=torch.float32)
        keep_t, s_keep_b, s_keep_m, has_mask = _keep_layout(keep, B, Tq, Tk, qp.device)
        grid = (triton.cdiv(Tq, BLOCK_M), B)
        _forward_kernel[grid](qp, kp, w, value, keep_t, out, lse, Tq, Tk, A, Dv,
                              qp.stride(0), qp.stride(1), kp.stride(0), kp.stride(1), value.stride(0), value.stride(1),
                              s_keep_b, s_keep_m, out.stride(0), out.stride(1), lse.stride(0),
                              HAS_MASK=has_mask, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_A=BLOCK_A,
                              BLOCK_D=_block_d(Dv), DOT=_dot_precision())
        ctx.save_for_backward(qp, kp, w, value, keep_t, out, lse)
        ctx.mask = (s_keep_b, s_keep_m, has_mask)
        return out

    @staticmethod
    def backward(ctx, dout):
        qp, kp, w, value, keep_t, out, lse = ctx.saved_tensors
        s_keep_b, s_keep_m, has_mask = ctx.mask
        (B, Tq, A), Tk, Dv = qp.shape, kp.size(1), value.size(2)
        dout = dout.contiguous()
        delta = (dout.float() * out.float()).sum(-1)  # (B, Tq)
        dqp = torch.zeros(B, Tq, A, device=qp.device, dtype=torch.float32)
        dkp = torch.zeros(B, Tk, A, device=qp.device, dtype=torch.float32)
        dvalue = torch.empty_like(value)
        n_blocks = triton.cdiv(Tk, BLOCK_N)
        dw = torch.zeros(B * n_blocks, A, device=qp.device, dtype=torch.float32)
        strides = (qp.stride(0), qp.stride(1), kp.stride(0), kp.stride(1), value.stride(0), value.stride(1),
                   s_keep_b, s_keep_m, dout.stride(0), dout.stride(1), lse.stride(0))
        meta = dict(HAS_MASK=has_mask, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_A=BLOCK_A, BLOCK_D=_block_d(Dv),
                    DOT=_dot_precision())
        _backward_kv_kernel[(n_blocks, B)](qp, kp, w, value, keep_t, lse, dout, delta, dkp, dvalue, dw, Tq, Tk, A, Dv,
                                           *strides, n_blocks, **meta)
        _backward_q_kernel[(triton.cdiv(Tq, BLOCK_M), B)](qp, kp, w, value, keep_t, lse, dout, delta, dqp, Tq, Tk, A,
                                                          Dv, *strides, **meta)
        return dqp.to(qp.dtype), dkp.to(kp.dtype), dw.sum(0).to(w.dtype), dvalue, None


def additive_attention(qp: torch.Tensor, kp: torch.Tensor, w: torch.Tensor, value: torch.Tensor,
                       keep: torch.Tensor | None) -> torch.Tensor:
    """softmax(vᵀ tanh(qp + kp)) V over keys, masked by keep: (B, Tq, A), (B, Tk, A), (A,), (B, Tk, Dv) -> (B, Tq, Dv)."""
    return AdditiveAttentionFunction.apply(qp, kp, w, value, keep)
