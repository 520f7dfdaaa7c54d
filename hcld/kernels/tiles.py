"""Triton building blocks shared by the ICLD and SupCon/LCL kernels.

A "tile" is a BLOCK_M x BLOCK_N block of the cosine matrix between rows of R and rows of C. It is
built from the raw (unnormalised) inputs by looping over D in BLOCK_K chunks, so normalisation is
fused: the raw dot products are scaled by 1/max(||r||, eps) * 1/max(||c||, eps) afterwards.

Importing this module imports triton and decorates the kernels; `kernels/__init__.py` imports it
lazily so that TRITON_INTERPRET=1 set by a test before the first call still takes effect.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from hcld.kernels import interpreting
from hcld.kernels.reference import NORM_EPS

# fp32 inputs: "ieee" multiplies exactly (CUDA cores), like the eager reference under PyTorch's
# default matmul precision; "tf32" uses tensor cores (~10 mantissa bits, ~1e-3 relative error in a
# cosine) for the TF32 roofline. fp16/bf16 inputs always use tensor cores with fp32 accumulation.
# The default stays "ieee" until a device run shows what TF32 costs in gradient error; read at call
# time (a different value is a different kernel specialisation, recorded by the benchmark).
FP32_DOT_PRECISION = os.environ.get("HCLD_FP32_DOT_PRECISION", "ieee")
EPS = tl.constexpr(NORM_EPS)  # jit code may only read constexpr globals


@dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


# Per input dtype (and fp32 dot precision) and pass: the default first, then the other candidates
# kernels.autotune times on a device (num_stages 2-4, wider K or N tiles, fewer warps for exact fp32).
# Every entry compiles for sm_90 without register spills for every kernel specialisation at the
# launched signatures (`hcld-grid bench compile --all-configs`, asserted by
# tests/benchmarks/test_compile_check.py); configs that spilled in any specialisation were dropped (128-row
# forward tiles, fp32 64x64 backward at 3 stages, fp32 32x64 forward at 4 warps). The backward takes
# the wider column tile where it fits (half the gradient-slab read-modify-write passes); the forward's
# online softmax keeps more per-row state. Exact fp32 dots run on CUDA cores with operands in
# registers, hence the narrower fp32 tiles. The defaults are untuned guesses until a device run.
_HALF = {"forward": (TileConfig(64, 64, 32, 8, 3), TileConfig(64, 64, 64, 8, 3), TileConfig(64, 64, 32, 8, 2),
                     TileConfig(64, 64, 32, 8, 4), TileConfig(64, 64, 64, 8, 4)),
         "backward": (TileConfig(64, 128, 32, 8, 2), TileConfig(64, 64, 64, 8, 3), TileConfig(64, 64, 32, 8, 3),
                      TileConfig(64, 128, 32, 8, 3), TileConfig(64, 128, 64, 8, 2), TileConfig(64, 64, 32, 8, 4))}
CONFIGS = {
    "fp32": {"forward": (TileConfig(64, 32, 32, 8, 2), TileConfig(32, 32, 32, 4, 3), TileConfig(64, 32, 32, 8, 3),
                         TileConfig(64, 32, 32, 8, 4)),
             "backward": (TileConfig(64, 64, 32, 8, 2), TileConfig(64, 32, 32, 8, 2), TileConfig(64, 32, 32, 8, 3),
                          TileConfig(64, 32, 32, 8, 4))},
    "tf32": {"forward": (TileConfig(64, 64, 32, 8, 3), TileConfig(64, 64, 32, 8, 2), TileConfig(64, 64, 32, 8, 4),
                         TileConfig(64, 64, 64, 8, 3)),
             "backward": (TileConfig(64, 128, 32, 8, 2), TileConfig(64, 64, 32, 8, 3), TileConfig(64, 128, 32, 8, 3),
                          TileConfig(64, 64, 32, 8, 4))},
    "fp16": _HALF,
    "bf16": _HALF,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def config_key(dtype: torch.dtype) -> str:
    """Which CONFIGS row a dtype launches with: fp32 under TF32 compiles to other code than exact fp32."""
    name = DTYPE_NAMES[dtype]
    return "tf32" if name == "fp32" and FP32_DOT_PRECISION == "tf32" else name


def dot_options(dtype: torch.dtype) -> dict:
    """Constexpr flags of the dots. Cosines: exact fp32 (or TF32, see FP32_DOT_PRECISION) for fp32
    inputs, tensor cores on the raw fp16/bf16 inputs with fp32 accumulation. Gradient product: the
    weights stay fp32 (in fp16 the softmax weights, ~1/N, turn subnormal at large N), so it is an fp32
    dot; for half inputs in TF32, which holds the half-precision columns exactly and the weights with
    fp16's mantissa but fp32's range. The interpreter multiplies bf16 as raw bits (wrong results), so
    there bf16 operands are rounded to bf16 and then multiplied in fp32: same rounding as on a GPU."""
    fp32 = dtype == torch.float32
    return {
        "UPCAST_DOT": interpreting() and dtype == torch.bfloat16,
        "DOT_PRECISION": FP32_DOT_PRECISION if fp32 else None,
        "GRAD_PRECISION": FP32_DOT_PRECISION if fp32 else "tf32",
    }


def check_inputs(name: str, *tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.dim() != 2:
            raise ValueError(f"{name}: embeddings must be 2-D [N, D], got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{name}: embeddings must be fp32, fp16 or bf16, got {t.dtype}")


_PLANNED_SMS: int | None = None  # set by planning_for: plan CPU launches as for a GPU of that size


@contextlib.contextmanager
def planning_for(sms: int):
    """Within this block, launches on CPU tensors are planned (column slices) as on a GPU with `sms`
    multiprocessors: how benchmarks.compile_check reproduces a GPU launch without one."""
    global _PLANNED_SMS
    previous, _PLANNED_SMS = _PLANNED_SMS, sms
    try:
        yield
    finally:
        _PLANNED_SMS = previous


def _sm_count(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _PLANNED_SMS


def column_splits(row_blocks: int, n_cols: int, d: int, block_n: int, num_warps: int, device: torch.device) -> int:
    """How many slices the column range is cut into. Enough programs to fill the GPU once when there
    are few row blocks (LCL's 4 anchors, small N): the main kernels need 128-255 registers a thread,
    so an SM holds one 8-warp program (two of 4 warps). Capped by memory: the backward's [slices, M, D]
    fp32 buffer stays within two [M, N] fp32 matrices (the eager reference holds several), and never
    more slices than column tiles."""
    sms = _sm_count(device)
    if not sms:
        return 1
    col_blocks = triton.cdiv(max(n_cols, 1), block_n)
    per_sm = max(1, 8 // num_warps)
    want = triton.cdiv(sms * per_sm, max(row_blocks, 1))
    memory_cap = max(1, (2 * n_cols) // max(d, 1))
    return max(1, min(col_blocks, want, memory_cap))


@dataclass(frozen=True)
class Plan:
    """Launch shape of one call: tiles, grid (row blocks x column slices) and compiler options."""

    block_m: int
    block_n: int
    block_k: int
    row_blocks: int
    splits: int
    num_warps: int
    num_stages: int

    def meta(self, dtype: torch.dtype) -> dict:
        return dict(BLOCK_M=self.block_m, BLOCK_N=self.block_n, BLOCK_K=self.block_k, num_warps=self.num_warps,
                    num_stages=self.num_stages, **dot_options(dtype))

    @property
    def grid(self) -> tuple[int, int]:
        return (self.row_blocks, self.splits)


class Tiling:
    """Tile sizes and column slicing for one call: the default config of the dtype and pass (CONFIGS)
    unless given, shrunk to the problem (never below 16, tl.dot's minimum)."""

    def __init__(self, block_m=None, block_n=None, block_k=None, splits=None, num_warps=None, num_stages=None):
        self.block_m, self.block_n, self.block_k = block_m, block_n, block_k
        self.splits, self.num_warps, self.num_stages = splits, num_warps, num_stages

    @property
    def fixes_tiles(self) -> bool:
        """Whether the caller chose a tile size, warps or stages (then kernels.autotune leaves them)."""
        return any(v is not None for v in (self.block_m, self.block_n, self.block_k, self.num_warps,
                                           self.num_stages))

    def with_config(self, config: TileConfig) -> Tiling:
        """This tiling with `config`'s tiles, warps and stages (the column slices stay as given)."""
        return Tiling(config.block_m, config.block_n, config.block_k, self.splits, config.num_warps,
                      config.num_stages)

    def plan(self, m: int, n: int, d: int, dtype: torch.dtype, device: torch.device, stage: str) -> Plan:
        """stage: "forward" or "backward" (their default tiles differ)."""
        default = CONFIGS[config_key(dtype)][stage][0]
        fit = lambda block, size: max(16, min(block, triton.next_power_of_2(max(size, 1))))
        bm = fit(self.block_m or default.block_m, m)
        bn = fit(self.block_n or default.block_n, n)
        bk = fit(self.block_k or default.block_k, d)
        warps = self.num_warps or default.num_warps
        row_blocks = triton.cdiv(max(m, 1), bm)
        splits = self.splits or column_splits(row_blocks, n, d, bn, warps, device)
        splits = max(1, min(splits, triton.cdiv(max(n, 1), bn)))
        return Plan(bm, bn, bk, row_blocks, splits, warps, self.num_stages or default.num_stages)


@triton.jit
def mm(a, b, acc, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """acc + a @ b with fp32 accumulation."""
    if UPCAST_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def row_block(M, N, n_splits, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The prologue of every tiled kernel: program (row block, column slice) -> its row offsets and
    mask and its column range [lo, hi), whole column tiles per slice."""
    split = tl.program_id(1)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.cdiv(tl.cdiv(N, BLOCK_N), n_splits) * BLOCK_N
    lo = split * cols
    return split, offs_m, offs_m < M, lo, tl.minimum(lo + cols, N)


@triton.jit
def _inv_norm_kernel(x_ptr, out_ptr, N, D, stride, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    offs = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask = offs < N
    ss = tl.zeros([BLOCK_M], dtype=tl.float32)
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs[:, None] * stride + offs_k[None, :],
                    mask=mask[:, None] & (offs_k[None, :] < D), other=0.0).to(tl.float32)
        ss += tl.sum(x * x, axis=1)
    tl.store(out_ptr + offs, 1.0 / tl.maximum(tl.sqrt(ss), EPS), mask=mask)


def inverse_norms(x: torch.Tensor) -> torch.Tensor:
    """fp32 [N]: 1 / max(||x_i||, eps), as F.normalize divides. Computed once in the forward and
    saved, so no tile loop recomputes a norm."""
    n, d = x.shape
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    if n:
        _inv_norm_kernel[(triton.cdiv(n, 64),)](x, out, n, d, x.stride(0), BLOCK_M=64,
                                                 BLOCK_K=max(16, min(128, triton.next_power_of_2(d))))
    return out


@triton.jit
def cosine_tile(r_ptr, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_r, inv_c, D, stride_r, stride_c,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """cos[BLOCK_M, BLOCK_N] between rows of R and C: raw dot products over D, then the saved
    inverse norms (normalisation fused, the inputs never rewritten)."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < D
        r = tl.load(r_ptr + offs_m[:, None] * stride_r + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        c = tl.load(c_ptr + offs_n[:, None] * stride_c + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0)
        acc = mm(r, tl.trans(c), acc, UPCAST_DOT, DOT_PRECISION)
    return acc * inv_r[:, None] * inv_c[None, :]


@triton.jit
def zero_rows(g_ptr, offs_m, mask_m, D, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        tl.store(g_ptr + offs_m[:, None] * D + offs_k[None, :],
                 tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32),
                 mask=mask_m[:, None] & (offs_k[None, :] < D))


@triton.jit
def accumulate_rows(g_ptr, w, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_c, D, stride_c,
                    BLOCK_K: tl.constexpr, GRAD_PRECISION: tl.constexpr):
    """G[offs_m, :] += w @ normalize(C[offs_n, :]) into an fp32 buffer (row stride D) that only this
    program writes, so the sum order is fixed: deterministic without atomics. The columns' inverse
    norms are folded into the fp32 weights, so the raw columns feed the dot unscaled and unrounded."""
    w = w * inv_c[None, :]
    # the previous tile's G stores may come from other threads than this tile's G loads (layouts
    # differ around the dot): one barrier per tile orders them within the program
    tl.debug_barrier()
    for k in range(0, D, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < D
        c = tl.load(c_ptr + offs_n[:, None] * stride_c + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        g_ptrs = g_ptr + offs_m[:, None] * D + offs_k[None, :]
        g_mask = mask_m[:, None] & mask_k[None, :]
        g = tl.load(g_ptrs, mask=g_mask, other=0.0)
        g = tl.dot(w, c, g, input_precision=GRAD_PRECISION)
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
                       multiplier: float, *, block_m: int = 64, block_k: int = 32) -> torch.Tensor:
    """Gradient w.r.t. the raw x from G = dL/dz summed over its slices, times grad * scale * multiplier
    (grad: the loss's upstream gradient, scale: a 1-element fp32 tensor)."""
    n, d = x.shape
    dx = torch.empty((n, d), dtype=x.dtype, device=x.device)
    if n == 0:
        return dx
    _normalize_backward_kernel[(triton.cdiv(n, block_m),)](
        g, x, dx, grad, scale, multiplier, n, d, x.stride(0), g.shape[0], BLOCK_M=block_m, BLOCK_K=block_k)
    return dx
