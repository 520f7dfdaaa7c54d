"""Compile the fused kernels for a GPU target on a machine without a GPU.

Triton's interpreter (how the tests check values) never runs the GPU compiler, so a kernel can be
right in the interpreter and still fail to compile, or spill registers, on a device. This lowers
every kernel through Triton's real pipeline to PTX and a cubin (the ptxas bundled with triton) and
reports registers and spills per kernel:

    python -m kernels.compile_check [--arch 90] [--dtype fp32,fp16,bf16] [--all]

Must run in a process where TRITON_INTERPRET is unset (the kernels are decorated at import).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ELEMENT = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}


def _specialisations(dtype: str, everything: bool, dtypes_first=("fp32",)):
    from kernels import _tiles as T
    from kernels import triton_icld as icld
    from kernels import triton_supcon as sc

    x = "*" + ELEMENT[dtype]
    blocks = {"BLOCK_M": T.BLOCK_M, "BLOCK_N": T.BLOCK_N, "BLOCK_K": T.BLOCK_K, "UPCAST_DOT": False,
              "DOT_PRECISION": T.FP32_DOT_PRECISION if dtype == "fp32" else None}
    consts = lambda names: {n: "constexpr" for n in names}
    meta = consts(["BLOCK_M", "BLOCK_N", "BLOCK_K", "UPCAST_DOT", "DOT_PRECISION"])
    shape = {"M": "i32", "N": "i32", "D": "i32", "stride_r": "i32", "stride_c": "i32", "inv_tau": "fp32",
             "cols_per_split": "i32"}
    lse_fwd = {"r_ptr": x, "c_ptr": x, "rlab_ptr": "*i32", "clab_ptr": "*i32", "m_out": "*fp32", "l_out": "*fp32",
               "s_out": "*fp32", "n_out": "*i32", **shape, **consts(["EXCLUDE_SELF"]), **meta}
    lse_bwd = {"r_ptr": x, "c_ptr": x, "rlab_ptr": "*i32", "clab_ptr": "*i32",
               **{f"{s}_{v}": "*fp32" for s in "rc" for v in ("lse", "alpha", "beta")}, "g_ptr": "*fp32",
               **shape, **consts(["EXCLUDE_SELF", "ROW_TERM", "COL_TERM"]), **meta}
    lse_bwd = {k: lse_bwd[k] for k in ["r_ptr", "c_ptr", "rlab_ptr", "clab_ptr", "r_lse", "r_alpha", "r_beta",
                                      "c_lse", "c_alpha", "c_beta", "g_ptr", *shape, "EXCLUDE_SELF", "ROW_TERM",
                                      "COL_TERM", *meta]}
    pair = {"xe_ptr": x, "xs_ptr": x, "emo_ptr": "*i32", "spk_ptr": "*i32"}
    tail = {"N": "i32", "De": "i32", "Ds": "i32", "stride_e": "i32", "stride_s": "i32", "margin": "fp32",
            "cols_per_split": "i32", **consts(["PRINTED"]), **meta}
    norm = {"g_ptr": "*fp32", "x_ptr": x, "dx_ptr": x, "grad_ptr": "*fp32", "scale_ptr": "*fp32",
            "multiplier": "fp32", "N": "i32", "D": "i32", "stride_x": "i32", "n_splits": "i32",
            **consts(["BLOCK_M", "BLOCK_K"])}
    lse_fin = {"m_ptr": "*fp32", "l_ptr": "*fp32", "s_ptr": "*fp32", "n_ptr": "*i32", "lse_out": "*fp32",
               "alpha_out": "*fp32", "beta_out": "*fp32", "loss_out": "*fp32", "scale_out": "*fp32", "M": "i32",
               "n_splits": "i32", "inv_tau": "fp32", "n_samples": "i32", **consts(["LCL", "BLOCK"])}
    icld_fin = {"ps_ptr": "*fp32", "ns_ptr": "*fp32", "pc_ptr": "*i32", "nc_ptr": "*i32", "loss_out": "*fp32",
                "scale_out": "*fp32", "total_rows": "i32", **consts(["BLOCK"])}
    yield "supcon_forward", sc._lse_forward_kernel, lse_fwd, {"EXCLUDE_SELF": True, **blocks}
    yield "supcon_backward", sc._lse_backward_kernel, lse_bwd, {"EXCLUDE_SELF": True, "ROW_TERM": True,
                                                                "COL_TERM": True, **blocks}
    if everything:
        yield "lcl_forward", sc._lse_forward_kernel, lse_fwd, {"EXCLUDE_SELF": False, **blocks}
        yield "lcl_backward_anchors", sc._lse_backward_kernel, lse_bwd, {"EXCLUDE_SELF": False, "ROW_TERM": True,
                                                                         "COL_TERM": False, **blocks}
        yield "lcl_backward_samples", sc._lse_backward_kernel, lse_bwd, {"EXCLUDE_SELF": False, "ROW_TERM": False,
                                                                         "COL_TERM": True, **blocks}
    for printed in (False, True) if everything else (False,):
        form = "printed" if printed else "text"
        yield (f"icld_forward_{form}", icld._icld_forward_kernel,
               {**pair, "pos_sum": "*fp32", "neg_sum": "*fp32", "pos_cnt": "*i32", "neg_cnt": "*i32", **tail},
               {"PRINTED": printed, **blocks})
        yield (f"icld_backward_{form}", icld._icld_backward_kernel, {**pair, "ge_ptr": "*fp32", "gs_ptr": "*fp32", **tail},
               {"PRINTED": printed, **blocks})
    yield "normalize_backward", T._normalize_backward_kernel, norm, {"BLOCK_M": T.BLOCK_M, "BLOCK_K": T.BLOCK_K}
    if dtype == dtypes_first[0]:  # finalize kernels read fp32 statistics whatever the input dtype: once
        for lcl in (False, True):
            yield f"{'lcl' if lcl else 'supcon'}_finalize", sc._lse_finalize_kernel, lse_fin, {"LCL": lcl, "BLOCK": 1024}
        yield "icld_finalize", icld._icld_finalize_kernel, icld_fin, {"BLOCK": 1024}


def compile_all(arch: int = 90, dtypes=("fp32", "fp16", "bf16"), everything: bool = False) -> list[dict]:
    """One dict per kernel specialisation: name, dtype, registers, spill_bytes, shared_bytes."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (kernels are decorated at import)")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels import _tiles as T

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    target = GPUTarget("cuda", arch, 32)
    rows = []
    for dtype in dtypes:
        for name, fn, signature, constexprs in _specialisations(dtype, everything, dtypes):
            launch = {} if name.endswith(("normalize_backward", "finalize")) else T.LAUNCH
            kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=target,
                                    options=launch)
            with tempfile.TemporaryDirectory() as tmp:
                ptx = os.path.join(tmp, "k.ptx")
                with open(ptx, "w") as fh:
                    fh.write(kernel.asm["ptx"])
                suffix = "a" if arch >= 90 else ""
                report = subprocess.run([ptxas, "-v", f"-arch=sm_{arch}{suffix}", ptx, "-o", os.devnull],
                                        capture_output=True, text=True, check=True).stderr
            rows.append({"name": name, "dtype": dtype,
                         "registers": int(re.search(r"Used (\d+) registers", report).group(1)),
                         "spill_bytes": int(re.search(r"(\d+) bytes spill stores", report).group(1)),
                         "shared_bytes": kernel.metadata.shared})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="SM version, e.g. 80 (A100), 90 (H100/H200)")
    parser.add_argument("--dtype", default="fp32,fp16,bf16")
    parser.add_argument("--all", action="store_true", help="also the LCL and printed-hinge specialisations")
    args = parser.parse_args(argv)
    rows = compile_all(args.arch, tuple(args.dtype.split(",")), args.all)
    for r in rows:
        print(f"{r['name']:<24}{r['dtype']:<6}regs {r['registers']:>4}  spills {r['spill_bytes']:>5} B  "
              f"smem {r['shared_bytes']:>6} B")
    return 1 if any(r["spill_bytes"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
