#!/usr/bin/env bash
# Checks that need an NVIDIA GPU, run on a lent device machine from the repository root
# (it has torch with CUDA, cuda-bindings and cupy, and no network); aim: under 8 minutes.
#     bash bench/gpu_check.sh
# Everything here also renders and compiles on a machine without a GPU (those tests run in
# the default suite there, the GPU parts skipped); this script is where the GPU parts run.
set -uo pipefail
pip install --no-deps -q -e . 2>&1 | tail -2
python - <<'PY'
import metajit as jt
print([str(d) for d in jt.devices()])
from metajit.backends.cuda import runtime
print("GPU", runtime.device().architecture, runtime.device().multiprocessors, "SMs")
PY
echo "== jt.code CUDA operators and the cuda backend's own tests"
python -m pytest -q -rs -x tests/backends/cuda -p no:cacheprovider -m "not slow"
echo "== NCCL under mpirun: two ranks only with two GPUs (NCCL refuses two ranks of one communicator on one"
echo "   GPU: skipped with that reason); the one-rank communicator ran above (tests/backends/cuda/test_nccl.py)"
timeout 300 python -m pytest -q -rs tests/distributed/test_mpi.py -k nccl -p no:cacheprovider
echo "== conformance, standard tier, on cuda"
timeout 300 conformance run --backend cuda --tier standard --seed 12
echo "== core tests on cuda (every core test runs per device)"
METAJIT_TEST_DEVICES=cuda timeout 240 python -m pytest -q -x tests/core -p no:cacheprovider -k "not thread" 2>&1 | tail -5
echo "== the digits demo on cuda (2 epochs)"
METAJIT_DEVICE=cuda timeout 120 python -m metajit.examples.train_digits --epochs 2
echo "== fused chain against the bandwidth bound and torch"
timeout 60 python bench/gpu_chain.py
echo "== backbones, training steps and torch.compile against torch on the GPU (issue 13)"
timeout 300 python bench/gpu_vs_torch.py --batches 1,64 --runs 100 --compile resnet18
