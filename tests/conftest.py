"""Shared fixtures: one small synthetic corpus per test session, read by the real IEMOCAP reader.

Before any test module imports a Triton kernel, the suite picks the interpreter when there is no
GPU (triton reads TRITON_INTERPRET when a kernel is decorated): `python -m pytest -q` passes on a
CPU machine with no variables set. An explicit TRITON_INTERPRET wins.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network in tests
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a 120-utterance synthetic corpus in the IEMOCAP release layout (seed 0)."""
    from hcld.data.synth import write_synthetic_corpus

    return write_synthetic_corpus(tmp_path_factory.mktemp("synth") / "corpus", utterances=120, seed=0)


@pytest.fixture(scope="session")
def synth_manifest(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manifest.parquet of `synth_corpus`, written by prepare_iemocap."""
    from hcld.data.corpora.iemocap import prepare_iemocap

    return prepare_iemocap(synth_corpus, tmp_path_factory.mktemp("data")).manifest_path
