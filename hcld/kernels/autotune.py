"""Pick each main kernel's tile config on the device by timing the candidates of kernels.tiles.CONFIGS.

Every candidate there compiles for sm_90 without register spills at the launched signatures
(benchmarks.compile_check --all-configs, asserted by tests/benchmarks/test_compile_check.py), so tuning only
ever chooses among spill-free configs. The first launch of a kernel specialisation at a shape
bucket (N rounded up to a power of two), dtype, fp32 dot precision and device times every
candidate on the call's own inputs and keeps the fastest for the rest of the process. Timing runs
the launch several times: safe, because each launch writes only the buffers it allocates itself.

Tuning is on for CUDA tensors unless HCLD_AUTOTUNE=0, and off under triton's interpreter (its
timings say nothing about a GPU), below MIN_TUNED_SIZE rows and columns, or when the caller fixes a
tile size. With it off the first candidate (the default) runs: the same tiles, so the same
summation order, in every process. With it on, repeats within a process are bit-identical, but two
processes may pick different tiles and differ in the last bits (tiles change the order of the fp32
sums).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch
import triton

from hcld.kernels import tiles as T

ENV = "HCLD_AUTOTUNE"
# Below this many rows and columns a launch is a handful of tiles and launch-bound: the tiles change
# nothing measurable, so the defaults run. Training at the paper's batch (32) therefore compiles no
# candidates and sums in the same order in every process.
MIN_TUNED_SIZE = 1024



class Key(NamedTuple):
    """What one tuning result holds for: shapes within a power-of-two bucket share it."""

    kernel: str  # the specialisation, e.g. "supcon_forward", "lcl_backward_anchors"
    stage: str  # "forward" | "backward"
    config_row: str  # kernels.tiles.config_key: the input dtype, TF32 apart
    rows: int  # bucket(m)
    cols: int  # bucket(n)
    d: int
    device: str


_chosen: dict[Key, T.TileConfig] = {}


def enabled(device: torch.device) -> bool:
    """Whether launches on `device` are tuned (read at call time, so a test or a run can switch it)."""
    return device.type == "cuda" and os.environ.get(ENV, "1") != "0"


def large_enough(m: int, n: int) -> bool:
    """Whether an [m x n] problem has enough tiles for their shape to matter (see MIN_TUNED_SIZE)."""
    return max(m, n) >= MIN_TUNED_SIZE


def bucket(size: int) -> int:
    return triton.next_power_of_2(max(size, 1))


def measure(launch: Callable[[], object]) -> float:
    """Milliseconds per launch on the current device (short: a few dozen launches per candidate)."""
    from triton.testing import do_bench

    return do_bench(launch, warmup=5, rep=20)


def plan(tiling: T.Tiling, kernel: str, m: int, n: int, d: int, dtype: torch.dtype, device: torch.device,
         stage: str, launch: Callable[[T.Plan], object]) -> T.Plan:
    """The Plan a `kernel` launch ("supcon_forward", "lcl_backward_anchors", ...) of an [m rows x n
    columns x d] problem runs with: tiling.plan(...) with the tuned config when tuning applies.
    `launch(plan)` must allocate its outputs and launch the kernel (it is timed per candidate)."""
    if tiling.fixes_tiles or not enabled(device) or not large_enough(m, n):
        return tiling.plan(m, n, d, dtype, device, stage)
    key = Key(kernel, stage, T.config_key(dtype), bucket(m), bucket(n), d, str(device))
    if key not in _chosen:
        _chosen[key] = _fastest(tiling, m, n, d, dtype, device, stage, launch)
    return tiling.with_config(_chosen[key]).plan(m, n, d, dtype, device, stage)


def _fastest(tiling, m, n, d, dtype, device, stage, launch) -> T.TileConfig:
    """The candidate whose launch is fastest; candidates that shrink to the same plan at this size
    are timed once (the first of them, the earlier in CONFIGS, is kept on a tie)."""
    timed: dict[T.Plan, float] = {}
    best, best_ms = None, float("inf")
    for config in T.CONFIGS[T.config_key(dtype)][stage]:
        candidate = tiling.with_config(config).plan(m, n, d, dtype, device, stage)
        if candidate not in timed:
            timed[candidate] = measure(lambda: launch(candidate))
        if timed[candidate] < best_ms:
            best, best_ms = config, timed[candidate]
    return best


def chosen() -> dict[Key, T.TileConfig]:
    """What tuning picked so far in this process (for the benchmark's record)."""
    return dict(_chosen)


def describe(config: T.TileConfig) -> str:
    return f"{config.block_m}x{config.block_n}x{config.block_k} w{config.num_warps} s{config.num_stages}"


def forget() -> None:
    """Drop every choice (the next launch of each key tunes again)."""
    _chosen.clear()
