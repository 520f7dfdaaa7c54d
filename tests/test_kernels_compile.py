"""Every launched kernel specialisation compiles for an H100 (sm_90) without register spills.

The interpreter never runs triton's GPU compiler. kernels.compile_check runs the real host code of
each loss on CPU tensors of a GPU-sized launch (N = 4096, D = stride = 768, int64 labels, 132 SMs),
intercepts the launches and lowers them through triton's specialisation path to a cubin with the
ptxas bundled with triton; here for every dtype with its default configs, and for TF32.
"""

import json
import os
import subprocess
import sys

import pytest

MAIN = {"supcon_forward", "supcon_backward", "lcl_forward", "lcl_backward_anchors", "lcl_backward_samples",
        "icld_text_forward", "icld_text_backward", "icld_printed_forward", "icld_printed_backward"}
OTHER = {"supcon_inv_norm", "lcl_inv_norm", "icld_text_inv_norm", "icld_printed_inv_norm", "normalize_backward",
         "supcon_finalize", "lcl_finalize", "icld_text_finalize", "icld_printed_finalize"}


def _compile_check(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "kernels.compile_check", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, rows


# the default configs of every dtype here (~20 s); `python -m kernels.compile_check --all-configs`
# checks the tuning candidates too (~1 min, too long for every CI run)
@pytest.mark.parametrize("precision,dtypes", [("ieee", "fp32,fp16,bf16"), ("tf32", "fp32")])
def test_launched_kernels_compile_for_an_h100_without_spills(tmp_path, precision, dtypes):
    done, rows = _compile_check(tmp_path, "--precision", precision, "--dtype", dtypes)
    assert done.returncode == 0, done.stdout + done.stderr
    spilled = [r for r in rows if r["spill_bytes"]]
    assert not spilled, spilled
    for dtype in dtypes.split(","):
        mine = [r for r in rows if r["dtype"] == dtype]
        assert {r["name"] for r in mine} == MAIN | OTHER
        for r in mine:
            if r["name"] in MAIN:
                # what runs: the input dtype, the int64 labels the trainer passes, a pipelined D loop,
                # 16-byte alignment hints on the pointers and D/stride = 768
                assert r["input"] == dtype and r["labels"] == "i64" and r["cp_async"], r
                assert r["num_stages"] >= 2 and r["aligned_args"] >= 6, r
                assert r["registers"] <= 255


def test_compile_check_refuses_the_interpreter(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-m", "kernels.compile_check", "--dtype", "fp16"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "TRITON_INTERPRET unset" in done.stderr
