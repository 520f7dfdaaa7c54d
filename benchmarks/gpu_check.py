"""`hcld-grid bench gpu-check`: the compiled kernels on a CUDA device, against an fp64 reference.

Everywhere else the kernels run through triton's CPU interpreter, which executes programs one
after another; this runs them compiled, as training does. Cases: the interpreter tests' shapes with
small tiles and forced column slices, and N in {1024, 4096, 16384} at D = 768 with the default
tiles, each in fp32, bf16 and fp16, with rows that have nothing to contrast (all-masked: no
positive, no pair, an absent class), for SupCon, LCL and both ICLD forms. The reference runs in
fp64 on the same (already rounded) inputs; every case runs twice and must repeat bit for bit.

Triton picks interpreter or compiler when a kernel module is imported, so this must run in a process
without TRITON_INTERPRET (tests/benchmarks/test_gpu_check.py starts one when a GPU is present):

    hcld-grid bench gpu-check          # or: python -m benchmarks.gpu_check

Exit status 1 if a case fails or there is no CUDA device.
"""

from __future__ import annotations

import click

from benchmarks.common import torch_dtype

SHAPES = [(37, 40, dict(block_m=16, block_n=16, block_k=16, splits=2)), (1024, 768, {}), (4096, 768, {}),
          (16384, 768, {})]
DTYPES = ("fp32", "bf16", "fp16")  # the order the cases run in
# relative to the largest reference entry. fp32: exact products, fp32 sums over N and D; TF32 and
# half inputs: the TF32 gradient product and the output rounding (fp16 2^-11, bf16 2^-8)
LOSS_TOL = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 1e-3, "bf16": 1e-3}
GRAD_TOL = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 3e-3, "bf16": 1.5e-2}
NO_CUDA = "no CUDA device: the compiled kernels need a GPU"


def _inputs(n, d, dtype, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = lambda rows: torch.randn(rows, d, generator=g).to(dtype).cuda()
    emotion = torch.randint(0, 3, (n,), generator=g)  # LCL's class 3 is absent: an anchor without positives
    speaker = torch.randint(0, 10, (n,), generator=g)
    k = min(3, n // 4)
    emotion[:k] = 100 + torch.arange(k)  # SupCon anchors without a positive, ICLD rows with no x+ pair
    speaker[:k] = 200 + torch.arange(k)  # ... and no x- pair: all-masked rows
    return x(n), x(n), x(4), emotion.cuda(), speaker.cuda()


def _run(fn, tensors):
    import torch

    leaves = [t.clone().requires_grad_(True) for t in tensors]
    loss = fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


def _check(name, fused, ref, tensors, key):
    import torch

    first, second = _run(fused, tensors), _run(fused, tensors)
    assert torch.equal(first[0], second[0]) and all(torch.equal(a, b) for a, b in zip(first[1], second[1])), \
        f"{name}: repeats differ"
    want, want_grads = _run(ref, [t.double() for t in tensors])
    loss, grads = first
    assert torch.isfinite(loss), f"{name}: loss {loss}"
    assert abs(float(loss) - float(want)) <= LOSS_TOL[key] * abs(float(want)) + 1e-6, \
        f"{name}: loss {float(loss)} vs {float(want)}"
    for got, exp in zip(grads, want_grads):
        assert got.dtype == tensors[0].dtype and torch.isfinite(got).all(), f"{name}: gradient dtype or non-finite"
        scale = max(float(exp.abs().max()), 1e-30)
        err = float((got.double() - exp).abs().max())
        assert err <= GRAD_TOL[key] * scale + 1e-7, f"{name}: gradient error {err:.3g} vs scale {scale:.3g}"


def run_cases() -> int:
    """Every case, a line each; 0 when all pass, 1 otherwise (or without a CUDA device)."""
    import torch

    from hcld import kernels

    if kernels.interpreting():
        raise click.ClickException("run without TRITON_INTERPRET: this checks the compiled kernels")
    if not torch.cuda.is_available():
        click.echo(NO_CUDA)
        return 1
    from hcld.kernels import reference, triton_icld, triton_supcon
    from hcld.kernels import tiles as T

    assert kernels.resolve_impl("triton", "cuda") == "triton"
    failures, count = [], 0
    for n, d, tiles in SHAPES:
        for dtype_name in DTYPES:
            key = "tf32" if dtype_name == "fp32" and T.FP32_DOT_PRECISION == "tf32" else dtype_name
            xe, xs, anchors, emotion, speaker = _inputs(n, d, torch_dtype(dtype_name), seed=n)
            cases = {
                "supcon": (lambda a: triton_supcon.supcon(a, emotion, **tiles),
                           lambda a: reference.supcon(a, emotion), [xe]),
                "lcl": (lambda a, x: triton_supcon.label_contrastive(a, x, emotion.remainder(4), **tiles),
                        lambda a, x: reference.label_contrastive(a, x, emotion.remainder(4)), [anchors, xe]),
            }
            for form in ("text", "printed"):
                cases[f"icld_{form}"] = (
                    lambda a, b, f=form: triton_icld.icld(a, b, emotion, speaker, margin=0.2, negative=f, **tiles),
                    lambda a, b, f=form: reference.icld(a, b, emotion, speaker, margin=0.2, negative=f), [xe, xs])
            for loss, (fused, ref, tensors) in cases.items():
                name = f"{loss} N={n} D={d} {key}"
                count += 1
                try:
                    _check(name, fused, ref, tensors, key)
                    click.echo(f"ok    {name}")
                except (AssertionError, torch.cuda.OutOfMemoryError) as exc:
                    failures.append(f"{name}: {exc}")
                    click.echo(f"FAIL  {name}: {exc}")
                torch.cuda.empty_cache()
    click.echo(f"{count - len(failures)} of {count} cases passed on {torch.cuda.get_device_name()}")
    return 1 if failures else 0


@click.command("gpu-check")
def gpu_check() -> None:
    """The compiled kernels against an fp64 reference on the CUDA device (needs a GPU, TRITON_INTERPRET unset)."""
    if run_cases():
        raise SystemExit(1)


if __name__ == "__main__":
    gpu_check(prog_name="python -m benchmarks.gpu_check")
