"""MPI tests launch real ``mpirun`` jobs (2 ranks): run them once, where MPI is installed."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import backend_only

device = backend_only("cpu")
SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def _missing():
    if shutil.which("mpirun") is None:
        return "mpirun not found: install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py not installed: pip install 'metajit[mpi]'"
    return None


MISSING = _missing()


def mpirun(script, *arguments, ranks=2, timeout=240, environment=None):
    """Run ``scripts/<script>`` under ``mpirun -np ranks``; returns the CompletedProcess."""
    if MISSING:
        pytest.skip(MISSING)
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks),
               "-x", "METAJIT_MPI_TIMEOUT", "-x", "OMP_NUM_THREADS", "-x", "PYTHONPATH",
               sys.executable, os.path.join(SCRIPTS, script)] + [str(a) for a in arguments]
    env = dict(os.environ, OMP_NUM_THREADS="1", METAJIT_MPI_TIMEOUT="60",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(SCRIPTS))] + sys.path))
    env.update(environment or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
