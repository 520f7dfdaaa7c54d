"""benchmarks/gpu_check.py (`hcld-grid bench gpu-check`): the compiled kernels against an fp64
reference, which needs a CUDA device. Triton picks interpreter or compiler when a kernel module is
imported and the other kernel tests import them under TRITON_INTERPRET=1, so the check runs in a
fresh process without that variable."""

import os
import subprocess
import sys

import pytest
import torch

from benchmarks.gpu_check import NO_CUDA


def _gpu_check(interpret: bool = False):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], env=env, capture_output=True, text=True,
                          timeout=1800)


def test_compiled_kernels_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip(f"{NO_CUDA} (the interpreter tests check values here)")
    done = _gpu_check()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "cases passed" in done.stdout


def test_without_a_gpu_the_check_fails_and_says_why():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: test_compiled_kernels_on_cuda runs the check")
    done = _gpu_check()
    assert done.returncode == 1 and NO_CUDA in done.stdout, done.stdout + done.stderr


def test_the_check_refuses_the_interpreter():
    done = _gpu_check(interpret=True)
    assert done.returncode == 1 and "run without TRITON_INTERPRET" in done.stderr
