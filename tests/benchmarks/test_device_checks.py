"""benchmarks/device_checks.sh, the prepared first hardware run, on CPU with tiny sizes: its plumbing
(commands, options, outputs, per-step limits) must work before it spends a lent GPU's minutes."""

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_device_checks_script_runs_every_step_and_writes_its_tables(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(OUT=str(tmp_path), PYTHON=sys.executable, DEVICE="cpu",
               KERNEL_NS="16", KERNEL_DS="8", KERNEL_DTYPES="fp32",
               STEP_ARGS="--rows 64 --steps 1 --eval-batches 1 --model-size tiny --frames 20 --dim 16 "
                         "--backbone cnn --grid smoke", TUNED_NS="16", TUNED_DTYPES="fp32")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_checks.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    status = dict(line.split(" ", 1) for line in (tmp_path / "steps.txt").read_text().splitlines())
    assert list(status) == ["gpu-test", "kernels", "steps", "kernels-tuned"]
    # no GPU here: the compiled-kernel check says so and fails; the next steps still run
    assert status["gpu-test"].startswith("exit=1")
    assert "no CUDA device" in (tmp_path / "gpu-test.log").read_text()
    assert all(status[name].startswith("exit=0") for name in ("kernels", "steps", "kernels-tuned")), status
    kernels = list(csv.DictReader((tmp_path / "kernels.csv").open()))
    assert [(r["loss"], r["impl"], r["status"]) for r in kernels] == [
        (loss, impl, "ok") for loss in ("icld", "supcon", "lcl") for impl in ("torch", "triton")]
    assert len(list(csv.DictReader((tmp_path / "steps.csv").open()))) == 1
    tuned = list(csv.DictReader((tmp_path / "kernels-tuned.csv").open()))
    assert [(r["loss"], r["impl"], r["status"]) for r in tuned] == [("supcon", "triton", "ok"),
                                                                    ("icld", "triton", "ok")]
    assert "torch 2." in (tmp_path / "device.txt").read_text()

    # a rerun names the steps it still needs; the others do not run
    rerun = tmp_path / "rerun"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_checks.sh")], cwd=ROOT,
                          env=dict(env, OUT=str(rerun), STEPS="kernels-tuned"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[0] for line in (rerun / "steps.txt").read_text().splitlines()] == ["kernels-tuned"]
