"""Triton building blocks shared by the ICLD and SupCon/LCL kernels.

A "tile" is a BLOCK_M x BLOCK_N block of the cosine matrix between rows of R and rows of C. It is
built from the raw (unnormalised) inputs by looping over D in BLOCK_K chunks, so normalisation is
fused: the raw dot products are scaled by 1/max(||r||, eps) * 1/max(||c||, eps) afterwards.

Importing this module imports triton and decorates the kernels; `kernels/__init__.py` imports it
lazily so that TRITON_INTERPRET=1 set by a test before the first call still takes effect.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from kernels.reference import NORM_EPS

# Default tiles and launch shape for a GPU, chosen so that every kernel compiles for sm_90 without
# register spills (ptxas -v, all dtypes; not yet tuned on a device). The tests pass 16s instead, so
# several tiles and the ragged edge are hit at small N.
BLOCK_M = 64
BLOCK_N = 64
BLOCK_K = 32
LAUNCH = {"num_warps": 8, "num_stages": 1}
# fp32 inputs: "ieee" multiplies exactly (CUDA cores), like the eager reference under PyTorch's
# default matmul precision; "tf32" uses tensor cores (~10 mantissa bits, ~1e-3 relative error in a
# cosine) for the TF32 roofline. fp16/bf16 inputs always use tensor cores with fp32 accumulation.
FP32_DOT_PRECISION = "ieee"
EPS = tl.constexpr(NORM_EPS)  # jit code may only read constexpr globals


def interpreting() -> bool:
    """True when triton runs kernels through its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def dot_options(dtype: torch.dtype) -> dict:
    """Constexpr flags for `mm`: exact fp32 dots for fp32 inputs (matching the reference, whose
    matmul does not use TF32 by default), tensor-core dots for fp16/bf16 with fp32 accumulation.
    The interpreter multiplies bf16 as raw bits (wrong results), so there bf16 operands are rounded
    to bf16 and then multiplied in fp32: same operand rounding as on a GPU."""
    return {
        "UPCAST_DOT": interpreting() and dtype == torch.bfloat16,
        "DOT_PRECISION": FP32_DOT_PRECISION if dtype == torch.float32 else None,
    }


