"""The compiled kernels on a CUDA device, against an fp64 reference (the GPU test path).

Everywhere else the kernels run through triton's CPU interpreter, which executes programs one
after another; this runs them compiled, as training does. Cases: the interpreter tests' shapes with
small tiles and forced column slices, and N in {1024, 4096, 16384} at D = 768 with the default
tiles, each in fp32, bf16 and fp16, with rows that have nothing to contrast (all-masked: no
positive, no pair, an absent class), for SupCon, LCL and both ICLD forms. The reference runs in
fp64 on the same (already rounded) inputs; every case runs twice and must repeat bit for bit.

Triton picks interpreter or compiler when a kernel module is imported, and the other kernel tests
import it under TRITON_INTERPRET=1, so the cases run in a fresh process without that variable:
`python tests/test_kernels_gpu.py` (what the test below does when a GPU is present).
"""

import os
import subprocess
import sys

import pytest
import torch

SHAPES = [(37, 40, dict(block_m=16, block_n=16, block_k=16, splits=2)), (1024, 768, {}), (4096, 768, {}),
          (16384, 768, {})]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# relative to the largest reference entry. fp32: exact products, fp32 sums over N and D; TF32 and
# half inputs: the TF32 gradient product and the output rounding (fp16 2^-11, bf16 2^-8)
LOSS_TOL = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 1e-3, "bf16": 1e-3}
GRAD_TOL = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 3e-3, "bf16": 1.5e-2}


def test_compiled_kernels_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the compiled kernels need a GPU (the interpreter tests check values here)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "cases passed" in done.stdout


def _inputs(n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = lambda rows: torch.randn(rows, d, generator=g).to(dtype).cuda()
    emotion = torch.randint(0, 3, (n,), generator=g)  # LCL's class 3 is absent: an anchor without positives
    speaker = torch.randint(0, 10, (n,), generator=g)
    k = min(3, n // 4)
    emotion[:k] = 100 + torch.arange(k)  # SupCon anchors without a positive, ICLD rows with no x+ pair
    speaker[:k] = 200 + torch.arange(k)  # ... and no x- pair: all-masked rows
    return x(n), x(n), x(4), emotion.cuda(), speaker.cuda()


def _run(fn, tensors):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    loss = fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


def _check(name, fused, ref, tensors, key):
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


def main() -> int:
    from kernels import tiles as T

    assert not T.interpreting(), "run without TRITON_INTERPRET: this checks the compiled kernels"
    if not torch.cuda.is_available():
        print("no CUDA device: the compiled kernels need a GPU")
        return 1
    import kernels
    from kernels import reference, triton_icld, triton_supcon

    assert kernels.resolve_impl("triton", "cuda") == "triton"
    failures, count = [], 0
    for n, d, tiles in SHAPES:
        for dtype_name, dtype in DTYPES.items():
            key = "tf32" if dtype_name == "fp32" and T.FP32_DOT_PRECISION == "tf32" else dtype_name
            xe, xs, anchors, emotion, speaker = _inputs(n, d, dtype, seed=n)
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
                    print(f"ok    {name}", flush=True)
                except (AssertionError, torch.cuda.OutOfMemoryError) as exc:
                    failures.append(f"{name}: {exc}")
                    print(f"FAIL  {name}: {exc}", flush=True)
                torch.cuda.empty_cache()
    print(f"{count - len(failures)} of {count} cases passed on {torch.cuda.get_device_name()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
