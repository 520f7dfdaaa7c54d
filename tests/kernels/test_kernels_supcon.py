"""Fused SupCon / LCL kernels against the PyTorch reference, through triton's CPU interpreter.

Small tiles (16) with N and D that are not multiples of them put several tiles, the ragged edge
and the column slices (splits) on every path. Tolerances are relative to the largest reference
gradient entry (kernel_testing.GRAD_TOL): fp32 2e-5; fp16 1e-3 and bf16 1e-2, the output's own
rounding, since the gradient weights stay fp32 (the losses agree to 1e-4),
plus an absolute 1e-6 for gradients that are zero up to rounding (e.g. LCL with one sample).
"""

import pytest
import torch
from kernel_testing import GRAD_TOL, SMALL_TILES, LargestTensor, import_interpreted, rand_labels, rand_x

from hcld import kernels
from hcld.kernels import reference

triton_supcon = import_interpreted("hcld.kernels.triton_supcon")
# triton 3.6's interpreter trips a numpy deprecation on every scalar index; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim:DeprecationWarning")


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


_x, _labels = rand_x, rand_labels


def _loss_and_grads(fn, tensors):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    loss = fn(*leaves)
    grads = torch.autograd.grad(loss, leaves)
    return loss.detach(), grads


def _assert_matches(fused_fn, ref_fn, tensors):
    dtype = tensors[0].dtype
    loss, grads = _loss_and_grads(fused_fn, tensors)
    want, want_grads = _loss_and_grads(ref_fn, tensors)
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    for got, ref in zip(grads, want_grads):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert torch.isfinite(got).all()
        scale = max(float(ref.float().abs().max()), 1e-30)
        err = float((got.float() - ref.float()).abs().max())
        assert err <= GRAD_TOL[dtype] * scale + 1e-6, f"gradient error {err:.3g} vs scale {scale:.3g}"
    return loss, grads


def _supcon_case(x, labels, tau=0.07, **tiles):
    _assert_matches(lambda a: triton_supcon.supcon(a, labels, temperature=tau, **(tiles or SMALL_TILES)),
                    lambda a: reference.supcon(a, labels, temperature=tau), [x])


@pytest.mark.parametrize("splits", [1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.01])
def test_supcon_random(splits, tau):
    _supcon_case(_x(37, 40, 0), _labels(37, 4, 1), tau=tau, splits=splits, **SMALL_TILES)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_supcon_half_precision(dtype):
    _supcon_case(_x(37, 40, 2, dtype), _labels(37, 4, 3))


@pytest.mark.parametrize("case", ["one_class", "own_class", "one_sample", "two_samples", "exact_tile",
                                  "some_without_positive"])
def test_supcon_adversarial_labels(case):
    n = {"one_sample": 1, "two_samples": 2, "exact_tile": 32}.get(case, 19)
    labels = {"one_class": torch.zeros(n, dtype=torch.long), "own_class": torch.arange(n)}.get(case, _labels(n, 3, 4))
    if case == "some_without_positive":
        labels = torch.cat([torch.arange(5) + 10, _labels(n - 5, 2, 5)])
    _supcon_case(_x(n, 20, 6), labels)


def test_supcon_duplicate_and_near_zero_vectors():
    x = _x(21, 18, 7)
    x[1] = x[0]
    x[2] = x[0]
    x[3] = 0.0  # normalises to zero: cosine 0 with everything
    x[4] = 1e-10 * x[5]  # below the eps floor: z = x / eps
    x[6] = 1e-6 * x[7]  # tiny but above the floor: same direction as x[7]
    _supcon_case(x, _labels(21, 3, 8), tau=0.05)


def test_supcon_wide_embeddings():
    """D beyond 1024 loops over many D chunks, the last one ragged."""
    _supcon_case(_x(18, 1030, 9), _labels(18, 3, 10), block_m=16, block_n=16, block_k=128)


