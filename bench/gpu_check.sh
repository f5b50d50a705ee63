#!/usr/bin/env bash
# Checks that need an NVIDIA GPU, run on a lent device machine from the repository root
# (it has torch with CUDA, cuda-bindings and cupy, and no network):
#     bash bench/gpu_check.sh
# Everything here also compiles and renders on a machine without a GPU (the same tests
# run there with the GPU parts skipped); this script is where the GPU parts run.
set -uo pipefail
pip install --no-deps -q -e . 2>&1 | tail -2
python - <<'PY'
from cuda.bindings import driver
driver.cuInit(0)
result, device = driver.cuDeviceGet(0)
print("GPU:", driver.cuDeviceGetName(64, device)[1].decode(errors="replace").rstrip("\x00"))
PY
# jt.code CUDA operators: NVRTC compile for this GPU's architecture, host launch stubs, run
python -m pytest -q -rs tests/backends/cuda -p no:cacheprovider
