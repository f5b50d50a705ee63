#!/usr/bin/env bash
# Fetches, on this machine, the wheels bench/gpu_check.sh installs on the device machine
# (Python 3.12, no network there): metajit's own dependencies that its image lacks. They go
# to .whl/ (git-ignored); pass carry=[".whl"] to the device tool's run.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl/" >> .git/info/exclude; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    "pluggy>=1.3" "scipy-openblas32>=0.3.27" "onednn-cpu-gomp>=2023.2"
ls -la .whl
