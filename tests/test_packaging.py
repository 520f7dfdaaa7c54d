"""Our top-level `kernels` package shares its name with an optional package that transformers
probes for (Hugging Face's kernel hub): loading RoBERTa must still work with ours installed."""

import subprocess
import sys
from pathlib import Path

import kernels

REPO = Path(__file__).resolve().parents[1]


def test_transformers_roberta_imports_beside_our_kernels_package():
    code = ("import kernels, transformers; from transformers import RobertaModel, RobertaTokenizer; "
            "print(kernels.__file__); print(RobertaModel.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""}, cwd=REPO)
    assert out.returncode == 0, out.stderr
    ours, model = out.stdout.split()
    assert Path(ours).resolve() == Path(kernels.__file__).resolve()
    assert model == "RobertaModel"


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("hcld-grid")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("data", "features", "run", "report", "bench"):
        assert command in out.stdout
