"""Compile the fused kernels for a GPU target, on a machine without a GPU, exactly as they launch.

Triton's interpreter (how the tests check values) never runs the GPU compiler, so a kernel can be
right in the interpreter and still fail to compile, or spill registers, on a device. This runs the
real host code of every loss (forward and backward, every specialisation) on CPU tensors of the
launched shape, intercepts each kernel launch, and compiles what would have launched through
Triton's own specialisation path (argument dtypes, int64 labels, 16-byte alignment and
divisibility hints, constexprs, num_warps/num_stages): the signature, not a hand-written copy of it.
The PTX is assembled by the ptxas bundled with triton, which reports registers and spills:

    hcld-grid bench compile [--arch 90] [--dtype fp32,fp16,bf16] [--precision ieee|tf32]
                            [--all-configs] [--n 4096] [--d 768] [--sms 132] [--json]
    python -m benchmarks.compile_check ...          # the same command

Must run in a process where TRITON_INTERPRET is unset (the kernels are decorated at import).
Exit status 1 if any kernel spills or needs more shared memory than a block may have.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import click

from benchmarks.common import dtype_names, torch_dtype
from grid.cli.options import parse_names

H100_SMS = 132
# the most shared memory one block may use, by SM version (CUDA's opt-in limit; a launch above it
# fails with OutOfResources); ptxas does not check it, so this does
SHARED_LIMIT = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 120: 101376}


class InterpreterActive(RuntimeError):
    """TRITON_INTERPRET is set: the kernels were decorated for the interpreter, nothing compiles."""


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

    from hcld.kernels import tiles as T
    from hcld.kernels import triton_icld, triton_supcon

    g = torch.Generator().manual_seed(0)
    x = lambda rows: torch.randn(rows, d, generator=g).to(torch_dtype(dtype)).requires_grad_(True)
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
    from hcld.kernels import tiles as T

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
    from hcld.kernels import tiles as T

    return max(len(configs) for row in T.CONFIGS.values() for configs in row.values())


def compile_all(arch: int = 90, dtypes=None, n: int = 4096, d: int = 768, sms: int = H100_SMS,
                precision: str | None = None, all_configs: bool = False) -> list[dict]:
    """One dict per launched kernel specialisation (see compile_launch for the keys): the default
    configs, or every candidate config with all_configs; dtypes None: every dtype (fp32, fp16, bf16)."""
    from hcld.kernels import interpreting

    if interpreting():
        raise InterpreterActive("compile_check needs TRITON_INTERPRET unset (kernels are decorated at import)")
    from triton.backends.compiler import GPUTarget

    from hcld.kernels import tiles as T

    target = GPUTarget("cuda", arch, 32)
    rows, seen = [], set()
    for index in range(candidate_count() if all_configs else 1):
        for dtype in dtypes or dtype_names():
            with _candidate(index, precision or T.FP32_DOT_PRECISION):
                for launch in launches(dtype, n, d, sms, target):
                    if (dtype, launch.key) not in seen:  # a row with fewer candidates repeats its last
                        seen.add((dtype, launch.key))
                        rows.append({"dtype": dtype, **compile_launch(launch, target, arch)})
    return rows


def format_row(r: dict) -> str:
    return (f"{r['name']:<22}{r['input']:<6}{r['labels']:<5}{r['tiles']:<11}w{r['num_warps']:<2} s{r['num_stages']:<2}"
            f"{'cp.async' if r['cp_async'] else 'no-pipe':<9}regs {r['registers']:>4}  spills {r['spill_bytes']:>5} B  "
            f"smem {r['shared_bytes']:>6} B{'' if r['shared_fits'] else ' > limit'}")


@click.command("compile", context_settings={"max_content_width": 100})
@click.option("--arch", type=int, default=90, show_default=True, help="SM version, e.g. 80 (A100), 90 (H100/H200).")
@click.option("--dtype", "dtypes", default=None, metavar="LIST", help="Input dtypes, comma-separated "
              "[default: fp32,fp16,bf16].")
@click.option("--n", type=int, default=4096, show_default=True, help="Batch size of the example launch.")
@click.option("--d", type=int, default=768, show_default=True,
              help="Embedding width (= row stride) of the example launch.")
@click.option("--sms", type=int, default=H100_SMS, show_default=True,
              help="Multiprocessors assumed for the column slices.")
@click.option("--precision", type=click.Choice(["ieee", "tf32"]), default=None,
              help="fp32 dot precision [default: the setting, hcld.kernels.tiles.FP32_DOT_PRECISION].")
@click.option("--all-configs", is_flag=True, help="Every candidate tile config, not the defaults.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per kernel instead of the table.")
def compile_check(arch, dtypes, n, d, sms, precision, all_configs, as_json) -> None:
    """Compile every launched kernel for a GPU target without a GPU: registers, spills, shared memory;
    exit 1 if any spills or overflows shared memory."""
    dtypes = parse_names(dtypes, dtype_names(), "'--dtype'") if dtypes is not None else None
    try:
        rows = compile_all(arch, dtypes, n, d, sms, precision, all_configs)
    except InterpreterActive as err:  # say so, without a traceback
        raise click.ClickException(str(err)) from err
    if not as_json:
        click.echo(f"{'kernel':<22}{'input':<6}{'lab':<5}{'tiles':<11}{'warps/stages/pipelining':<26}")
    for r in rows:
        click.echo(json.dumps(r) if as_json else format_row(r))
    if any(r["spill_bytes"] or not r["shared_fits"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    compile_check(prog_name="python -m benchmarks.compile_check")
