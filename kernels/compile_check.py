"""Compile the fused kernels for a GPU target, on a machine without a GPU, exactly as they launch.

Triton's interpreter (how the tests check values) never runs the GPU compiler, so a kernel can be
right in the interpreter and still fail to compile, or spill registers, on a device. This runs the
real host code of every loss (forward and backward, every specialisation) on CPU tensors of the
launched shape, intercepts each kernel launch, and compiles what would have launched through
Triton's own specialisation path (argument dtypes, int64 labels, 16-byte alignment and
divisibility hints, constexprs, num_warps/num_stages): the signature, not a hand-written copy of it.
The PTX is assembled by the ptxas bundled with triton, which reports registers and spills:

    python -m kernels.compile_check [--arch 90] [--dtype fp32,fp16,bf16] [--precision ieee|tf32]
                                    [--all-configs] [--n 4096] [--d 768] [--sms 132]

Must run in a process where TRITON_INTERPRET is unset (the kernels are decorated at import).
Exit status 1 if any kernel spills or needs more shared memory than a block may have.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from kernels import interpreting

DTYPES = ("fp32", "fp16", "bf16")
H100_SMS = 132
# the most shared memory one block may use, by SM version (CUDA's opt-in limit; a launch above it
# fails with OutOfResources); ptxas does not check it, so this does
SHARED_LIMIT = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 120: 101376}


@dataclass
class Launch:
    """One intercepted kernel launch, ready to compile."""

    name: str  # the specialisation, e.g. supcon_backward
    kernel: str  # the @triton.jit function
    signature: dict  # argument -> triton type, as the JIT specialised it
    constexprs: dict
    attrs: dict
    options: object
    fn: object
    key: tuple  # equal keys compile to the same binary


@contextlib.contextmanager
def _recording(target, calls: list):
    """Replace JITFunction.run: bind the arguments as a launch would (same specialisation code,
    for `target`), record them, launch nothing. Autotuned kernels record every config."""
    from triton.compiler import make_backend
    from triton.runtime import jit
    from triton.runtime.autotuner import Autotuner

    backend = make_backend(target)
    real_run, real_tuned = jit.JITFunction.run, Autotuner.run

    def run(self, *args, grid, warmup, **kwargs):
        kwargs.setdefault("debug", False)
        kwargs.setdefault("instrumentation_mode", "")
        binder = jit.create_function_from_signature(self.signature, self.params, backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = self._pack_args(backend, kwargs, bound, specialization, options)
        calls.append((self, signature, constexprs, attrs, options))

    def tuned(self, *args, **kwargs):
        for config in self.configs:
            self.fn.run(*args, grid=None, warmup=True, **kwargs, **config.all_kwargs())

    jit.JITFunction.run, Autotuner.run = run, tuned
    try:
        yield
    finally:
        jit.JITFunction.run, Autotuner.run = real_run, real_tuned


def launches(dtype: str, n: int, d: int, sms: int, target) -> list[Launch]:
    """Every kernel launch of every loss specialisation at [n, d] in `dtype`, as on a GPU with
    `sms` multiprocessors (their count sets the column slices)."""
    import torch

    from kernels import tiles as T
    from kernels import triton_icld, triton_supcon

    torch_dtype = _torch_dtype(dtype)
    g = torch.Generator().manual_seed(0)
    x = lambda rows: torch.randn(rows, d, generator=g).to(torch_dtype).requires_grad_(True)
    emotion = torch.randint(0, 4, (n,), generator=g)  # int64, as the trainer passes them
    speaker = torch.randint(0, 10, (n,), generator=g)
    runs = {
        "supcon": lambda: triton_supcon.supcon(x(n), emotion),
        "lcl": lambda: triton_supcon.label_contrastive(x(4), x(n), emotion),
        "icld_text": lambda: triton_icld.icld(x(n), x(n), emotion, speaker, margin=0.2),
        "icld_printed": lambda: triton_icld.icld(x(n), x(n), emotion, speaker, margin=0.2, negative="printed"),
    }
    out = []
    seen = set()
    for loss, run in runs.items():
        calls: list = []
        with _recording(target, calls), T.planning_for(sms):
            run().backward()
        for fn, signature, constexprs, attrs, options in calls:
            name = _specialisation_name(loss, fn.__name__, constexprs, fn)
            key = (name, repr(sorted(signature.items())), repr(sorted(constexprs.items())), repr(attrs),
                   options.num_warps, options.num_stages)
            if key in seen:
                continue
            seen.add(key)
            out.append(Launch(name, fn.__name__, signature, constexprs, attrs, options, fn, key))
    return out


def _specialisation_name(loss: str, kernel: str, constexprs: dict, fn) -> str:
    short = kernel.strip("_").removesuffix("_kernel").removeprefix("lse_").removeprefix("icld_")
    if loss == "lcl" and kernel == "_lse_backward_kernel":
        row_term = constexprs[(fn.arg_names.index("ROW_TERM"),)]
        return f"lcl_backward_{'anchors' if row_term else 'samples'}"
    if kernel == "_normalize_backward_kernel":
        return "normalize_backward"
    return f"{loss}_{short}"


def compile_launch(launch: Launch, target, arch: int) -> dict:
    import triton
    from triton.compiler import ASTSource

    kernel = triton.compile(ASTSource(launch.fn, launch.signature, launch.constexprs, launch.attrs), target=target,
                            options=launch.options.__dict__)
    ptx = kernel.asm["ptx"]
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as fh:
            fh.write(ptx)
        suffix = "a" if arch >= 90 else ""
        report = subprocess.run([ptxas, "-v", f"-arch=sm_{arch}{suffix}", path, "-o", os.devnull],
                                capture_output=True, text=True, check=True).stderr
    names = launch.fn.arg_names
    inputs = [a for a in names if a in ("r_ptr", "xe_ptr", "x_ptr")]
    aligned = {names[k[0]] for k, v in launch.attrs.items() if ["tt.divisibility", 16] in v}
    meta = {k: v for k, v in ((names[p[0]], v) for p, v in launch.constexprs.items()) if k.startswith("BLOCK")}
    return {
        "name": launch.name,
        "kernel": launch.kernel,
        "input": launch.signature[inputs[0]].lstrip("*") if inputs else "-",
        "labels": next((launch.signature[a].lstrip("*") for a in names if "lab" in a or a in ("emo_ptr", "spk_ptr")),
                       "-"),
        "tiles": "x".join(str(meta[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in meta) or
                 str(meta.get("BLOCK", "-")),
        "num_warps": launch.options.num_warps,
        "num_stages": launch.options.num_stages,
        "cp_async": ptx.count("cp.async.") > 0,
        "aligned_args": len(aligned),
        "registers": int(re.search(r"Used (\d+) registers", report).group(1)),
        "spill_bytes": int(re.search(r"(\d+) bytes spill stores", report).group(1)) +
                       int(re.search(r"(\d+) bytes spill loads", report).group(1)),
        "shared_bytes": kernel.metadata.shared,
        "shared_fits": kernel.metadata.shared <= SHARED_LIMIT.get(arch, min(SHARED_LIMIT.values())),
    }


@contextlib.contextmanager
def _candidate(index: int, precision: str):
    """Launch with the index-th candidate config of every CONFIGS row (the default is index 0; a
    row with fewer candidates keeps its last), under the given fp32 dot precision."""
    from kernels import tiles as T

    saved, saved_precision = {k: dict(v) for k, v in T.CONFIGS.items()}, T.FP32_DOT_PRECISION
    T.FP32_DOT_PRECISION = precision
    for key in T.CONFIGS:
        T.CONFIGS[key] = {stage: (configs[min(index, len(configs) - 1)],) for stage, configs in T.CONFIGS[key].items()}
    try:
        yield
    finally:
        T.CONFIGS.update(saved)
        T.FP32_DOT_PRECISION = saved_precision


def candidate_count() -> int:
    from kernels import tiles as T

    return max(len(configs) for row in T.CONFIGS.values() for configs in row.values())


def compile_all(arch: int = 90, dtypes=DTYPES, n: int = 4096, d: int = 768, sms: int = H100_SMS,
                precision: str | None = None, all_configs: bool = False) -> list[dict]:
    """One dict per launched kernel specialisation (see compile_launch for the keys): the default
    configs, or every candidate config with all_configs."""
    if interpreting():
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (kernels are decorated at import)")
    from triton.backends.compiler import GPUTarget

    from kernels import tiles as T

    target = GPUTarget("cuda", arch, 32)
    rows, seen = [], set()
    for index in range(candidate_count() if all_configs else 1):
        for dtype in dtypes:
            with _candidate(index, precision or T.FP32_DOT_PRECISION):
                for launch in launches(dtype, n, d, sms, target):
                    if (dtype, launch.key) not in seen:  # a row with fewer candidates repeats its last
                        seen.add((dtype, launch.key))
                        rows.append({"dtype": dtype, **compile_launch(launch, target, arch)})
    return rows


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def format_row(r: dict) -> str:
    return (f"{r['name']:<22}{r['input']:<6}{r['labels']:<5}{r['tiles']:<11}w{r['num_warps']:<2} s{r['num_stages']:<2}"
            f"{'cp.async' if r['cp_async'] else 'no-pipe':<9}regs {r['registers']:>4}  spills {r['spill_bytes']:>5} B  "
            f"smem {r['shared_bytes']:>6} B{'' if r['shared_fits'] else ' > limit'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="SM version, e.g. 80 (A100), 90 (H100/H200)")
    parser.add_argument("--dtype", default=",".join(DTYPES))
    parser.add_argument("--n", type=int, default=4096, help="batch size of the example launch")
    parser.add_argument("--d", type=int, default=768, help="embedding width (= row stride) of the example launch")
    parser.add_argument("--sms", type=int, default=H100_SMS, help="multiprocessors assumed for the column slices")
    parser.add_argument("--precision", choices=("ieee", "tf32"), help="fp32 dot precision (default: the setting, "
                        "kernels.tiles.FP32_DOT_PRECISION)")
    parser.add_argument("--all-configs", action="store_true", help="every candidate tile config, not the defaults")
    parser.add_argument("--json", action="store_true", help="one JSON object per kernel instead of the table")
    args = parser.parse_args(argv)
    rows = compile_all(args.arch, tuple(args.dtype.split(",")), args.n, args.d, args.sms, args.precision,
                       args.all_configs)
    if not args.json:
        print(f"{'kernel':<22}{'input':<6}{'lab':<5}{'tiles':<11}{'warps/stages/pipelining':<26}")
    for r in rows:
        print(json.dumps(r) if args.json else format_row(r))
    return 1 if any(r["spill_bytes"] or not r["shared_fits"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
