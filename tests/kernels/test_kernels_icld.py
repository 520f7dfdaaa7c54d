"""Fused ICLD kernel against the PyTorch reference, through triton's CPU interpreter.

Small tiles (16) with N and D that are not multiples of them exercise several tiles, the ragged
edge and column slices. Tolerances relative to the largest reference gradient entry: fp32 2e-5,
fp16 1e-3, bf16 1e-2 (the output's rounding; the hinge weights stay fp32), plus 1e-7 absolute;
losses agree to 1e-4 relative.
"""

import pytest
import torch
from kernel_testing import GRAD_TOL, SMALL_TILES, LargestTensor, import_interpreted, rand_labels, rand_x

from hcld import kernels
from hcld.kernels import reference

triton_icld = import_interpreted("hcld.kernels.triton_icld")
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim:DeprecationWarning")


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


_x, _labels = rand_x, rand_labels


def _loss_and_grads(fn, xe, xs):
    leaves = [xe.clone().requires_grad_(True), xs.clone().requires_grad_(True)]
    loss = fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


def _case(xe, xs, emotion, speaker, *, margin=0.2, negative="text", tiles=SMALL_TILES):
    fused = lambda a, b: triton_icld.icld(a, b, emotion, speaker, margin=margin, negative=negative, **tiles)
    ref = lambda a, b: reference.icld(a, b, emotion, speaker, margin=margin, negative=negative)
    loss, grads = _loss_and_grads(fused, xe, xs)
    want, want_grads = _loss_and_grads(ref, xe, xs)
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    for got, exp in zip(grads, want_grads):
        assert got.dtype == exp.dtype and got.shape == exp.shape
        scale = float(exp.float().abs().max())
        err = float((got.float() - exp.float()).abs().max())
        assert err <= GRAD_TOL[xe.dtype] * scale + 1e-7, f"gradient error {err:.3g} vs scale {scale:.3g}"
    return loss, grads


@pytest.mark.parametrize("negative,margin", [("text", 0.0), ("text", 0.3), ("printed", 0.5), ("printed", -0.1)])
def test_icld_random(negative, margin):
    n = 37
    _case(_x(n, 40, 0), _x(n, 29, 1), _labels(n, 4, 2), _labels(n, 5, 3), margin=margin, negative=negative)


def test_icld_column_slices():
    n = 37
    _case(_x(n, 24, 4), _x(n, 24, 5), _labels(n, 3, 6), _labels(n, 3, 7), tiles=dict(SMALL_TILES, splits=3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_icld_half_precision(dtype):
    n = 37
    _case(_x(n, 40, 8, dtype), _x(n, 40, 9, dtype), _labels(n, 4, 10), _labels(n, 4, 11))


@pytest.mark.parametrize("case", ["one_emotion", "one_speaker", "own_class", "no_pairs", "one_sample", "exact_tile"])
def test_icld_adversarial_labels(case):
    n = {"one_sample": 1, "exact_tile": 32}.get(case, 19)
    emotion, speaker = _labels(n, 3, 12), _labels(n, 3, 13)
    if case == "one_emotion":  # no positive pair (needs different emotions)
        emotion = torch.zeros(n, dtype=torch.long)
    if case == "one_speaker":  # no negative pair (needs different speakers)
        speaker = torch.zeros(n, dtype=torch.long)
    if case == "own_class":
        emotion = speaker = torch.arange(n)
    if case == "no_pairs":
        emotion = speaker = torch.zeros(n, dtype=torch.long)
    loss, grads = _case(_x(n, 20, 14), _x(n, 20, 15), emotion, speaker)
    if case in ("own_class", "no_pairs", "one_sample"):
        assert float(loss) == 0.0 and all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_icld_duplicate_and_near_zero_vectors():
    n = 21
    xe, xs = _x(n, 18, 16), _x(n, 18, 17)
    xe[1] = xe[0]
    xs[2] = xs[3]
    xe[4] = 0.0
    xs[5] = 0.0
    xe[6] = 1e-10 * xe[7]  # below the eps floor
    xs[8] = 1e-6 * xs[9]
    _case(xe, xs, _labels(n, 2, 18), _labels(n, 3, 19), margin=0.1)


def test_icld_wide_embeddings():
    n = 18
    _case(_x(n, 1030, 20), _x(n, 1030, 21), _labels(n, 3, 22), _labels(n, 3, 23),
          tiles=dict(block_m=16, block_n=16, block_k=128))


def test_icld_runs_are_bit_identical():
    n = 37
    args = (_labels(n, 3, 26), _labels(n, 4, 27))
    fn = lambda a, b: triton_icld.icld(a, b, *args, margin=0.1, splits=2, **SMALL_TILES)
    xe, xs = _x(n, 40, 24), _x(n, 40, 25)
    first, second = _loss_and_grads(fn, xe, xs), _loss_and_grads(fn, xe, xs)
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))


def test_public_dispatch_runs_the_interpreter_with_default_tiles():
    n = 70
    e, s = _labels(n, 4, 28), _labels(n, 6, 29)
    xe, xs = _x(n, 24, 30), _x(n, 24, 31)
    loss, grads = _loss_and_grads(lambda a, b: kernels.icld(a, b, e, s, margin=0.2, impl="triton"), xe, xs)
    want, want_grads = _loss_and_grads(lambda a, b: kernels.icld(a, b, e, s, margin=0.2, impl="torch"), xe, xs)
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    for got, exp in zip(grads, want_grads):
        torch.testing.assert_close(got, exp, rtol=1e-4, atol=2e-5 * float(exp.abs().max()))


def test_icld_rejects_bad_arguments():
    x = _x(5, 4, 32)
    with pytest.raises(ValueError, match="negative form"):
        triton_icld.icld(x, x, torch.arange(5), torch.arange(5), negative="both")
    with pytest.raises(ValueError, match="must agree on N"):
        triton_icld.icld(x, x[:4], torch.arange(5), torch.arange(5))


def test_fused_memory_is_linear_in_n():
    """No N x N buffer: with N = 80 >> D = 8 the largest tensor is O(N D); the reference's is N^2."""
    n, d = 80, 8
    xe, xs = _x(n, d, 33).requires_grad_(True), _x(n, d, 34).requires_grad_(True)
    e, s = _labels(n, 4, 35), _labels(n, 10, 36)
    sizes = {}
    for impl in ("torch", "triton"):
        with LargestTensor() as probe:
            kernels.icld(xe, xs, e, s, margin=0.2, impl=impl).backward()
        sizes[impl] = probe.bytes
    assert sizes["triton"] <= n * d * 4 < n * n * 4 // 8
    assert sizes["torch"] >= n * n * 4


def test_icld_same_tensor_for_both_embeddings():
    """hcld's icld_positive="xs" passes X_s as both arguments: autograd must add the two gradients."""
    n = 30
    x, e, s = _x(n, 12, 37).requires_grad_(True), _labels(n, 4, 38), _labels(n, 5, 39)
    (got,) = torch.autograd.grad(triton_icld.icld(x, x, e, s, margin=0.1, **SMALL_TILES), x)
    (want,) = torch.autograd.grad(reference.icld(x, x, e, s, margin=0.1), x)
    assert float((got - want).abs().max()) <= GRAD_TOL[torch.float32] * float(want.abs().max())