def _lcl_case(anchors, x, labels, tau=0.07, **tiles):
    _assert_matches(
        lambda a, z: triton_supcon.label_contrastive(a, z, labels, temperature=tau, **(tiles or SMALL_TILES)),
        lambda a, z: reference.label_contrastive(a, z, labels, temperature=tau), [anchors, x])


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("tau", [0.07, 0.01])
def test_label_contrastive_random(splits, tau):
    _lcl_case(_x(4, 40, 11), _x(45, 40, 12), _labels(45, 4, 13), tau=tau, splits=splits, **SMALL_TILES)


@pytest.mark.parametrize("case", ["one_sample", "one_class", "absent_class", "zero_anchor"])
def test_label_contrastive_adversarial(case):
    n = 1 if case == "one_sample" else 20
    labels = torch.zeros(n, dtype=torch.long) if case in ("one_sample", "one_class") else _labels(n, 3, 14)
    anchors = _x(4, 24, 15)  # class 3 never appears in the labels above
    if case == "zero_anchor":
        anchors[1] = 0.0
    _lcl_case(anchors, _x(n, 24, 16), labels)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_label_contrastive_half_precision(dtype):
    _lcl_case(_x(4, 40, 17, dtype), _x(37, 40, 18, dtype), _labels(37, 4, 19))


def test_runs_are_bit_identical():
    x, labels, anchors = _x(37, 40, 20), _labels(37, 4, 21), _x(4, 40, 22)
    for fn, tensors in [(lambda a: triton_supcon.supcon(a, labels, splits=2, **SMALL_TILES), [x]),
                        (lambda a, z: triton_supcon.label_contrastive(a, z, labels, splits=3, **SMALL_TILES),
                         [anchors, x])]:
        first, second = _loss_and_grads(fn, tensors), _loss_and_grads(fn, tensors)
        assert torch.equal(first[0], second[0])
        assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))


def test_public_dispatch_runs_the_interpreter_with_default_tiles():
    x, labels, anchors = _x(70, 24, 23), _labels(70, 4, 24), _x(4, 24, 25)
    assert kernels.resolve_impl("triton", x.device) == "triton-interpreter"
    _assert_matches(lambda a: kernels.supcon(a, labels, temperature=0.1, impl="triton"),
                    lambda a: kernels.supcon(a, labels, temperature=0.1, impl="torch"), [x])
    _assert_matches(lambda a, z: kernels.label_contrastive(a, z, labels, impl="triton"),
                    lambda a, z: kernels.label_contrastive(a, z, labels, impl="torch"), [anchors, x])


def test_dispatch_falls_back_to_torch_without_gpu_or_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    assert kernels.resolve_impl("triton", "cpu") == "torch"
    assert kernels.resolve_impl("torch", "cuda") == "torch"
    assert kernels.resolve_impl("triton", "cuda") == "triton"
    with pytest.raises(ValueError, match="loss impl"):
        kernels.resolve_impl("cuda", "cpu")


def test_supcon_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        triton_supcon.supcon(_x(5, 4, 26), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("loss", ["supcon", "lcl"])
def test_fused_memory_is_linear_in_n(loss):
    """No N x N buffer: with N = 80 >> D = 8 the largest tensor is O(N D); the reference's is N^2."""
    n, d = 80, 8
    x, labels, anchors = _x(n, d, 27).requires_grad_(True), _labels(n, 4, 28), _x(4, d, 29).requires_grad_(True)
    run = {"supcon": lambda impl: kernels.supcon(x, labels, impl=impl),
           "lcl": lambda impl: kernels.label_contrastive(anchors, x, labels, impl=impl)}[loss]
    sizes = {}
    for impl in ("torch", "triton"):
        with LargestTensor() as probe:
            run(impl).backward()
        sizes[impl] = probe.bytes
    n_by_n = n * n * 4
    assert sizes["triton"] <= n * d * 4 < n_by_n // 8
    if loss == "supcon":
        assert sizes["torch"] >= n_by_n  # the probe sees an N x N matrix when there is one


def test_supcon_half_precision_at_n_1024():
    """The largest N the interpreter runs in seconds: ~1/N softmax weights over many column tiles and
    slices; with fp32 weights the fp16 gradient stays within its own rounding of the reference."""
    _supcon_case(_x(1024, 16, 30, torch.float16), _labels(1024, 4, 31), splits=3)
