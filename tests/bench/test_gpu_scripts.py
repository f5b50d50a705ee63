"""The GPU check scripts a session with a GPU runs (bench/gpu_check.sh): they must parse,
and on a machine without a usable cuda device each says so and measures nothing."""
import os
import py_compile
import subprocess
import sys

import pytest

import metajit as jt

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
CUDA_USABLE = any(d.name == "cuda" and d.available for d in jt.devices())


@pytest.fixture(params=["reference"], autouse=True)
def device(request):
    """Scripts run in their own processes: once is enough."""
    yield request.param


@pytest.mark.parametrize("script", ["gpu_check.sh", "fetch_gpu_wheels.sh"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", os.path.join(BENCH, script)], check=True, timeout=30)


@pytest.mark.parametrize("script", ["gpu_chain.py", "gpu_profile.py", "gpu_smoke.py", "gpu_timing.py",
                                    "gpu_vs_torch.py"])
def test_python_scripts_compile(script, tmp_path):
    py_compile.compile(os.path.join(BENCH, script), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.skipif(CUDA_USABLE, reason="a cuda device is usable here: the scripts would measure")
@pytest.mark.parametrize("script, code", [("gpu_chain.py", 0), ("gpu_profile.py", 0), ("gpu_vs_torch.py", 0),
                                          ("gpu_smoke.py", 2)])
def test_without_a_gpu_each_script_says_why_it_does_nothing(script, code):
    result = subprocess.run([sys.executable, os.path.join(BENCH, script)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == code, result.stderr[-2000:]
    assert "nothing" in result.stdout and "cuda" in result.stdout
