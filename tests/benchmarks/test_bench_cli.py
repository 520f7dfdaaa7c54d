"""`hcld-grid bench`: a thin registration of the benchmarks package. Listing the commands imports no
benchmark's heavy dependencies, and the benchmarks run through the CLI's module entry
(`python -m grid.cli bench`, what benchmarks/device_checks.sh calls) on a machine without ray or
polars, like the device machine."""

import csv
import os
import subprocess
import sys

from benchmarks import COMMANDS

# run `python -m grid.cli ARGS` with ray, polars and pyarrow absent; print which of them and of torch
# and triton got imported
WITHOUT_RAY_POLARS = (
    "import runpy, sys\n"
    "HEAVY = ('ray', 'polars', 'pyarrow')\n"
    "class Absent:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in HEAVY: raise ImportError(name + ' is not installed')\n"
    "sys.meta_path.insert(0, Absent())\n"
    "sys.argv = ['hcld-grid', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('grid.cli', run_name='__main__')\n"
    "finally:\n"
    "    print('absent imported:', sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY)))\n"
    "    print('torch imported:', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'triton'}))\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_RAY_POLARS, *args], capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})


def test_listing_the_benchmarks_imports_none_of_them_heavily():
    done = _cli("bench", "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = done.stdout.split("Commands:")[1].split()
    assert all(name in listed for name in COMMANDS)
    assert "absent imported: []" in done.stdout
    assert "torch imported: []" in done.stdout  # neither torch nor triton to print a help text


def test_the_benchmarks_run_without_ray_or_polars(tmp_path):
    steps, kernels = tmp_path / "steps.csv", tmp_path / "kernels.csv"
    done = _cli("bench", "steps", "--device", "cpu", "--model-size", "tiny", "--rows", "16", "--frames", "8",
                "--dim", "6", "--batch", "4", "--train-utterances", "8", "--test-utterances", "4", "--steps", "1",
                "--warmup", "0", "--eval-batches", "1", "--data-repeats", "0", "--grid", "smoke", "--backbone", "cnn",
                "--placement", "device", "--out", str(steps))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "absent imported: []" in done.stdout
    assert [r["backbone"] for r in csv.DictReader(steps.open())] == ["cnn"]
    done = _cli("bench", "kernels", "--device", "cpu", "--loss", "lcl", "--n", "8", "--d", "8", "--repeats", "1",
                "--warmup", "0", "--out", str(kernels))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "absent imported: []" in done.stdout
    assert [(r["impl"], r["status"]) for r in csv.DictReader(kernels.open())] == [("torch", "ok"), ("triton", "ok")]


def test_a_dtype_the_kernels_do_not_take_is_refused(tmp_path):
    done = _cli("bench", "kernels", "--device", "cpu", "--dtype", "fp64", "--out", str(tmp_path / "k.csv"))
    assert done.returncode == 2 and "unknown ['fp64']; known: fp32, fp16, bf16" in done.stderr, done.stderr
