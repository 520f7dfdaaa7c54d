"""Every launched kernel specialisation compiles for an H100 (sm_90) without register spills.

The interpreter never runs triton's GPU compiler. benchmarks.compile_check (`hcld-grid bench compile`)
runs the real host code of each loss on CPU tensors of a GPU-sized launch (N = 4096, D = stride = 768,
int64 labels, 132 SMs), intercepts the launches and lowers them through triton's specialisation path to a cubin with the
ptxas bundled with triton; here for every dtype and every candidate config, and for TF32.
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
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile_check", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, rows


def _tuned(row: dict) -> tuple:
    return row["tiles"], row["num_warps"], row["num_stages"]


# every candidate config kernels.autotune may pick, for every dtype and both fp32 dot precisions
# (the tuner launches these on a device, so each must be spill-free)
@pytest.mark.parametrize("precision,dtypes", [("ieee", "fp32,fp16,bf16"), ("tf32", "fp32")])
def test_launched_kernels_compile_for_an_h100_without_spills(tmp_path, precision, dtypes):
    from hcld.kernels import tiles as T

    done, rows = _compile_check(tmp_path, "--all-configs", "--precision", precision, "--dtype", dtypes)
    assert done.returncode == 0, done.stdout + done.stderr
    spilled = [r for r in rows if r["spill_bytes"] or not r["shared_fits"]]
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
        # SupCon's square 4096-row launch keeps every candidate's full tiles: all of them compiled
        key = "tf32" if precision == "tf32" else dtype
        for stage in ("forward", "backward"):
            want = {(f"{c.block_m}x{c.block_n}x{c.block_k}", c.num_warps, c.num_stages) for c in T.CONFIGS[key][stage]}
            assert {_tuned(r) for r in mine if r["name"] == f"supcon_{stage}"} == want


def test_compile_check_refuses_the_interpreter(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile_check", "--dtype", "fp16"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "TRITON_INTERPRET unset" in done.stderr
