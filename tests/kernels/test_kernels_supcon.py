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

import kernels
from kernels import reference

triton_supcon = import_interpreted("kernels.triton_supcon")
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


def test_bench_kernels_cli_runs_a_tiny_configuration(tmp_path):
    """`hcld-grid bench kernels` on CPU: every loss, eager and fused (interpreter), CSV + table."""
    import csv

    from click.testing import CliRunner

    from grid.cli.bench_kernels import kernels as bench_kernels
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()

    out = tmp_path / "k.csv"
    result = CliRunner().invoke(bench_kernels, ["--n", "20", "--d", "16", "--device", "cpu", "--repeats", "1",
                                                "--warmup", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "x eager" in result.output and f"wrote 6 rows to {out}" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["loss"], r["impl"]) for r in rows] == [(loss, impl) for loss in bench.LOSSES for impl in ("eager", "fused")]
    for r in rows:
        assert r["status"] == "ok" and r["device"] == "cpu" and float(r["ms_median"]) > 0
        assert float(r["gflop"]) == pytest.approx(bench.useful_flops(r["loss"], 20, 16) / 1e9)
        executed = 1.5 if r["impl"] == "fused" else 1.0
        assert float(r["executed_gflop"]) == pytest.approx(executed * float(r["gflop"]))
        assert r["precision"] == "ieee"
        assert r["ran"] == ("triton-interpreter" if r["impl"] == "fused" else "torch")
        assert float(r["speedup_vs_eager"]) > 0
    assert {float(r["speedup_vs_eager"]) for r in rows if r["impl"] == "eager"} == {1.0}
    # every fused cell is checked against eager's loss and gradients on the same inputs
    assert all(float(r["max_grad_err"]) < 1e-4 and float(r["loss_err"]) < 1e-4 for r in rows if r["impl"] == "fused")
    assert {r["tiles"] for r in rows} == {"", "defaults (not tuned off a GPU)"}


def test_bench_records_the_tiles_tuning_picked(monkeypatch):
    from grid.cli.bench_kernels import load_bench
    from kernels import autotune
    from kernels import tiles as T

    bench = load_bench()
    autotune.forget()
    monkeypatch.setattr(autotune, "enabled", lambda device: True)
    monkeypatch.setattr(autotune, "MIN_TUNED_SIZE", 1)
    # tuning "picks" each pass's last candidate (the interpreter's timings would mean nothing)
    monkeypatch.setattr(autotune, "_fastest", lambda tiling, m, n, d, dtype, device, stage, launch:
                        T.CONFIGS[T.config_key(dtype)][stage][-1])
    cfg = bench.BenchConfig(device="cpu", losses=("supcon", "lcl"), impls=("eager", "fused"), ns=(40,), ds=(24,),
                            repeats=1, warmup=0)
    try:
        rows = bench.run_benchmark(cfg)
    finally:
        autotune.forget()
    last = {stage: autotune.describe(T.CONFIGS["fp32"][stage][-1]) for stage in ("forward", "backward")}
    fused = {r["loss"]: r["tiles"] for r in rows if r["impl"] == "fused"}
    assert fused == {"supcon": f"supcon_backward {last['backward']}; supcon_forward {last['forward']}",
                     "lcl": f"lcl_backward_anchors {last['backward']}; lcl_backward_samples {last['backward']}; "
                            f"lcl_forward {last['forward']}"}


def test_bench_flags_a_fused_value_that_differs_from_eager(monkeypatch):
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()
    real = bench.loss_fn
    monkeypatch.setattr(bench, "loss_fn", lambda loss, impl, *a: (lambda *t: 1.01 * real(loss, "eager", *a)(*t))
                        if impl == "fused" else real(loss, impl, *a))
    cfg = bench.BenchConfig(device="cpu", losses=("supcon",), impls=("eager", "fused"), ns=(12,), ds=(8,),
                            repeats=1, warmup=0)
    rows = bench.run_benchmark(cfg)
    assert rows[0]["status"] == "ok" and rows[1]["status"].startswith("mismatch")
    assert rows[1]["loss_err"] == pytest.approx(0.01, rel=1e-3)


def test_bench_refuses_a_cuda_run_under_the_interpreter():
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET is set"):
        bench.run_benchmark(bench.BenchConfig(device="cuda", losses=("supcon",), ns=(8,), ds=(8,)))


def test_bench_records_out_of_memory_and_goes_on(monkeypatch):
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()

    def no_memory(loss, n, *args):
        if n > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 16 GiB")
        return real(loss, n, *args)

    real = bench.make_inputs
    monkeypatch.setattr(bench, "make_inputs", no_memory)
    cfg = bench.BenchConfig(device="cpu", losses=("supcon",), impls=("eager",), ns=(8, 32), ds=(8,),
                            repeats=1, warmup=0)
    rows = bench.run_benchmark(cfg)
    assert [r["status"] for r in rows] == ["ok", "oom"]
    assert rows[1].get("ms_median") is None and rows[1].get("speedup_vs_eager") is None


def test_bench_peak_table_matches_device_names():
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()

    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == pytest.approx(66.9)
    assert bench.peak_tflops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756.0)
    assert bench.peak_tflops("NVIDIA H200", "tf32") == pytest.approx(494.7)
    assert bench.peak_tflops("NVIDIA H100 NVL", "bf16") == pytest.approx(835.5)  # not the SXM figure
    assert bench.peak_tflops("cpu", "fp32") is None


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


def test_bench_kernels_keeps_finished_rows_when_killed(tmp_path, monkeypatch):
    """A device run cut off by its time limit keeps the cells it finished: rows reach the CSV as measured."""
    import csv

    from click.testing import CliRunner

    from grid.cli.bench_kernels import kernels as bench_kernels
    from grid.cli.bench_kernels import load_bench

    bench = load_bench()
    real, calls = bench._bench_one, []

    def cut_off(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a timeout's signal looks like to the run
        return real(*args)

    monkeypatch.setattr(bench, "_bench_one", cut_off)
    out = tmp_path / "k.csv"
    result = CliRunner().invoke(bench_kernels, ["--n", "12", "--d", "8", "--device", "cpu", "--repeats", "1",
                                                "--warmup", "0", "--out", str(out)])
    assert result.exit_code != 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["loss"], r["impl"], r["status"]) for r in rows] == [("icld", "eager", "ok"), ("icld", "fused", "ok")]


def test_bench_kernels_cli_picks_the_interpreter_in_a_fresh_process(tmp_path):
    """Without TRITON_INTERPRET, `hcld-grid bench kernels` on CPU must choose the interpreter before
    anything decorates a kernel (a half-decorated mix fails with "0 active drivers")."""
    import csv
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "k.csv"
    done = subprocess.run([sys.executable, "-c", "from grid.cli import main; main()", "bench", "kernels", "--device",
                           "cpu", "--loss", "supcon", "--n", "12", "--d", "8", "--repeats", "1", "--warmup", "0",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["impl"], r["ran"], r["status"]) for r in rows] == [("eager", "torch", "ok"),
                                                                  ("fused", "triton-interpreter", "ok")]