def check_inputs(name: str, *tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.dim() != 2:
            raise ValueError(f"{name}: embeddings must be 2-D [N, D], got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{name}: embeddings must be fp32, fp16 or bf16, got {t.dtype}")


def column_splits(row_blocks: int, n_cols: int, block_n: int, device: torch.device) -> int:
    """How many slices the column range is cut into: enough programs to fill the GPU when there are
    few row blocks (LCL's 4 anchors, small N), never more slices than column tiles."""
    col_blocks = triton.cdiv(max(n_cols, 1), block_n)
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    want = triton.cdiv(2 * sms, max(row_blocks, 1))
    return max(1, min(col_blocks, want))


@triton.jit
def mm(a, b, acc, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """acc + a @ b with fp32 accumulation."""
    if UPCAST_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def inv_norm(ptr, offs, mask, D, stride, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """1 / max(||x_i||, eps) for the BLOCK_M rows `offs` (fp32), as F.normalize divides."""
    ss = tl.zeros([BLOCK_M], dtype=tl.float32)
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        x = tl.load(ptr + offs[:, None] * stride + offs_k[None, :],
                    mask=mask[:, None] & (offs_k[None, :] < D), other=0.0).to(tl.float32)
        ss += tl.sum(x * x, axis=1)
    return 1.0 / tl.maximum(tl.sqrt(ss), EPS)


@triton.jit
def cosine_tile(r_ptr, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_r, D, stride_r, stride_c,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """(cos[BLOCK_M, BLOCK_N], inv_c[BLOCK_N]): cosines between rows of R and C, and the columns'
    inverse norms (computed in the same pass over D, so C is read once per tile)."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    ss_c = tl.zeros([BLOCK_N], dtype=tl.float32)
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < D
        r = tl.load(r_ptr + offs_m[:, None] * stride_r + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        c = tl.load(c_ptr + offs_n[:, None] * stride_c + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0)
        acc = mm(r, tl.trans(c), acc, UPCAST_DOT, DOT_PRECISION)
        cf = c.to(tl.float32)
        ss_c += tl.sum(cf * cf, axis=1)
    inv_c = 1.0 / tl.maximum(tl.sqrt(ss_c), EPS)
    return acc * inv_r[:, None] * inv_c[None, :], inv_c


@triton.jit
def zero_rows(g_ptr, offs_m, mask_m, D, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        tl.store(g_ptr + offs_m[:, None] * D + offs_k[None, :],
                 tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32),
                 mask=mask_m[:, None] & (offs_k[None, :] < D))


@triton.jit
def accumulate_rows(g_ptr, w, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_c, D, stride_c,
                    BLOCK_K: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """G[offs_m, :] += w @ normalize(C[offs_n, :]) into an fp32 buffer (row stride D) that only this
    program writes, so the sum order is fixed: deterministic without atomics. w and the normalised
    columns are both bounded by small constants, so casting them to the input dtype for the
    tensor-core dot cannot overflow."""
    dtype = c_ptr.dtype.element_ty
    wd = w.to(dtype)
    # the previous tile's G stores may come from other threads than this tile's G loads (layouts
    # differ around the dot): one barrier per tile orders them within the program
    tl.debug_barrier()
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < D
        c = tl.load(c_ptr + offs_n[:, None] * stride_c + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        z = (c * inv_c[:, None]).to(dtype)
        g_ptrs = g_ptr + offs_m[:, None] * D + offs_k[None, :]
        g_mask = mask_m[:, None] & mask_k[None, :]
        g = tl.load(g_ptrs, mask=g_mask, other=0.0)
        g = mm(wd, z, g, UPCAST_DOT, DOT_PRECISION)
        tl.store(g_ptrs, g, mask=g_mask)


@triton.jit
def _normalize_backward_kernel(g_ptr, x_ptr, dx_ptr, grad_ptr, scale_ptr, multiplier, N, D, stride_x, n_splits,
                               BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """dx = coef * d normalize(x) given G = sum over the column slices of dL/dz (fp32 [S, N, D]),
    coef = upstream grad * scale * multiplier, read on the device (no host sync, no extra launch).

    z = x / max(||x||, eps): for ||x|| > eps, dx = (G - (G.z) z) / ||x||; below eps the divisor is
    the constant eps, so dx = G / eps (what autograd gives for F.normalize).
    """
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < N
    coef = tl.load(grad_ptr).to(tl.float32) * tl.load(scale_ptr) * multiplier
    ss = tl.zeros([BLOCK_M], dtype=tl.float32)
    gx = tl.zeros([BLOCK_M], dtype=tl.float32)
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask = mask_m[:, None] & (offs_k[None, :] < D)
        x = tl.load(x_ptr + offs_m[:, None] * stride_x + offs_k[None, :], mask=mask, other=0.0).to(tl.float32)
        g = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
        for s in range(0, n_splits):  # fixed order over slices: deterministic
            g += tl.load(g_ptr + s * N * D + offs_m[:, None] * D + offs_k[None, :], mask=mask, other=0.0)
        ss += tl.sum(x * x, axis=1)
        gx += tl.sum(g * x, axis=1)
    norm = tl.sqrt(ss)
    inv = 1.0 / tl.maximum(norm, EPS)
    proj = tl.where(norm > EPS, gx * inv * inv, 0.0)  # (G.z) / ||x||, 0 below eps
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask = mask_m[:, None] & (offs_k[None, :] < D)
        x = tl.load(x_ptr + offs_m[:, None] * stride_x + offs_k[None, :], mask=mask, other=0.0).to(tl.float32)
        g = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
        for s in range(0, n_splits):
            g += tl.load(g_ptr + s * N * D + offs_m[:, None] * D + offs_k[None, :], mask=mask, other=0.0)
        dx = coef * inv[:, None] * (g - proj[:, None] * x)
        tl.store(dx_ptr + offs_m[:, None] * D + offs_k[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)


def normalize_backward(g: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, scale: torch.Tensor,
                       multiplier: float, *, block_m: int = BLOCK_M, block_k: int = BLOCK_K) -> torch.Tensor:
    """Gradient w.r.t. the raw x from G = dL/dz summed over its slices, times grad * scale * multiplier
    (grad: the loss's upstream gradient, scale: a 1-element fp32 tensor)."""
    n, d = x.shape
    dx = torch.empty((n, d), dtype=x.dtype, device=x.device)
    if n == 0:
        return dx
    _normalize_backward_kernel[(triton.cdiv(n, block_m),)](
        g, x, dx, grad, scale, multiplier, n, d, x.stride(0), g.shape[0], BLOCK_M=block_m, BLOCK_K=block_k)
    return dx
