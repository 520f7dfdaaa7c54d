"""Fixtures the grid tests share: one synthetic corpus + feature store per module, no network,
the real trial function unless a test swaps it (helpers for CLI subprocesses: cli_testing.py)."""

import pytest

from grid.execute import TRIAL_FN_ENV


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One synthetic corpus + fbank store for the module (prepare_experiment reuses it)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(TRIAL_FN_ENV, raising=False)
