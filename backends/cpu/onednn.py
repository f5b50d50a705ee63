"""oneDNN (``libdnnl``, the GNU-OpenMP build from the ``onednn-cpu-gomp`` wheel) via ctypes.

oneDNN runs its GEMM and convolution kernels on the same libgomp thread pool as the
fused kernels, so a library call right after a fused kernel does not fight a second
spinning pool (numpy's OpenBLAS has its own; on a 2-core machine that costs ~2x per GEMM).

The library is looked up, in order: ``METAJIT_ONEDNN_LIBRARY`` (a path, or ``0`` to
disable), ``lib/`` under the interpreter's prefixes and the user base (where the wheel
puts it), then the dynamic loader's search path. `library()` returns None when it is not
found; callers then fall back to numpy.
"""
import ctypes
import ctypes.util
import os
import site
import sys

import numpy as np

_SONAMES = ("libdnnl.so.3", "libdnnl.so")
_UNLOADED = object()
_library = _UNLOADED
_threads = [None]


def _candidates():
    configured = os.environ.get("METAJIT_ONEDNN_LIBRARY")
    if configured:
        yield configured
        return
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, site.getuserbase()])
    for prefix in prefixes:
        for soname in _SONAMES:
            yield os.path.join(prefix, "lib", soname)
    found = ctypes.util.find_library("dnnl")
    if found:
        yield found


def _bind(handle):
    int64, pointer = ctypes.c_int64, ctypes.c_void_p
    handle.dnnl_sgemm.argtypes = [ctypes.c_char, ctypes.c_char, int64, int64, int64, ctypes.c_float,
                                  pointer, int64, pointer, int64, ctypes.c_float, pointer, int64]
    handle.dnnl_sgemm.restype = ctypes.c_int
    return handle


def library():
    """The loaded oneDNN library (ctypes handle with bound signatures), or None."""
    global _library
    if _library is _UNLOADED:
        _library = None
        if os.environ.get("METAJIT_ONEDNN_LIBRARY") != "0":
            for candidate in _candidates():
                if os.path.sep in candidate and not os.path.exists(candidate):
                    continue
                try:
                    _library = _bind(ctypes.CDLL(candidate))
                    break
                except (OSError, AttributeError):
                    continue
    return _library


def set_threads(count):
    """Give oneDNN's OpenMP regions ``count`` threads (cheap when unchanged)."""
    if _threads[0] != count:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(ctypes.c_int(count))
        _threads[0] = count


def _gemm_layout(matrix):
    """(transpose flag, leading dimension) under which BLAS reads the 2-d float32 view
    ``matrix`` in place, or None when its strides need a copy."""
    rows, cols = matrix.shape
    row_stride, col_stride = (s // 4 if s % 4 == 0 else -1 for s in matrix.strides)
    if (col_stride == 1 or cols == 1) and (rows == 1 or row_stride >= max(cols, 1)):
        return b"N", row_stride if rows > 1 else max(cols, 1)
    if (row_stride == 1 or rows == 1) and (cols == 1 or col_stride >= max(rows, 1)):
        return b"T", col_stride if cols > 1 else max(rows, 1)
    return None


def _operand(matrix):
    layout = _gemm_layout(matrix)
    if layout is None:
        matrix = np.ascontiguousarray(matrix)
        layout = _gemm_layout(matrix)
    return matrix, layout


def sgemm(a, b, out):
    """``out[...] = a @ b`` for 2-d float32 views; ``out`` needs a unit column or row stride
    (in the second case the transposed product ``b.T @ a.T`` is written instead)."""
    lib = library()
    (m, k), n = a.shape, b.shape[1]
    if m == 0 or n == 0:
        return
    if out.strides[1] != 4 and n > 1:
        if out.strides[0] != 4 and m > 1:
            out[...] = a @ b
            return
        sgemm(b.T, a.T, out.T)
        return
    if k == 0:
        out[...] = 0
        return
    a, (trans_a, lda) = _operand(a)
    b, (trans_b, ldb) = _operand(b)
    ldc = out.strides[0] // 4 if m > 1 else n
    status = lib.dnnl_sgemm(trans_a, trans_b, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
                            0.0, out.ctypes.data, ldc)
    if status != 0:
        raise RuntimeError(f"oneDNN sgemm failed with status {status} for {m}x{k} @ {k}x{n}")


def reshaped_view(array, shape):
    """``array`` reshaped to ``shape`` without copying, or None when its strides forbid it."""
    view = array.view()
    try:
        view.shape = shape
    except AttributeError:
        return None
    return view


def _foldable(a):
    """``a`` (batch.., m, k) as one (batch*m, k) view when its rows are evenly strided."""
    return reshaped_view(a, (-1, a.shape[-1]))


def batched_sgemm(a, b, out):
    """``out[...] = a @ b`` with numpy matmul broadcasting over batch dims, float32; ``out``
    is a (possibly strided) view with the broadcast batch shape."""
    batch = out.shape[:-2]
    if batch and all(size == 1 for size in b.shape[:-2]):
        folded_a = _foldable(a) if a.shape[:-2] == batch else None
        folded_out = _foldable(out)
        if folded_a is not None and folded_out is not None:
            sgemm(folded_a, b.reshape(b.shape[-2:]), folded_out)
            return
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    for index in np.ndindex(*batch):
        sgemm(a[index], b[index], out[index])
