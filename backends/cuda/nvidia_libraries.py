"""NVIDIA's shared libraries (cuBLAS, cuDNN, NCCL) from their ``nvidia-*`` wheels or a
CUDA installation, found by NVIDIA's ``cuda-pathfinder`` and opened with ctypes.

``METAJIT_<NAME>_LIBRARY`` (e.g. ``METAJIT_CUBLAS_LIBRARY``) names a file to use instead.
A missing library raises `MetajitDeviceError` naming the package that provides it.
Example::

    cublas = load("cublas")            # ctypes.CDLL
    missing_reason("cudnn")            # None, or why it cannot be loaded
"""
import ctypes
import functools
import os

from metajit.errors import MetajitDeviceError

PACKAGES = {"cublas": "nvidia-cublas", "cudnn": "nvidia-cudnn-cu13 (or -cu12)", "nccl": "nvidia-nccl-cu13 (or -cu12)"}


@functools.lru_cache(maxsize=None)
def _loaded(name):
    configured = os.environ.get(f"METAJIT_{name.upper()}_LIBRARY")
    if configured:
        return ctypes.CDLL(configured)
    from cuda import pathfinder
    return ctypes.CDLL(pathfinder.load_nvidia_dynamic_lib(name).abs_path)


def load(name):
    """The ctypes handle of NVIDIA library ``name`` (``"cublas"``, ``"cudnn"``, ``"nccl"``)."""
    try:
        return _loaded(name)
    except Exception as error:  # ImportError (no pathfinder), its not-found errors, OSError
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MetajitDeviceError(f"the {name} library is not available ({detail}): "
                                 f"pip install 'metajit[cuda]' (it brings {PACKAGES.get(name, name)})") from None


def missing_reason(name):
    """None when library ``name`` loads, else the one-line reason."""
    try:
        load(name)
    except MetajitDeviceError as error:
        return str(error)
    return None


def function(library, symbol, result, *arguments):
    """``library.symbol`` with its ctypes result and argument types set."""
    entry = getattr(library, symbol)
    entry.restype, entry.argtypes = result, list(arguments)
    return entry
