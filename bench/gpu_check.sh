#!/usr/bin/env bash
# Checks that need an NVIDIA GPU, run on a lent device machine from the repository root
# (it has torch with CUDA, cuda-bindings, cupy and pytest-xdist, and no network):
#     bash bench/gpu_check.sh [seconds]        (default 420: the whole script's budget)
# Everything here also renders and compiles on a machine without a GPU (those tests run in
# the default suite there, the GPU parts skipped); this script is where the GPU parts run.
# Logs go to $OUT (the folder the device tool brings back), else /tmp/gpu_check; each phase
# prints its summary. Phases run in order of what they tell, and the last ones get whatever
# time is left of the budget.
set -uo pipefail
BUDGET=${1:-420}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$SECONDS
phase() { echo; echo "== [$((SECONDS - started)) s] $*"; }
left() { local rest=$((BUDGET - (SECONDS - started) - 10)); echo $((rest < ${1:-5} ? ${1:-5} : rest)); }

phase "install (no network: no build isolation)"
pip install --no-deps --no-build-isolation -q -e . > "$OUT/install.log" 2>&1 || { tail -30 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

phase "smoke: each feature once on cuda against numpy/torch"
timeout 120 python bench/gpu_smoke.py 2>&1 | tee "$OUT/smoke.log" | cut -c1-400

phase "in parallel: the cuda backend's tests, the core tests on cuda, conformance standard on cuda"
PYTEST="python -m pytest -q -p no:cacheprovider --timeout 120 --timeout-method=thread"
(timeout 200 $PYTEST -rfs tests/backends/cuda -m "not slow" > "$OUT/cuda_tests.log" 2>&1; echo "exit $?" >> "$OUT/cuda_tests.log") &
(METAJIT_TEST_DEVICES=cuda timeout 200 $PYTEST -rf -n 10 tests/core -k "not thread" > "$OUT/core_tests.log" 2>&1
 echo "exit $?" >> "$OUT/core_tests.log") &
(timeout 200 conformance run --backend cuda --tier standard --seed 12 -v > "$OUT/conformance.log" 2>&1
 echo "exit $?" >> "$OUT/conformance.log") &
wait
for log in cuda_tests core_tests conformance; do
    echo "-- $log"; grep -E "FAILED|ERROR|FAIL |Timeout" "$OUT/$log.log" | cut -c1-300 | head -40; tail -4 "$OUT/$log.log"
done

phase "the digits demo on cuda (1 epoch)"
METAJIT_DEVICE=cuda timeout 90 python -m metajit.examples.train_digits --epochs 1 2>&1 | tail -6

phase "fused chain against the bandwidth bound and torch"
timeout 60 python bench/gpu_chain.py 2>&1 | tail -8

phase "backbones, training steps and torch.compile against torch on the GPU (issue 13)"
timeout "$(left 30)" python bench/gpu_vs_torch.py --batches 1,64 --runs 30 --compile resnet18 2>&1 | tee "$OUT/backbones.log"
phase done
