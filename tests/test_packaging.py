"""How the packages depend on each other and on the outside.

The dependency rule: the trial path (hcld.train.run_trial, hcld.pipeline's Experiment.trial_data,
hcld.data.audio, hcld.fileio, the store's row and file code in grid.trials / grid.result_store / grid.execute's
local executor) imports neither ray nor polars, because the GPU machines carry torch and triton
but not those; they are imported where used (the reader, the folds, the report, the Ray executor).
Modules follow this rule without restating it; the test below enforces it.

Our top-level `kernels` package shares its name with an optional package that transformers
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


def test_the_trial_path_runs_without_ray_or_polars():
    code = (
        "import sys\n"
        "class Absent:  # behave as if ray and polars were not installed (the GPU machine)\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('ray', 'polars'): raise ImportError(name + ' is not installed')\n"
        "sys.meta_path.insert(0, Absent())\n"
        f"sys.path.insert(0, {str(REPO / 'tests' / 'hcld')!r})\n"
        "from test_train import make_data, tiny\n"
        "from hcld.train import run_trial\n"
        "import hcld.pipeline, hcld.data.audio, hcld.fileio, grid.trials, grid.result_store, grid.execute\n"
        "r = run_trial(tiny(epochs=1), make_data(n=32))\n"
        "assert not {'ray', 'polars'} & set(sys.modules)\n"
        "print('ok', r.metrics['emo_wa'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok ")


def test_benchmarks_live_only_in_the_benchmarks_package():
    """Benchmarks and tools stay out of the hashed packages (editing one re-runs no trial) and out
    of grid/ but for the `hcld-grid bench` registration."""
    stray = [p.relative_to(REPO).as_posix() for package in ("hcld", "kernels", "grid")
             for p in (REPO / package).rglob("*bench*")]
    assert stray == ["grid/cli/bench.py"]
