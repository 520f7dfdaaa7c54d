"""The GPU-path settings of a trial, on CPU: resident vs host features, bf16 autocast, and a
training loop that reads losses back once per epoch (not once per step) but still names the
first non-finite batch and term."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hcld
import hcld.train as train
from hcld import placement
from hcld.errors import TrialFailed
from hcld.placement import HostFeatures, ResidentFeatures, Rows, feature_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import make_data, tiny  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_cache():
    placement.clear_resident()
    yield
    placement.clear_resident()


def on_memmap(data, folder: Path, key: str = "store-key-1"):
    """The same data with its features in a read-only memmap, as the feature store hands them out."""
    file = folder / "features.f16"
    array = np.memmap(file, dtype=np.float16, mode="w+", shape=data.features.shape)
    array[:] = data.features
    array.flush()
    data.features = np.memmap(file, dtype=np.float16, mode="r", shape=array.shape)
    data.feature_key = key
    return data


def curves_and_metrics(result) -> str:
    """JSON text (NaN compares equal to NaN); wall times differ by nature."""
    return json.dumps([{k: v for k, v in row.items() if k != "seconds"} for row in result.curves] + [result.metrics])


def test_resident_and_host_features_give_identical_results(tmp_path):
    data = on_memmap(make_data(), tmp_path)
    resident = train.run_trial(tiny(feature_placement="device"), data)
    host = train.run_trial(tiny(feature_placement="host"), data)
    auto = train.run_trial(tiny(), data)
    assert curves_and_metrics(resident) == curves_and_metrics(host) == curves_and_metrics(auto)


def test_both_sources_give_the_same_fp32_batch(tmp_path):
    data = on_memmap(make_data(), tmp_path)
    rows = Rows.of(np.array([5, 1, 40]), torch.device("cpu"))
    host = HostFeatures(data.features, torch.device("cpu")).batch(rows)
    resident = feature_source(data.features, torch.device("cpu"), "device", key=data.feature_key).batch(rows)
    assert host.dtype == resident.dtype == torch.float32
    assert torch.equal(host, resident)
    np.testing.assert_array_equal(host.numpy(), data.features[[5, 1, 40]].astype(np.float32))


def test_resident_features_are_loaded_once_per_store_key(tmp_path, monkeypatch):
    data = on_memmap(make_data(), tmp_path)
    loads = []
    real_load = placement.load_resident
    monkeypatch.setattr(placement, "load_resident", lambda *a: loads.append(1) or real_load(*a))
    cpu = torch.device("cpu")
    first = feature_source(data.features, cpu, "device", key="key-a")
    again = feature_source(data.features, cpu, "auto", key="key-a")
    assert isinstance(first, ResidentFeatures) and again.table is first.table and len(loads) == 1
    other = feature_source(data.features, cpu, "device", key="key-b")
    assert other.table is not first.table and len(loads) == 2
    assert list(placement._RESIDENT) == [("key-b", "cpu")]  # the previous feature set was let go
    assert isinstance(feature_source(data.features, cpu, "host", key="key-b"), HostFeatures)


def test_auto_falls_back_to_host_with_one_line_and_device_forces_residency(tmp_path, monkeypatch):
    data = on_memmap(make_data(), tmp_path)
    monkeypatch.setattr(placement, "free_bytes", lambda device: 1024)  # nothing fits
    lines = []
    cpu = torch.device("cpu")
    for _ in range(2):
        assert isinstance(feature_source(data.features, cpu, "auto", key="k", log=lines.append), HostFeatures)
    assert len(lines) == 1 and "do not fit on cpu" in lines[0] and "feature_placement=device" in lines[0]
    assert isinstance(feature_source(data.features, cpu, "device", key="k", log=lines.append), ResidentFeatures)


def test_bf16_autocast_runs_every_backbone_close_to_fp32():
    """bf16 changes the rounding of the forward, so curves differ from fp32, but stay close: the
    stated tolerance is 2 % on every epoch's loss_total over 3 epochs of the toy data."""
    data = make_data()
    for backbone in ("cnn", "lstm", "transformer"):
        fp32 = train.run_trial(tiny(backbone=backbone), data)
        bf16 = train.run_trial(tiny(backbone=backbone, precision="bf16"), data)
        a = [row["loss_total"] for row in fp32.curves]
        b = [row["loss_total"] for row in bf16.curves]
        assert a != b, f"{backbone}: bf16 gave fp32's exact curve; autocast did not run"
        assert b == pytest.approx(a, rel=0.02), backbone
        assert all(math.isfinite(v) for v in bf16.metrics.values() if v == v)


def test_autocast_is_bf16_only_when_asked():
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    with train.autocast("bf16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    with train.autocast("fp32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32


def count_host_reads(monkeypatch) -> list[str]:
    """Record every read of a tensor's values made directly by our code (hcld/), by method name."""
    package = str(Path(hcld.__file__).parent)
    reads: list[str] = []
    for method in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__"):
        real = getattr(torch.Tensor, method)

        def spy(self, *args, _real=real, _name=method, **kwargs):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, spy)
    return reads


def test_losses_are_read_back_once_per_epoch_not_once_per_step(monkeypatch):
    # wo_supcon: SupCon's replicate-and-downsample reads its batch labels (hcld.losses.sampling)
    data = make_data(n=96)  # 76 training rows
    reads = count_host_reads(monkeypatch)
    train.run_trial(tiny(variant="wo_supcon", epochs=2, batch_size=38), data)  # 2 steps an epoch
    few_steps = list(reads)
    reads.clear()
    train.run_trial(tiny(variant="wo_supcon", epochs=2, batch_size=4), data)  # 19 steps an epoch
    assert few_steps and reads == few_steps


def test_non_finite_loss_names_the_first_bad_epoch_batch_and_term(monkeypatch):
    data = make_data(n=96)  # 76 training rows, batch 16: 5 batches an epoch
    real_terms = train.loss_terms
    calls = []

    def nan_at_epoch_2_batch_3(*args):
        terms = real_terms(*args)
        calls.append(1)
        if len(calls) >= 8:  # 5 batches of epoch 1, then batch 3 of epoch 2 (and later ones)
            terms["loss_icld"] = terms["loss_icld"] * math.nan
        return terms

    monkeypatch.setattr(train, "loss_terms", nan_at_epoch_2_batch_3)
    with pytest.raises(TrialFailed, match=r"toy data: non-finite loss \(loss_icld=nan\) at epoch 2, batch 3$"):
        train.run_trial(tiny(epochs=4), data)
    assert len(calls) == 10  # the trial stops at the end of the epoch that went bad


def test_epoch_losses_are_per_sample_means_and_name_an_overflowed_sum():
    names = ("loss_total", "loss_emo_ce")
    log = np.array([[2.0, 1.0], [4.0, 3.0]], dtype=np.float32)
    means = train.epoch_losses(log, [3, 1], names, where=("t", 1))
    assert means["loss_total"] == pytest.approx((2 * 3 + 4) / 4) and means["loss_emo_ce"] == pytest.approx(1.5)
    assert math.isnan(means["loss_orth"])
    log[1, 0] = np.inf
    with pytest.raises(TrialFailed, match=r"t: non-finite loss \(loss_total=inf\) at epoch 1, batch 2"):
        train.epoch_losses(log, [3, 1], names, where=("t", 1))
