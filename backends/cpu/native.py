"""The optional C launcher (`_launch.c`, built by setup.py): one call runs a sequence of
compiled kernels, BLAS calls and oneDNN primitives with the GIL released. It is None
when the extension is not built or ``METAJIT_PURE_PYTHON=1``; callers then go through
ctypes one call at a time."""
import os

try:
    if os.environ.get("METAJIT_PURE_PYTHON") == "1":
        raise ImportError("METAJIT_PURE_PYTHON=1")
    from . import _launch as launcher
except ImportError:
    launcher = None
