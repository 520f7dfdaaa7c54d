#!/usr/bin/env bash
# The first hardware run, prepared: every check that needs a GPU in one call of at most 8 minutes
# (most steps end well before their limits), for a session lent a GPU (15 device-minutes, machine
# start included). STEPS="kernels-tuned" (any subset, in this order) reruns only what is missing.
#
#   bash benchmarks/device_checks.sh            # on the device machine, from the repository root
#
# Writes under $OUT (the device tool's return folder) or results/bench/device/: device.txt (GPU,
# driver, versions), one log per step, steps.txt (exit status and seconds of each step), and the
# CSVs: kernels.csv (triton vs torch, default tiles), steps.csv (training-step split) and
# kernels-tuned.csv (triton with tuned tiles, the picks recorded).
# Each step has its own time limit and is interrupted with SIGINT, so a cut-off step keeps the rows
# it finished and the next step still runs. Order: what no CPU can tell first (the compiled kernels
# against fp64), then speed and memory against torch, where a training step's time goes, and last
# what tuning the tiles gains.
# Needs torch, triton, numpy and click only (no ray, polars, install or download): `hcld-grid bench`
# imports no ray or polars (tests/benchmarks/test_bench_cli.py checks that).
# PYTHON picks the interpreter (default: `python` on PATH). The sizes can be overridden (e.g.
# DEVICE=cpu and tiny sizes for a plumbing check without a GPU).
set -u

out=${OUT:-results/bench/device}
device=${DEVICE:-cuda}
kernel_ns=${KERNEL_NS:-32,1024,4096,16384,65536}
kernel_ds=${KERNEL_DS:-768}
kernel_dtypes=${KERNEL_DTYPES:-fp32,bf16}
step_args=${STEP_ARGS:---rows 1024 --cuda-steps 10}
tuned_ns=${TUNED_NS:-4096,16384}
tuned_dtypes=${TUNED_DTYPES:-fp32}
python=${PYTHON:-python}
steps=" ${STEPS:-gpu-test kernels steps kernels-tuned} "  # a rerun can name only the steps it needs
mkdir -p "$out"
unset TRITON_INTERPRET  # the compiled kernels, not the interpreter
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# `hcld-grid bench` without installing the package: the CLI's module entry
# (an array, not a function: `timeout` runs commands, not shell functions)
bench=("$python" -m grid.cli bench)

want() { [[ $steps == *" $1 "* ]]; }

step() {  # step NAME SECONDS COMMAND...: run with a limit, log, record status and time
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    echo "== $name (limit ${limit} s)"
    timeout --signal=INT --kill-after=20 "$limit" "$@" > "$out/$name.log" 2>&1
    status=$?
    echo "$name exit=$status seconds=$((SECONDS - start))" | tee -a "$out/steps.txt"
    tail -n 25 "$out/$name.log"
}

{
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>&1 || true
    "$python" -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__,
"cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'
} > "$out/device.txt"
cat "$out/device.txt"
: > "$out/steps.txt"

# 1. compiled kernels vs an fp64 reference, default tiles (tuning would compile every candidate here)
want gpu-test && step gpu-test 180 env HCLD_AUTOTUNE=0 "${bench[@]}" gpu-check
# 2. triton vs torch: time, peak memory, values, default tiles (compiled already by step 1)
want kernels && step kernels 120 env HCLD_AUTOTUNE=0 "${bench[@]}" kernels --device "$device" \
    --loss icld,supcon,lcl --impl torch,triton --dtype "$kernel_dtypes" --n "$kernel_ns" --d "$kernel_ds" \
    --repeats 10 --warmup 2 --max-seconds 3 --out "$out/kernels.csv"
# 3. one training step split by stage, resident features, per backbone and precision; projects `full`
# shellcheck disable=SC2086 # step_args is a list of options
want steps && step steps 75 "${bench[@]}" steps --device "$device" --placement device $step_args \
    --out "$out/steps.csv"
# 4. what tuning gains over the defaults where it applies (N >= 1024): each cell's first, untimed
# call compiles and times every candidate, the picks are in the `tiles` column
want kernels-tuned && step kernels-tuned 120 "${bench[@]}" kernels --device "$device" --loss supcon,icld \
    --impl triton --dtype "$tuned_dtypes" --n "$tuned_ns" --d "$kernel_ds" --repeats 10 --warmup 2 \
    --max-seconds 3 --out "$out/kernels-tuned.csv"
echo "done: $out"
