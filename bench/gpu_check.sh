#!/usr/bin/env bash
# Checks that need an NVIDIA GPU, run on a lent device machine from the repository root
# (it has torch with CUDA, cuda-bindings, cupy and pytest-xdist, and no network):
#     bash bench/gpu_check.sh [seconds] [phases]
# seconds: the whole script's budget (default 540); phases: comma-separated, from
#     smoke,tests,conformance,demo,chain,profile,backbones   (default: all, in that order)
# On the device tool (15 minutes a session, a start included), all phases fit one call:
#     run(command="bash bench/gpu_check.sh 540 2>&1 | tee $OUT/check.log", carry=[".whl"], timeout_s=570)
# Wheels the machine lacks travel in .whl/ (git-ignored; carry it): run
# bench/fetch_gpu_wheels.sh here first (pluggy, scipy-openblas32, onednn-cpu-gomp for 3.12).
# Everything here also renders and compiles on a machine without a GPU (those tests run in
# the default suite there, the GPU parts skipped); this script is where the GPU parts run.
# CONFORMANCE_K (optional): the conformance phase's -k (comma-separated names or globs), to
# finish a selection an earlier run left undone.
# Logs go to $OUT (the folder the device tool brings back), else /tmp/gpu_check; each phase
# prints its summary. The last phases get whatever time is left of the budget.
set -uo pipefail
BUDGET=${1:-540}
PHASES=,${2:-smoke,tests,conformance,demo,chain,profile,backbones},
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$SECONDS
phase() { echo; echo "== [$((SECONDS - started)) s] $*"; }
wanted() { [[ $PHASES == *,$1,* ]]; }
left() { local rest=$((BUDGET - (SECONDS - started) - 10)); echo $((rest < ${1:-5} ? ${1:-5} : rest)); }
cap() { local rest; rest=$(left 5); echo $(($1 < rest ? $1 : rest)); }

phase "install into the python that has CUDA torch (no network: no build isolation)"
if ls .whl/*.whl > /dev/null 2>&1; then
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        > "$OUT/install.log" 2>&1 || { tail -30 "$OUT/install.log"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
python -m pip install --no-deps --no-build-isolation -q -e . >> "$OUT/install.log" 2>&1 || { tail -30 "$OUT/install.log"; exit 1; }
python -c "import metajit, pluggy; print('metajit from', metajit.__file__)" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if wanted smoke; then
    phase "smoke: each feature once on cuda against numpy/torch"
    timeout 120 python bench/gpu_smoke.py 2>&1 | tee "$OUT/smoke.log" | cut -c1-400
fi

if wanted tests; then
    LIMIT=$(cap 150)
    phase "in parallel for up to $LIMIT s: the cuda backend's tests, the core tests on cuda (12 workers)"
    PYTEST="python -m pytest -p no:cacheprovider --timeout 100 --timeout-method=thread"
    (timeout "$LIMIT" $PYTEST -q -rfs tests/backends/cuda -m "not slow" > "$OUT/cuda_tests.log" 2>&1
     echo "exit $?" >> "$OUT/cuda_tests.log") &
    (METAJIT_TEST_DEVICES=cuda timeout "$LIMIT" $PYTEST -v -rf -n 12 tests/core -k "not thread" \
        > "$OUT/core_tests.log" 2>&1; echo "exit $?" >> "$OUT/core_tests.log") &
    wait
    echo "-- cuda backend tests"; grep -E "FAILED|ERROR|Timeout" "$OUT/cuda_tests.log" | cut -c1-300 | head -20
    tail -2 "$OUT/cuda_tests.log"
    echo "-- core tests on cuda"; grep -E "FAILED|ERROR|Timeout" "$OUT/core_tests.log" | cut -c1-300 | head -40
    grep -E "passed|failed" "$OUT/core_tests.log" | tail -2; tail -1 "$OUT/core_tests.log"
fi

if wanted conformance; then
    # NVRTC compiles each example's kernels (~0.2 s apiece): the tier runs as 15 processes
    LIMIT=$(cap 210)
    phase "conformance, standard tier, on cuda (--jobs 15, up to $LIMIT s)"
    timeout "$LIMIT" python -m metajit.conformance run --backend cuda --tier standard --seed 12 --jobs 15 -v \
        ${CONFORMANCE_K:+-k "$CONFORMANCE_K"} > "$OUT/conformance.log" 2>&1
    echo "exit $?" >> "$OUT/conformance.log"
    grep -c "^PASSED" "$OUT/conformance.log" | sed 's/^/properties passed so far: /'
    grep -E "^FAILED|^backend |^exit|conformance:" "$OUT/conformance.log" | head -40
fi

if wanted demo; then
    phase "the digits demo on cuda (1 epoch)"
    METAJIT_DEVICE=cuda timeout "$(cap 90)" python -m metajit.examples.train_digits --epochs 1 2>&1 | tail -3
fi

if wanted chain; then
    phase "fused chain against the bandwidth bound and torch"
    timeout "$(cap 60)" python bench/gpu_chain.py 2>&1 | tail -12
fi

if wanted profile; then
    phase "where the time goes: busy vs wall, slowest kernels, host profile of training steps"
    # first to meet these convolutions: the log shows every algorithm cuDNN timed for them
    METAJIT_CUDNN_SEARCH_LOG=1 timeout "$(cap 150)" python bench/gpu_profile.py 2>&1 | tee "$OUT/profile.log" \
        | grep -v "^cuDNN search" | cut -c1-200
fi

if wanted backbones; then
    phase "backbones, training steps and torch.compile against torch on the GPU (issue 13)"
    timeout "$(left 20)" python bench/gpu_vs_torch.py --batches 1,64 --runs 30 --compile resnet18 2>&1 \
        | tee "$OUT/backbones.log"
fi

phase done
