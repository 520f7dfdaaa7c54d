"""Fused Triton ICLD loss (instance-level contrastive decoupling), forward and backward.

L = 1/|x+| sum_{x+} (1 - cos(ze_i, ze_j))^2 + 1/|x-| sum_{x-} hinge(cos(zs_i, zs_j))^2 with
x+ = same speaker & different emotion, x- = different speaker & same emotion (ordered pairs), and
hinge = max(0, c - margin) ("text") or max(0, margin - c) ("printed"); see kernels.reference.icld.

Forward: a program owns BLOCK_M rows and one slice of the columns; per tile it builds both cosine
tiles from the raw embeddings (normalisation fused), the two masks from the label vectors, and
accumulates per-row hinge sums and integer pair counts. Only these [slices, N] vectors reach global
memory; a one-program finalize kernel adds them in a fixed order (float64 sums, int64 counts) and
writes the loss and the backward scales 2/count. Nothing N x N is stored.
Backward: the masks are symmetric, so dL/dze_i = 2/|x+| sum_j [x+]_ij f'(cos_ij) ze_j (and the same
for zs with the hinge); a program accumulates its rows of G tile by tile in a buffer only it writes
(deterministic), then the shared normalisation-backward kernel scales and projects.
Saved for backward: the inputs, the label vectors, the inverse norms (computed once in the forward)
and the two scales; tiles are recomputed.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from hcld.kernels import autotune
from hcld.kernels import tiles as T
from hcld.kernels.reference import ICLD_NEGATIVE_FORMS


@triton.jit
def _pair_masks(offs_m, offs_n, mask_m, mask_n, emo_r, spk_r, emo_ptr, spk_ptr):
    emo_c = tl.load(emo_ptr + offs_n, mask=mask_n, other=0)
    spk_c = tl.load(spk_ptr + offs_n, mask=mask_n, other=0)
    valid = mask_m[:, None] & mask_n[None, :]
    same_spk = spk_r[:, None] == spk_c[None, :]
    same_emo = emo_r[:, None] == emo_c[None, :]
    return valid & same_spk & (~same_emo), valid & (~same_spk) & same_emo


@triton.jit
def _hinge(cos_s, margin, PRINTED: tl.constexpr):
    if PRINTED:
        return tl.maximum(margin - cos_s, 0.0)
    else:
        return tl.maximum(cos_s - margin, 0.0)


@triton.jit
def _icld_forward_kernel(xe_ptr, xs_ptr, emo_ptr, spk_ptr, inv_e_ptr, inv_s_ptr, pos_sum, neg_sum, pos_cnt,
                         neg_cnt, N, De, Ds, stride_e, stride_s, margin, n_splits,
                         PRINTED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_K: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
                         GRAD_PRECISION: tl.constexpr):
    split, offs_m, mask_m, lo, hi = T.row_block(N, N, n_splits, BLOCK_M, BLOCK_N)
    inv_e = tl.load(inv_e_ptr + offs_m, mask=mask_m, other=0.0)
    inv_s = tl.load(inv_s_ptr + offs_m, mask=mask_m, other=0.0)
    emo_r = tl.load(emo_ptr + offs_m, mask=mask_m, other=0)
    spk_r = tl.load(spk_ptr + offs_m, mask=mask_m, other=0)
    ps = tl.zeros([BLOCK_M], dtype=tl.float32)
    ns = tl.zeros([BLOCK_M], dtype=tl.float32)
    pc = tl.zeros([BLOCK_M], dtype=tl.int32)
    nc = tl.zeros([BLOCK_M], dtype=tl.int32)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < hi
        pos, neg = _pair_masks(offs_m, offs_n, mask_m, mask_n, emo_r, spk_r, emo_ptr, spk_ptr)
        # one cosine tile live at a time keeps register pressure down
        inv_c = tl.load(inv_e_ptr + offs_n, mask=mask_n, other=0.0)
        cos_e = T.cosine_tile(xe_ptr, xe_ptr, offs_m, offs_n, mask_m, mask_n, inv_e, inv_c, De, stride_e,
                              stride_e, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        gap = 1.0 - cos_e
        ps += tl.sum(tl.where(pos, gap * gap, 0.0), axis=1)
        pc += tl.sum(pos.to(tl.int32), axis=1)
        inv_c = tl.load(inv_s_ptr + offs_n, mask=mask_n, other=0.0)
        cos_s = T.cosine_tile(xs_ptr, xs_ptr, offs_m, offs_n, mask_m, mask_n, inv_s, inv_c, Ds, stride_s,
                              stride_s, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        h = _hinge(cos_s, margin, PRINTED)
        ns += tl.sum(tl.where(neg, h * h, 0.0), axis=1)
        nc += tl.sum(neg.to(tl.int32), axis=1)
    out = split * N + offs_m
    tl.store(pos_sum + out, ps, mask=mask_m)
    tl.store(neg_sum + out, ns, mask=mask_m)
    tl.store(pos_cnt + out, pc, mask=mask_m)
    tl.store(neg_cnt + out, nc, mask=mask_m)


@triton.jit
def _icld_backward_kernel(xe_ptr, xs_ptr, emo_ptr, spk_ptr, inv_e_ptr, inv_s_ptr, ge_ptr, gs_ptr,
                          N, De, Ds, stride_e, stride_s, margin, n_splits,
                          PRINTED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_K: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
                          GRAD_PRECISION: tl.constexpr):
    """Ge[split, rows] = sum_j [x+] f'(cos_e) ze_j, f' = -2(1 - c); Gs likewise with the hinge's
    derivative (+2 max(0, c - m) for text, -2 max(0, m - c) for printed)."""
    split, offs_m, mask_m, lo, hi = T.row_block(N, N, n_splits, BLOCK_M, BLOCK_N)
    ge_ptr += split * N * De
    gs_ptr += split * N * Ds
    T.zero_rows(ge_ptr, offs_m, mask_m, De, BLOCK_M, BLOCK_K)
    T.zero_rows(gs_ptr, offs_m, mask_m, Ds, BLOCK_M, BLOCK_K)
    inv_e = tl.load(inv_e_ptr + offs_m, mask=mask_m, other=0.0)
    inv_s = tl.load(inv_s_ptr + offs_m, mask=mask_m, other=0.0)
    emo_r = tl.load(emo_ptr + offs_m, mask=mask_m, other=0)
    spk_r = tl.load(spk_ptr + offs_m, mask=mask_m, other=0)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < hi
        pos, neg = _pair_masks(offs_m, offs_n, mask_m, mask_n, emo_r, spk_r, emo_ptr, spk_ptr)
        inv_c = tl.load(inv_e_ptr + offs_n, mask=mask_n, other=0.0)
        cos_e = T.cosine_tile(xe_ptr, xe_ptr, offs_m, offs_n, mask_m, mask_n, inv_e, inv_c, De, stride_e,
                              stride_e, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        w_e = tl.where(pos, -2.0 * (1.0 - cos_e), 0.0)
        T.accumulate_rows(ge_ptr, w_e, xe_ptr, offs_m, offs_n, mask_m, mask_n, inv_c, De, stride_e,
                          BLOCK_K, GRAD_PRECISION)
        inv_c = tl.load(inv_s_ptr + offs_n, mask=mask_n, other=0.0)
        cos_s = T.cosine_tile(xs_ptr, xs_ptr, offs_m, offs_n, mask_m, mask_n, inv_s, inv_c, Ds, stride_s,
                              stride_s, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        h = _hinge(cos_s, margin, PRINTED)
        if PRINTED:
            w_s = tl.where(neg, -2.0 * h, 0.0)
        else:
            w_s = tl.where(neg, 2.0 * h, 0.0)
        T.accumulate_rows(gs_ptr, w_s, xs_ptr, offs_m, offs_n, mask_m, mask_n, inv_c, Ds, stride_s,
                          BLOCK_K, GRAD_PRECISION)


@triton.jit
def _icld_finalize_kernel(ps_ptr, ns_ptr, pc_ptr, nc_ptr, loss_out, scale_out, total_rows, BLOCK: tl.constexpr):
    """One program: loss = sum+/count+ + sum-/count- over all rows and slices, in fp64 / int64
    (N^2 pairs overflow fp32's exact integers long before N = 65536), and the backward scales
    2/count (ordered pairs: each tile term appears twice, as (i, j) and (j, i))."""
    ps = tl.zeros([BLOCK], dtype=tl.float64)
    ns = tl.zeros([BLOCK], dtype=tl.float64)
    pc = tl.zeros([BLOCK], dtype=tl.int64)
    nc = tl.zeros([BLOCK], dtype=tl.int64)
    for start in range(0, total_rows, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < total_rows
        ps += tl.load(ps_ptr + offs, mask=mask, other=0.0).to(tl.float64)
        ns += tl.load(ns_ptr + offs, mask=mask, other=0.0).to(tl.float64)
        pc += tl.load(pc_ptr + offs, mask=mask, other=0).to(tl.int64)
        nc += tl.load(nc_ptr + offs, mask=mask, other=0).to(tl.int64)
    n_pos = tl.maximum(tl.sum(pc, axis=0), 1).to(tl.float64)
    n_neg = tl.maximum(tl.sum(nc, axis=0), 1).to(tl.float64)
    tl.store(loss_out, (tl.sum(ps, axis=0) / n_pos + tl.sum(ns, axis=0) / n_neg).to(tl.float32))
    tl.store(scale_out, (2.0 / n_pos).to(tl.float32))
    tl.store(scale_out + 1, (2.0 / n_neg).to(tl.float32))


def _plan(xe, xs, tiling: T.Tiling, printed: bool, stage: str, launch) -> T.Plan:
    n = xe.shape[0]
    kernel = f"icld_{'printed' if printed else 'text'}_{stage}"
    return autotune.plan(tiling, kernel, n, n, max(xe.shape[1], xs.shape[1]), xe.dtype, xe.device, stage, launch)


class _ICLD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xe, xs, emotion, speaker, margin, printed, tiling):
        n = xe.shape[0]
        inv_e, inv_s = T.inverse_norms(xe), T.inverse_norms(xs)
        f32 = dict(dtype=torch.float32, device=xe.device)
        i32 = dict(dtype=torch.int32, device=xe.device)

        def launch(plan: T.Plan):
            ps, ns = torch.empty((plan.splits, n), **f32), torch.empty((plan.splits, n), **f32)
            pc, nc = torch.empty((plan.splits, n), **i32), torch.empty((plan.splits, n), **i32)
            _icld_forward_kernel[plan.grid](xe, xs, emotion, speaker, inv_e, inv_s, ps, ns, pc, nc, n, xe.shape[1],
                                            xs.shape[1], xe.stride(0), xs.stride(0), margin, plan.splits,
                                            PRINTED=printed, **plan.meta(xe.dtype))
            return ps, ns, pc, nc

        plan = _plan(xe, xs, tiling, printed, "forward", launch)
        ps, ns, pc, nc = launch(plan)
        loss, scales = torch.empty((), **f32), torch.empty(2, **f32)
        _icld_finalize_kernel[(1,)](ps, ns, pc, nc, loss, scales, plan.splits * n,
                                    BLOCK=max(16, min(1024, triton.next_power_of_2(plan.splits * n))))
        ctx.save_for_backward(xe, xs, emotion, speaker, inv_e, inv_s, scales)
        ctx.margin, ctx.printed, ctx.tiling = margin, printed, tiling
        return loss

    @staticmethod
    def backward(ctx, grad):
        xe, xs, emotion, speaker, inv_e, inv_s, scales = ctx.saved_tensors
        n = xe.shape[0]

        def launch(plan: T.Plan):
            ge = torch.empty((plan.splits, n, xe.shape[1]), dtype=torch.float32, device=xe.device)
            gs = torch.empty((plan.splits, n, xs.shape[1]), dtype=torch.float32, device=xe.device)
            _icld_backward_kernel[plan.grid](xe, xs, emotion, speaker, inv_e, inv_s, ge, gs, n, xe.shape[1],
                                             xs.shape[1], xe.stride(0), xs.stride(0), ctx.margin, plan.splits,
                                             PRINTED=ctx.printed, **plan.meta(xe.dtype))
            return ge, gs

        ge, gs = launch(_plan(xe, xs, ctx.tiling, ctx.printed, "backward", launch))
        grad = grad.float()
        dxe = T.normalize_backward(ge, xe, grad, scales[0:1], 1.0)
        dxs = T.normalize_backward(gs, xs, grad, scales[1:2], 1.0)
        return dxe, dxs, None, None, None, None, None


def icld(xe: torch.Tensor, xs: torch.Tensor, emotion: torch.Tensor, speaker: torch.Tensor, *,
         margin: float = 0.0, negative: str = "text", block_m=None, block_n=None, block_k=None,
         splits=None) -> torch.Tensor:
    """Fused ICLD; same contract as kernels.reference.icld."""
    if negative not in ICLD_NEGATIVE_FORMS:
        raise ValueError(f"icld negative form must be one of {ICLD_NEGATIVE_FORMS}, got {negative!r}")
    T.check_inputs("icld", xe, xs)
    n = xe.shape[0]
    if xs.shape[0] != n or emotion.shape != (n,) or speaker.shape != (n,):
        raise ValueError(f"icld: xe {tuple(xe.shape)}, xs {tuple(xs.shape)}, emotion {tuple(emotion.shape)} "
                         f"and speaker {tuple(speaker.shape)} must agree on N")
    if xs.dtype != xe.dtype:
        xs = xs.to(xe.dtype)  # one dtype per launch; autograd casts the gradient back
    if emotion.dtype.is_floating_point or speaker.dtype.is_floating_point:
        raise ValueError(f"icld: labels must be integers, got {emotion.dtype} and {speaker.dtype}")
    # labels go in as they are (int32 or int64 compare alike): no conversion launch
    return _ICLD.apply(xe.contiguous(), xs.contiguous(), emotion.contiguous(), speaker.contiguous(),
                       float(margin), negative == "printed", T.Tiling(block_m, block_n, block_k, splits))
