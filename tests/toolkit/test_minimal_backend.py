"""A backend made of the toolkit alone (`metajit.sdk.templates.serial_backend`, ~150 lines) passes the
conformance suite's standard tier: a new backend needs nothing from ``backends/cpu``."""
import os
import subprocess
import sys
import textwrap

import pytest

from metajit.conformance import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def minimal():
    import metajit as jt
    from metajit.sdk.templates import serial_backend as minimal_backend
    jt.plugins.register_backend(minimal_backend, "minimal")
    yield "minimal"
    jt.plugins.unregister_backend("minimal")


def test_minimal_backend_passes_the_smoke_tier(minimal):
    results, _ = runner.run(minimal, "smoke", None, 20261202, None, [], None)
    failed = [f"{r.name}: {r.message}\n{r.snippet}" for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)
    assert not [r.name for r in results if r.status == "unsupported"]


@pytest.mark.slow  # ~9 minutes from an empty kernel cache on two cores (-O1 compiles of ~1000 kernels)
def test_minimal_backend_passes_the_standard_tier(minimal):
    results, _ = runner.run(minimal, "standard", None, 20261202, None, [], None)
    failed = [f"{r.name}: {r.message}\n{r.snippet}" for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)
    assert sum(r.status == "passed" for r in results) >= 400
    assert not [r.name for r in results if r.status == "unsupported"]


def test_cli_runs_a_plugin_that_is_not_installed(tmp_path):
    environment = {**os.environ, "PYTHONPATH": ROOT, "METAJIT_CACHE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "metajit.conformance", "run", "--backend", "minimal",
               "--plugin", "metajit.sdk.templates.serial_backend", "--tier", "smoke", "-k", "elementwise.add*"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend minimal, tier smoke" in result.stdout and " 0 failed" in result.stdout


def test_buffers_alive_at_exit_are_not_freed_into_a_torn_down_backend(tmp_path):
    script = textwrap.dedent("""
        import numpy as np
        import metajit as jt
        from metajit.sdk.templates import serial_backend as minimal_backend
        jt.plugins.register_backend(minimal_backend, "minimal")
        jt.set_device("minimal")
        kept = [(jt.array(np.ones(1000, np.float32)) * i).sum() for i in range(5)]
        print(sum(k.item() for k in kept))
    """)
    environment = {**os.environ, "PYTHONPATH": ROOT, "METAJIT_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=environment, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10000.0" and result.stderr == ""
