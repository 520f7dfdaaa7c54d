"""`--set precision=bf16` and `--set feature_placement=...` through a real grid, under both executors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grid.cli.run import run
from grid.execute import TRIAL_FN_ENV


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize(("executor", "placement"), [("local", "device"), ("ray", "device"), ("local", "host")])
def test_bf16_and_feature_placement_run_a_grid(tmp_path, data_dir, monkeypatch, executor, placement):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(TRIAL_FN_ENV, raising=False)
    results = tmp_path / "results"
    args = ["smoke", "--backbones", "cnn,lstm", "--variants", "hcld", "--executor", executor, "--no-dashboard",
            "--max-failures", "0", "--set", "precision=bf16", "--set", f"feature_placement={placement}",
            "--data-dir", str(data_dir), "--results-dir", str(results)]
    done = CliRunner().invoke(run, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    rows = pq.read_table(results / "smoke" / "trials.parquet").to_pylist()
    assert sorted(r["backbone"] for r in rows) == ["cnn", "lstm"]
    for row in rows:
        config = json.loads(row["config_json"])
        assert row["status"] == "done" and 0.0 <= row["emo_ua"] <= 1.0
        assert config["precision"] == "bf16" and config["feature_placement"] == placement
