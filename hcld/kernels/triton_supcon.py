"""Fused Triton SupCon and label-contrastive (LCL) losses: masked log-sum-exp over cosine tiles.

Both losses are one problem: rows R (anchors) against columns C (candidates), logits cos(r, c)/tau,
per-row log-sum-exp over the allowed columns and the sum/count of the positive (same label) logits.
    SupCon: R = C = x, the self-pair excluded by index, loss = mean over rows with a positive of
            lse_i - S_i / n_i.
    LCL:    R = the C label anchors, C = x (rectangular, C x N), nothing excluded,
            loss = sum_c (n_c lse_c - S_c) / N   (the reference's mean over samples).
Forward: each program owns BLOCK_M rows and one slice of the columns and keeps a running max and
sum (online log-sum-exp, so tau = 0.01 cannot underflow a row), the positive logit sum and count;
only those per-row statistics leave the kernel. A one-program finalize kernel merges the slices
(used when there are few row blocks, e.g. LCL's 4 anchors) in a fixed order and reduces the loss.
Saved for backward: the inputs, labels and four fp32 numbers per row (inverse norm, lse, alpha,
beta) + a scale.
Backward: with A_ij = dL/dlogit_ij = scale (alpha_i p_ij - beta_i [label_i == label_j]) (p = softmax
of the row, recomputed from the saved lse), dL/dz_r = 1/tau sum_j A_rj z_j (+ sum_j A_jr z_j when R
is C). A program owns a block of rows of G = dL/dz and accumulates it tile by tile in a buffer only
it writes, so the result is deterministic; a second small kernel applies the normalisation backward.
Launches per forward+backward: SupCon 5, LCL 8 (one inverse-norm pass per input, saved for the
backward), no host synchronisation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from hcld.kernels import autotune
from hcld.kernels import tiles as T


@triton.jit
def _lse_forward_kernel(r_ptr, c_ptr, rlab_ptr, clab_ptr, r_inv, c_inv, m_out, l_out, s_out, n_out,
                        M, N, D, stride_r, stride_c, inv_tau, n_splits,
                        EXCLUDE_SELF: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
                        GRAD_PRECISION: tl.constexpr):
    split, offs_m, mask_m, lo, hi = T.row_block(M, N, n_splits, BLOCK_M, BLOCK_N)
    inv_r = tl.load(r_inv + offs_m, mask=mask_m, other=0.0)
    lab_r = tl.load(rlab_ptr + offs_m, mask=mask_m, other=0)
    # a finite floor, not -inf: exp(m_old - m_new) must stay defined while a row has seen nothing
    m_i = tl.full([BLOCK_M], -1e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    s_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    n_i = tl.zeros([BLOCK_M], dtype=tl.int32)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < hi
        inv_c = tl.load(c_inv + offs_n, mask=mask_n, other=0.0)
        cos = T.cosine_tile(r_ptr, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_r, inv_c, D,
                            stride_r, stride_c, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        logits = cos * inv_tau
        valid = mask_m[:, None] & mask_n[None, :]
        if EXCLUDE_SELF:
            valid = valid & (offs_m[:, None] != offs_n[None, :])
        lab_c = tl.load(clab_ptr + offs_n, mask=mask_n, other=0)
        pos = valid & (lab_r[:, None] == lab_c[None, :])
        masked = tl.where(valid, logits, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(masked, axis=1))
        l_i = l_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(masked - m_new[:, None]), axis=1)
        m_i = m_new
        s_i += tl.sum(tl.where(pos, logits, 0.0), axis=1)
        n_i += tl.sum(pos.to(tl.int32), axis=1)
    out = split * M + offs_m
    tl.store(m_out + out, m_i, mask=mask_m)
    tl.store(l_out + out, l_i, mask=mask_m)
    tl.store(s_out + out, s_i, mask=mask_m)
    tl.store(n_out + out, n_i, mask=mask_m)


@triton.jit
def _lse_backward_kernel(r_ptr, c_ptr, rlab_ptr, clab_ptr, r_inv, c_inv, r_lse, r_alpha, r_beta, c_lse, c_alpha,
                         c_beta, g_ptr, M, N, D, stride_r, stride_c, inv_tau, n_splits,
                         EXCLUDE_SELF: tl.constexpr, ROW_TERM: tl.constexpr, COL_TERM: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, GRAD_PRECISION: tl.constexpr):
    """G[split, rows] = sum over this slice's columns j of W_rj z_j, where W_rj = A_rj (ROW_TERM: the
    rows are anchors) + A_jr (COL_TERM: the columns are anchors and the rows their candidates)."""
    split, offs_m, mask_m, lo, hi = T.row_block(M, N, n_splits, BLOCK_M, BLOCK_N)
    g_ptr += split * M * D
    T.zero_rows(g_ptr, offs_m, mask_m, D, BLOCK_M, BLOCK_K)
    inv_r = tl.load(r_inv + offs_m, mask=mask_m, other=0.0)
    lab_r = tl.load(rlab_ptr + offs_m, mask=mask_m, other=0)
    if ROW_TERM:
        lse_r = tl.load(r_lse + offs_m, mask=mask_m, other=0.0)
        alpha_r = tl.load(r_alpha + offs_m, mask=mask_m, other=0.0)
        beta_r = tl.load(r_beta + offs_m, mask=mask_m, other=0.0)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < hi
        inv_c = tl.load(c_inv + offs_n, mask=mask_n, other=0.0)
        cos = T.cosine_tile(r_ptr, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_r, inv_c, D,
                            stride_r, stride_c, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST_DOT, DOT_PRECISION)
        logits = cos * inv_tau
        valid = mask_m[:, None] & mask_n[None, :]
        if EXCLUDE_SELF:
            valid = valid & (offs_m[:, None] != offs_n[None, :])
        lab_c = tl.load(clab_ptr + offs_n, mask=mask_n, other=0)
        pos = (lab_r[:, None] == lab_c[None, :]).to(tl.float32)
        w = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        if ROW_TERM:
            w += alpha_r[:, None] * tl.exp(logits - lse_r[:, None]) - beta_r[:, None] * pos
        if COL_TERM:
            lse_c = tl.load(c_lse + offs_n, mask=mask_n, other=0.0)
            alpha_c = tl.load(c_alpha + offs_n, mask=mask_n, other=0.0)
            beta_c = tl.load(c_beta + offs_n, mask=mask_n, other=0.0)
            w += alpha_c[None, :] * tl.exp(logits - lse_c[None, :]) - beta_c[None, :] * pos
        w = tl.where(valid, w, 0.0)  # also drops any inf*0 from padded rows/columns
        T.accumulate_rows(g_ptr, w, c_ptr, offs_m, offs_n, mask_m, mask_n, inv_c, D, stride_c,
                          BLOCK_K, GRAD_PRECISION)


@triton.jit
def _lse_finalize_kernel(m_ptr, l_ptr, s_ptr, n_ptr, lse_out, alpha_out, beta_out, loss_out, scale_out,
                         M, n_splits, inv_tau, n_samples, LCL: tl.constexpr, BLOCK: tl.constexpr):
    """One program: merge the column slices per row, write what the backward needs, reduce the loss.

    Backward weights are A_rj = scale * (alpha_r p_rj - beta_r [positive]) with scale = 1/K (SupCon:
    K anchors with a positive; alpha = has, beta = has/n) or 1/N (LCL: alpha = n_c, beta = 1).
    A row without a positive gets lse = 1/tau, the largest possible logit, so exp(logit - lse) <= 1
    and its zero weight cannot meet an inf. Vector accumulators reduced once: a fixed order.
    """
    total = tl.zeros([BLOCK], dtype=tl.float32)
    anchors = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(0, M, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < M
        top = tl.full([BLOCK], -1e30, dtype=tl.float32)
        for sp in range(0, n_splits):
            top = tl.maximum(top, tl.load(m_ptr + sp * M + offs, mask=mask, other=-1e30))
        l = tl.zeros([BLOCK], dtype=tl.float32)
        pos_sum = tl.zeros([BLOCK], dtype=tl.float32)
        cnt = tl.zeros([BLOCK], dtype=tl.int32)
        for sp in range(0, n_splits):
            m_s = tl.load(m_ptr + sp * M + offs, mask=mask, other=-1e30)
            l += tl.load(l_ptr + sp * M + offs, mask=mask, other=0.0) * tl.exp(m_s - top)
            pos_sum += tl.load(s_ptr + sp * M + offs, mask=mask, other=0.0)
            cnt += tl.load(n_ptr + sp * M + offs, mask=mask, other=0)
        lse = top + tl.log(tl.maximum(l, 1e-30))  # l >= 1 once a row saw a column; padded lanes stay finite
        n_f = cnt.to(tl.float32)
        if LCL:
            total += tl.where(mask, n_f * lse - pos_sum, 0.0)
            alpha = n_f
            beta = tl.full([BLOCK], 1.0, dtype=tl.float32)
            lse_keep = lse
        else:
            has = mask & (cnt > 0)
            total += tl.where(has, lse - pos_sum / tl.maximum(n_f, 1.0), 0.0)
            anchors += has.to(tl.int32)
            alpha = has.to(tl.float32)
            beta = alpha / tl.maximum(n_f, 1.0)
            lse_keep = tl.where(has, lse, inv_tau)
        tl.store(lse_out + offs, lse_keep, mask=mask)
        tl.store(alpha_out + offs, alpha, mask=mask)
        tl.store(beta_out + offs, beta, mask=mask)
    if LCL:
        denom = n_samples * 1.0
    else:
        denom = tl.maximum(tl.sum(anchors, axis=0), 1).to(tl.float32)
    tl.store(loss_out, tl.sum(total, axis=0) / denom)
    tl.store(scale_out, 1.0 / denom)


def _forward(r, c, rlab, clab, r_inv, c_inv, inv_tau, exclude_self, lcl, tiling: T.Tiling):
    """(loss, lse, alpha, beta, scale) of R against C: two launches, no host synchronisation."""
    m, d = r.shape
    n = c.shape[0]
    f32 = dict(dtype=torch.float32, device=r.device)

    def launch(plan: T.Plan):
        mx, l, s = (torch.empty((plan.splits, m), **f32) for _ in range(3))
        cnt = torch.empty((plan.splits, m), dtype=torch.int32, device=r.device)
        _lse_forward_kernel[plan.grid](
            r, c, rlab, clab, r_inv, c_inv, mx, l, s, cnt, m, n, d, r.stride(0), c.stride(0), inv_tau, plan.splits,
            EXCLUDE_SELF=exclude_self, **plan.meta(r.dtype))
        return mx, l, s, cnt

    kernel = "supcon_forward" if exclude_self else "lcl_forward"
    plan = autotune.plan(tiling, kernel, m, n, d, r.dtype, r.device, "forward", launch)
    mx, l, s, cnt = launch(plan)
    lse, alpha, beta = (torch.empty(m, **f32) for _ in range(3))
    loss, scale = torch.empty((), **f32), torch.empty(1, **f32)
    _lse_finalize_kernel[(1,)](mx, l, s, cnt, lse, alpha, beta, loss, scale, m, plan.splits, inv_tau, n, LCL=lcl,
                               BLOCK=max(16, min(1024, triton.next_power_of_2(m))))
    return loss, lse, alpha, beta, scale


def _grad_rows(r, c, rlab, clab, r_inv, c_inv, row_stats, col_stats, inv_tau, exclude_self, tiling: T.Tiling):
    """fp32 [S, M, D] slices of sum_j W_rj z_j (see _lse_backward_kernel)."""
    m, d = r.shape
    n = c.shape[0]
    dummy = torch.empty(0, dtype=torch.float32, device=r.device)
    rs = row_stats or (dummy, dummy, dummy)
    cs = col_stats or (dummy, dummy, dummy)

    def launch(plan: T.Plan):
        g = torch.empty((plan.splits, m, d), dtype=torch.float32, device=r.device)
        _lse_backward_kernel[plan.grid](
            r, c, rlab, clab, r_inv, c_inv, *rs, *cs, g, m, n, d, r.stride(0), c.stride(0), inv_tau, plan.splits,
            EXCLUDE_SELF=exclude_self, ROW_TERM=row_stats is not None, COL_TERM=col_stats is not None,
            **plan.meta(r.dtype))
        return g

    kernel = ("supcon_backward" if exclude_self else
              "lcl_backward_anchors" if row_stats is not None else "lcl_backward_samples")
    return launch(autotune.plan(tiling, kernel, m, n, d, r.dtype, r.device, "backward", launch))


class _SupCon(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, labels, temperature, tiling):
        inv_tau = 1.0 / temperature
        inv = T.inverse_norms(x)
        loss, lse, alpha, beta, scale = _forward(x, x, labels, labels, inv, inv, inv_tau, True, False, tiling)
        ctx.save_for_backward(x, labels, inv, lse, alpha, beta, scale)
        ctx.inv_tau, ctx.tiling = inv_tau, tiling
        return loss

    @staticmethod
    def backward(ctx, grad):
        x, labels, inv, lse, alpha, beta, scale = ctx.saved_tensors
        stats = (lse, alpha, beta)
        g = _grad_rows(x, x, labels, labels, inv, inv, stats, stats, ctx.inv_tau, True, ctx.tiling)
        return T.normalize_backward(g, x, grad.float(), scale, ctx.inv_tau), None, None, None


class _LabelContrastive(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchors, x, labels, anchor_labels, temperature, tiling):
        inv_tau = 1.0 / temperature
        inv_a, inv_x = T.inverse_norms(anchors), T.inverse_norms(x)
        loss, lse, alpha, beta, scale = _forward(anchors, x, anchor_labels, labels, inv_a, inv_x, inv_tau, False,
                                                 True, tiling)
        ctx.save_for_backward(anchors, x, labels, anchor_labels, inv_a, inv_x, lse, alpha, beta, scale)
        ctx.inv_tau, ctx.tiling = inv_tau, tiling
        return loss

    @staticmethod
    def backward(ctx, grad):
        anchors, x, labels, anchor_labels, inv_a, inv_x, lse, alpha, beta, scale = ctx.saved_tensors
        stats = (lse, alpha, beta)
        grad = grad.float()
        g_a = _grad_rows(anchors, x, anchor_labels, labels, inv_a, inv_x, stats, None, ctx.inv_tau, False, ctx.tiling)
        g_x = _grad_rows(x, anchors, labels, anchor_labels, inv_x, inv_a, None, stats, ctx.inv_tau, False, ctx.tiling)
        return (T.normalize_backward(g_a, anchors, grad, scale, ctx.inv_tau),
                T.normalize_backward(g_x, x, grad, scale, ctx.inv_tau), None, None, None, None)


def _labels(labels: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """Integer labels as they come (the kernels compare int32 or int64 alike: no conversion launch)."""
    if labels.shape != (n,) or labels.dtype.is_floating_point:
        raise ValueError(f"{name}: labels must be integers of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    return labels.contiguous()


def supcon(x: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.07,
           block_m=None, block_n=None, block_k=None, splits=None) -> torch.Tensor:
    """Fused SupCon; same contract as kernels.reference.supcon."""
    T.check_inputs("supcon", x)
    return _SupCon.apply(x.contiguous(), _labels(labels, x.shape[0], "supcon"), float(temperature),
                         T.Tiling(block_m, block_n, block_k, splits))


def label_contrastive(anchors: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float = 0.07, block_m=None, block_n=None, block_k=None,
                      splits=None) -> torch.Tensor:
    """Fused LCL (rectangular: C anchors x N samples); same contract as kernels.reference.label_contrastive."""
    T.check_inputs("label_contrastive", anchors, x)
    if anchors.shape[1] != x.shape[1]:
        raise ValueError(f"label_contrastive: anchors {tuple(anchors.shape)} and samples {tuple(x.shape)} "
                         "must share D")
    # one dtype per kernel launch; autograd casts the anchors' gradient back
    labels = _labels(labels, x.shape[0], "label_contrastive")
    anchor_labels = torch.arange(anchors.shape[0], dtype=labels.dtype, device=labels.device)
    return _LabelContrastive.apply(anchors.to(x.dtype).contiguous(), x.contiguous(), labels, anchor_labels,
                                   float(temperature), T.Tiling(block_m, block_n, block_k, splits))
