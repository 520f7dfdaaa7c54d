"""How the packages depend on each other and on the outside.

The dependency rule: the trial path (hcld.train.run_trial, hcld.pipeline's Experiment.trial_data,
hcld.data.audio, hcld.fileio, the store's row and file code in grid.trials / grid.result_store / grid.execute's
local executor) imports neither ray nor polars, because the GPU machines carry torch and triton
but not those; they are imported where used (the reader, the folds, the report, the Ray executor).
Modules follow this rule without restating it; the test below enforces it.

Our kernels live in `hcld.kernels`, never at top level: `kernels` is Hugging Face's kernel-hub
distribution, a dependency of transformers >= 5.25, and a top-level package of ours by that name
shadowed it and broke `from transformers import RobertaModel`."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_transformers_roberta_imports_with_our_kernels_installed():
    """Run from the repository root, where a top-level folder would shadow an installed package."""
    code = ("import importlib.util, hcld.kernels, transformers; from transformers import RobertaModel; "
            "spec = importlib.util.find_spec('kernels'); print(spec.origin if spec else 'absent'); "
            "print(RobertaModel.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""}, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs, model = out.stdout.split()
    assert theirs == "absent" or "site-packages" in Path(theirs).parts  # installed, not a folder of ours
    assert model == "RobertaModel"


def test_only_our_three_packages_are_top_level():
    """A new top-level package could shadow an installed distribution the way `kernels` did."""
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py"))
    assert packages == ["benchmarks", "grid", "hcld"]


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
    stray = [p.relative_to(REPO).as_posix() for package in ("hcld", "grid")
             for p in (REPO / package).rglob("*bench*")]
    assert stray == ["grid/cli/bench.py"]
