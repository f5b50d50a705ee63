"""Matrix products on OpenBLAS (the ``scipy-openblas32`` wheel), run on the kernels' own
OpenMP threads.

OpenBLAS's own thread pool spins after each call and fights the libgomp pool the fused
kernels use (on a 2-core machine a GEMM right after a fused kernel, or the other way
round, took up to twice as long). So this copy of OpenBLAS (not numpy's: a separate
library with its own settings) is set to one thread, and a small compiled driver
(`parallel_gemm.cpp`, built and cached like a generated kernel) splits each product
into blocks of C and calls the single-threaded ``sgemm``/``dgemm`` on them from the
kernels' OpenMP threads.

`available()` is False when the wheel is missing (e.g. a ``--no-deps`` install) or
``METAJIT_BLAS=numpy``; callers then use numpy's matmul.
"""
import ctypes
import math
import os

import numpy as np

from metajit.flags import flags

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
SMALL_PRODUCT = 1 << 15    # multiply-adds per batch item below which numpy's loop is used
PART_PRODUCT = 1 << 17     # multiply-adds worth giving one more thread
_DRIVER_PATH = os.path.join(os.path.dirname(__file__), "parallel_gemm.cpp")
_UNLOADED = object()
_state = {"library": _UNLOADED, "driver": None}


def _load_openblas():
    if os.environ.get("METAJIT_BLAS", "openblas") == "numpy":
        return None
    try:
        import scipy_openblas32
    except ImportError:
        return None
    try:
        library = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                           scipy_openblas32.get_library(fullname=True)))
        library.scipy_openblas_set_num_threads(ctypes.c_int(1))
    except (OSError, AttributeError, IndexError):
        return None
    return library


def library():
    """The loaded OpenBLAS (ctypes handle), or None."""
    if _state["library"] is _UNLOADED:
        _state["library"] = _load_openblas()
    return _state["library"]


def available():
    """Whether products run on OpenBLAS through the parallel driver."""
    return library() is not None


def _routine_addresses():
    lib = library()
    return {np.dtype(np.float32): ctypes.cast(lib.scipy_cblas_sgemm, ctypes.c_void_p).value,
            np.dtype(np.float64): ctypes.cast(lib.scipy_cblas_dgemm, ctypes.c_void_p).value}


def _driver():
    """(compiled parallel driver, gemm routine address by dtype), built on first use."""
    if _state["driver"] is None:
        from metajit.backends import cpu
        kernel_compiler = cpu.compiler()
        with open(_DRIVER_PATH) as source:
            template = source.read()
        key = kernel_compiler.toolchain.cache_key(template)
        (function,) = kernel_compiler.load_functions(
            [(key, template.replace(cpu.NAME_PLACEHOLDER, kernel_compiler.symbol(key)))])
        _state["driver"] = (function, _routine_addresses())
    return _state["driver"]


def _layout(matrix):
    """(CBLAS transpose flag, leading dimension) under which BLAS reads the 2-d view
    ``matrix`` in place, or None when its strides need a copy."""
    rows, cols = matrix.shape
    itemsize = matrix.itemsize
    row_stride, col_stride = (s // itemsize if s % itemsize == 0 else -1 for s in matrix.strides)
    if (col_stride == 1 or cols == 1) and (rows == 1 or row_stride >= max(cols, 1)):
        return _NO_TRANS, row_stride if rows > 1 else max(cols, 1)
    if (row_stride == 1 or rows == 1) and (cols == 1 or col_stride >= max(rows, 1)):
        return _TRANS, col_stride if cols > 1 else max(rows, 1)
    return None


def _operand(matrix):
    layout = _layout(matrix)
    if layout is None:
        matrix = np.ascontiguousarray(matrix)
        layout = _layout(matrix)
    return matrix, layout


def gemm(a, b, out):
    """``out[...] = a @ b`` for 2-d float32 or float64 views of one dtype; ``out`` needs a
    unit column or row stride (in the second case ``b.T @ a.T`` is written into ``out.T``)."""
    (m, k), n = a.shape, b.shape[1]
    if m == 0 or n == 0:
        return
    itemsize = out.itemsize
    if out.strides[1] != itemsize and n > 1:
        if out.strides[0] != itemsize and m > 1:
            out[...] = a @ b
            return
        gemm(b.T, a.T, out.T)
        return
    if k == 0:
        out[...] = 0
        return
    function, routines = _driver()
    a, (trans_a, lda) = _operand(a)
    b, (trans_b, ldb) = _operand(b)
    ldc = out.strides[0] // itemsize if m > 1 else n
    parts = max(1, m * n * k // PART_PRODUCT)
    parameters = (ctypes.c_int64 * 11)(routines[out.dtype], trans_a, trans_b, m, n, k, lda, ldb, ldc,
                                       out.dtype == np.float64, parts)
    addresses = (ctypes.c_void_p * 2)(a.ctypes.data, b.ctypes.data)
    function(addresses, (ctypes.c_void_p * 1)(out.ctypes.data), parameters, flags.num_threads)


def reshaped_view(array, shape):
    """``array`` reshaped to ``shape`` without copying, or None when its strides forbid it."""
    view = array.view()
    try:
        view.shape = shape
    except AttributeError:
        return None
    return view


def batched_gemm(a, b, out):
    """``out[...] = a @ b`` with numpy matmul broadcasting over batch dims; ``out`` is a
    (possibly strided) view with the broadcast batch shape."""
    batch = out.shape[:-2]
    if batch and all(size == 1 for size in b.shape[:-2]):
        folded_a = reshaped_view(a, (-1, a.shape[-1])) if a.shape[:-2] == batch else None
        folded_out = reshaped_view(out, (-1, out.shape[-1]))
        if folded_a is not None and folded_out is not None:
            gemm(folded_a, b.reshape(b.shape[-2:]), folded_out)
            return
    m, k = a.shape[-2:]
    if m * k * b.shape[-1] < SMALL_PRODUCT and math.prod(batch) > 1:
        # many tiny products (row-wise dots): one numpy call beats a library call per item
        out[...] = np.matmul(a, b)
        return
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    for index in np.ndindex(*batch):
        gemm(a[index], b[index], out[index])
