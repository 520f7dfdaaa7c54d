"""Every benchmark, outside the library packages (as Liger-Kernel keeps them), so that editing one
changes no trial id (those hash the files of hcld/, kernels included). Each module holds its measurement
and its click command; `hcld-grid bench NAME` runs them (grid/cli/bench.py registers COMMANDS):

    kernels        benchmarks/kernels.py        torch vs torch-compile vs triton, forward+backward
    memory         benchmarks/memory.py         peak memory, triton vs torch, planned for a GPU
    steps          benchmarks/steps.py          one training step by stage, seconds per epoch, grid time
    scheduler      benchmarks/scheduler.py      grid scheduling overhead per trial
    compile        benchmarks/compile_check.py  the kernels compiled for sm_90: registers, spills
    gpu-check      benchmarks/gpu_check.py      the compiled kernels against fp64 on a GPU

benchmarks/common.py holds what they share; benchmarks/device_checks.sh is the prepared GPU run.
A benchmark module imports only click and light modules at the top (torch, triton, ray and polars
when it runs), so `hcld-grid bench --help` stays fast and `hcld-grid bench` runs without polars/ray.
"""

# command name -> "module:attribute" of its click command
COMMANDS = {
    "kernels": "benchmarks.kernels:kernels_command",
    "memory": "benchmarks.memory:memory",
    "steps": "benchmarks.steps:steps",
    "scheduler": "benchmarks.scheduler:scheduler",
    "compile": "benchmarks.compile_check:compile_check",
    "gpu-check": "benchmarks.gpu_check:gpu_check",
}
