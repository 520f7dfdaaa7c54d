"""triton's peak memory is never above torch's (benchmarks/memory.py, planned as on an H100).

The fused host code allocates every buffer the kernels use from its launch plan; with the launches
skipped, the profiler sees exactly those allocations. torch (the reference) runs for real. Small N here (the full grid,
N up to 16384, is `hcld-grid bench memory`, committed in results/bench/memory.csv).
"""

import pytest
import torch

import benchmarks.memory as footprint


@pytest.mark.parametrize("sms", [1, 132])
@pytest.mark.parametrize("d", [16, 768])
@pytest.mark.parametrize("n", [32, 1024])
@pytest.mark.parametrize("loss", ["icld", "supcon", "lcl"])
def test_triton_peak_is_not_above_torch(loss, n, d, sms):
    base, fused = footprint.footprint(loss, "torch", n, d, sms), footprint.footprint(loss, "triton", n, d, sms)
    assert 0 < fused <= base, (base, fused)


def test_the_measurement_counts_the_kernels_buffers():
    """SupCon at N = 1024, D = 768 on 132 SMs: 16 row blocks, so ceil(132 / 16) = 9 column slices,
    capped by memory at 2N / D = 2: the backward's [2, N, D] fp32 gradient slab (6 MiB) is live
    beside the input and its gradient (3 MiB each)."""
    from hcld.kernels import tiles as T

    n, d = 1024, 768
    with T.planning_for(132):
        plan = T.Tiling().plan(n, n, d, torch.float32, torch.device("cpu"), "backward")
    assert plan.splits == 2
    slab = plan.splits * n * d * 4 / 2**20
    fused = footprint.footprint("supcon", "triton", n, d, 132)
    assert fused >= slab + 2 * n * d * 4 / 2**20
    base = footprint.footprint("supcon", "torch", n, d, 132)
    assert base >= 4 * n * n * 4 / 2**20  # the reference keeps several N x N fp32 matrices for its backward


def test_bench_memory_cli_writes_the_table(tmp_path):
    import csv

    from click.testing import CliRunner

    out = tmp_path / "m.csv"
    result = CliRunner().invoke(footprint.memory, ["--n", "64", "--d", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["loss"] for r in rows] == ["icld", "supcon", "lcl"]
    assert list(rows[0]) == list(footprint.COLUMNS)
    assert all(0 < float(r["triton_vs_torch"]) <= 1 for r in rows)
    assert "triton above torch in 0" in result.output


def test_footprint_refuses_the_old_implementation_names():
    with pytest.raises(ValueError, match="torch or triton"):
        footprint.footprint("supcon", "eager", 32, 16)
