"""`hcld-grid bench kernels` (benchmarks/kernels.py) on CPU: torch and triton (interpreter) cells,
the value check against torch, tuning picks, out-of-memory rows, the device peak table and rows that
survive a cut-off run."""

import pytest
import torch
from kernel_testing import import_interpreted

import benchmarks.kernels as bench

import_interpreted("hcld.kernels.triton_supcon")  # the kernels decorated for the interpreter, as in the kernel tests
# triton 3.6's interpreter trips a numpy deprecation on every scalar index; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim:DeprecationWarning")


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def test_bench_kernels_cli_runs_a_tiny_configuration(tmp_path):
    """`hcld-grid bench kernels` on CPU: every loss, torch and triton (interpreter), CSV + table."""
    import csv

    from click.testing import CliRunner

    out = tmp_path / "k.csv"
    result = CliRunner().invoke(bench.kernels_command, ["--n", "20", "--d", "16", "--device", "cpu", "--repeats",
                                                        "1", "--warmup", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "x torch" in result.output and f"wrote 6 rows to {out}" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["loss"], r["impl"]) for r in rows] == [(loss, impl) for loss in bench.LOSSES
                                                      for impl in ("torch", "triton")]
    for r in rows:
        assert r["status"] == "ok" and r["device"] == "cpu" and float(r["ms_median"]) > 0
        assert float(r["gflop"]) == pytest.approx(bench.useful_flops(r["loss"], 20, 16) / 1e9)
        executed = 1.5 if r["impl"] == "triton" else 1.0
        assert float(r["executed_gflop"]) == pytest.approx(executed * float(r["gflop"]))
        assert r["precision"] == "ieee"
        assert r["ran"] == ("triton-interpreter" if r["impl"] == "triton" else "torch")
        assert float(r["speedup_vs_torch"]) > 0
    assert {float(r["speedup_vs_torch"]) for r in rows if r["impl"] == "torch"} == {1.0}
    # every triton cell is checked against torch's loss and gradients on the same inputs
    assert all(float(r["max_grad_err"]) < 1e-4 and float(r["loss_err"]) < 1e-4 for r in rows if r["impl"] == "triton")
    assert {r["tiles"] for r in rows} == {"", "defaults (not tuned off a GPU)"}


def test_bench_records_the_tiles_tuning_picked(monkeypatch):
    from hcld.kernels import autotune
    from hcld.kernels import tiles as T

    autotune.forget()
    monkeypatch.setattr(autotune, "enabled", lambda device: True)
    monkeypatch.setattr(autotune, "MIN_TUNED_SIZE", 1)
    # tuning "picks" each pass's last candidate (the interpreter's timings would mean nothing)
    monkeypatch.setattr(autotune, "_fastest", lambda tiling, m, n, d, dtype, device, stage, launch:
                        T.CONFIGS[T.config_key(dtype)][stage][-1])
    cfg = bench.BenchConfig(device="cpu", losses=("supcon", "lcl"), impls=("torch", "triton"), ns=(40,), ds=(24,),
                            repeats=1, warmup=0)
    try:
        rows = bench.run_benchmark(cfg)
    finally:
        autotune.forget()
    last = {stage: autotune.describe(T.CONFIGS["fp32"][stage][-1]) for stage in ("forward", "backward")}
    picked = {r["loss"]: r["tiles"] for r in rows if r["impl"] == "triton"}
    assert picked == {"supcon": f"supcon_backward {last['backward']}; supcon_forward {last['forward']}",
                      "lcl": f"lcl_backward_anchors {last['backward']}; lcl_backward_samples {last['backward']}; "
                             f"lcl_forward {last['forward']}"}


def test_bench_names_implementations_as_the_config_does(tmp_path):
    """The config's loss implementations (kernels.IMPLS) plus torch-compile; the old names are refused."""
    from click.testing import CliRunner

    from hcld import kernels

    assert bench.impl_names() == (*kernels.IMPLS, "torch-compile") == ("torch", "triton", "torch-compile")
    assert bench._ran("torch-compile", "cpu") == "torch-compile" and bench._ran("torch", "cpu") == "torch"
    for old in ("eager", "fused", "compiled"):
        done = CliRunner().invoke(bench.kernels_command, ["--device", "cpu", "--impl", old,
                                                          "--out", str(tmp_path / "k.csv")])
        assert done.exit_code != 0 and f"unknown ['{old}']" in done.output, done.output
    assert not (tmp_path / "k.csv").exists()


def test_bench_flags_a_triton_value_that_differs_from_torch(monkeypatch):
    real = bench.loss_fn
    monkeypatch.setattr(bench, "loss_fn", lambda loss, impl, *a: (lambda *t: 1.01 * real(loss, "torch", *a)(*t))
                        if impl == "triton" else real(loss, impl, *a))
    cfg = bench.BenchConfig(device="cpu", losses=("supcon",), impls=("torch", "triton"), ns=(12,), ds=(8,),
                            repeats=1, warmup=0)
    rows = bench.run_benchmark(cfg)
    assert rows[0]["status"] == "ok" and rows[1]["status"].startswith("mismatch")
    assert rows[1]["loss_err"] == pytest.approx(0.01, rel=1e-3)


def test_bench_refuses_a_cuda_run_under_the_interpreter():
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET is set"):
        bench.run_benchmark(bench.BenchConfig(device="cuda", losses=("supcon",), ns=(8,), ds=(8,)))


def test_bench_records_out_of_memory_and_goes_on(monkeypatch):
    def no_memory(loss, n, *args):
        if n > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 16 GiB")
        return real(loss, n, *args)

    real = bench.make_inputs
    monkeypatch.setattr(bench, "make_inputs", no_memory)
    cfg = bench.BenchConfig(device="cpu", losses=("supcon",), impls=("torch",), ns=(8, 32), ds=(8,),
                            repeats=1, warmup=0)
    rows = bench.run_benchmark(cfg)
    assert [r["status"] for r in rows] == ["ok", "oom"]
    assert rows[1].get("ms_median") is None and rows[1].get("speedup_vs_torch") is None


def test_bench_peak_table_matches_device_names():
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == pytest.approx(66.9)
    assert bench.peak_tflops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756.0)
    assert bench.peak_tflops("NVIDIA H200", "tf32") == pytest.approx(494.7)
    assert bench.peak_tflops("NVIDIA H100 NVL", "bf16") == pytest.approx(835.5)  # not the SXM figure
    assert bench.peak_tflops("cpu", "fp32") is None


def test_bench_kernels_keeps_finished_rows_when_killed(tmp_path, monkeypatch):
    """A device run cut off by its time limit keeps the cells it finished: rows reach the CSV as measured."""
    import csv

    from click.testing import CliRunner

    real, calls = bench._bench_one, []

    def cut_off(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a timeout's signal looks like to the run
        return real(*args)

    monkeypatch.setattr(bench, "_bench_one", cut_off)
    out = tmp_path / "k.csv"
    result = CliRunner().invoke(bench.kernels_command, ["--n", "12", "--d", "8", "--device", "cpu", "--repeats",
                                                        "1", "--warmup", "0", "--out", str(out)])
    assert result.exit_code != 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["loss"], r["impl"], r["status"]) for r in rows] == [("icld", "torch", "ok"), ("icld", "triton", "ok")]


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
    assert [(r["impl"], r["ran"], r["status"]) for r in rows] == [("torch", "torch", "ok"),
                                                                  ("triton", "triton-interpreter", "ok")]
