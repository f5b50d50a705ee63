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
import struct

import numpy as np

from metajit.flags import flags
from metajit.toolkit.gemm import operand_layout

_NO_TRANS, _TRANS = 111, 112  # CBLAS transpose flags (the driver passes row-major, 101)
SMALL_PRODUCT = 1 << 15    # multiply-adds per batch item below which numpy's loop is used
PART_PRODUCT = 1 << 17     # multiply-adds worth giving one more thread
_DRIVER_PATH = os.path.join(os.path.dirname(__file__), "parallel_gemm.cpp")
_PACK_ADDRESSES = struct.Struct("3P")
_C_OFFSET = 2 * struct.calcsize("P")
_PACK_PARAMETERS = struct.Struct("=12q")  # see parallel_gemm.cpp for the order
_UNLOADED = object()
_state = {"library": _UNLOADED, "driver": None, "driver_address": None, "routines": None}


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


def routines():
    """Addresses of the CBLAS ``(gemm, gemv)`` routines by numpy dtype."""
    if _state["routines"] is None:
        lib = library()

        def address(name):
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        _state["routines"] = {np.dtype(np.float32): (address("scipy_cblas_sgemm"), address("scipy_cblas_sgemv")),
                              np.dtype(np.float64): (address("scipy_cblas_dgemm"), address("scipy_cblas_dgemv"))}
    return _state["routines"]


def _driver():
    """The compiled parallel driver (`parallel_gemm.cpp`), built on first use."""
    if _state["driver"] is None:
        from metajit.backends import cpu
        _state["driver"] = cpu.compiler().load_driver(_DRIVER_PATH)
    return _state["driver"]


def _driver_address():
    if _state["driver_address"] is None:
        _state["driver_address"] = ctypes.cast(_driver(), ctypes.c_void_p).value
    return _state["driver_address"]


def _layout(matrix):
    """(CBLAS transpose flag, leading dimension) under which BLAS reads the 2-d view
    ``matrix`` in place, or None when its strides need a copy."""
    itemsize = matrix.itemsize
    row_stride, col_stride = (s // itemsize if s % itemsize == 0 else -1 for s in matrix.strides)
    layout = operand_layout(*matrix.shape, row_stride, col_stride)
    return None if layout is None else (_TRANS if layout[0] else _NO_TRANS, layout[1])


def _driver_calls(a, b, out, roles=("a", "b")):
    """The driver calls computing ``out[...] = a @ b`` for 2-d views of one dtype, as
    ``(((role, address) of A, of B, of C), packed parameters)``; roles name the operand each
    address points into. None when numpy has to do it (strides BLAS cannot read, an
    empty reduction)."""
    (m, k), n = a.shape, b.shape[1]
    if m == 0 or n == 0:
        return []
    itemsize = out.itemsize
    if out.strides[1] != itemsize and n > 1:
        if out.strides[0] != itemsize and m > 1:
            return None
        return _driver_calls(b.T, a.T, out.T, roles[::-1])  # C^T = B^T A^T, written in place
    layout_a, layout_b = _layout(a), _layout(b)
    if k == 0 or layout_a is None or layout_b is None:
        return None
    ldc = out.strides[0] // itemsize if m > 1 else n
    gemm_routine, gemv_routine = routines()[out.dtype]
    parameters = _PACK_PARAMETERS.pack(gemm_routine, layout_a[0], layout_b[0], m, n, k, layout_a[1],
                                       layout_b[1], ldc, int(out.dtype == np.float64),
                                       max(1, m * n * k // PART_PRODUCT), gemv_routine)
    addresses = ((roles[0], a.ctypes.data), (roles[1], b.ctypes.data), ("out", out.ctypes.data))
    return [(addresses, parameters)]


def _batched_driver_calls(a, b, out):
    """`_driver_calls` for numpy-broadcast batches; None when numpy has to do it."""
    batch = out.shape[:-2]
    if batch and all(size == 1 for size in b.shape[:-2]):
        folded_a = reshaped_view(a, (-1, a.shape[-1])) if a.shape[:-2] == batch else None
        folded_out = reshaped_view(out, (-1, out.shape[-1]))
        if folded_a is not None and folded_out is not None:
            return _driver_calls(folded_a, b.reshape(b.shape[-2:]), folded_out)
    m, k = a.shape[-2:]
    if m * k * b.shape[-1] < SMALL_PRODUCT and math.prod(batch) > 1:
        return None  # many tiny products (row-wise dots): one numpy call beats a call per item
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    calls = []
    for index in np.ndindex(*batch):
        item = _driver_calls(a[index], b[index], out[index])
        if item is None:
            return None
        calls += item
    return calls


def _run(calls, base=None):
    """Run driver ``calls``; with ``base`` ({role: address}) their addresses are offsets."""
    function = _driver()
    for addresses, parameters in calls:
        packed = _PACK_ADDRESSES.pack(*(address + (base[role] if base else 0) for role, address in addresses))
        # inputs and outputs share one packed block: A and B first, then C
        function(packed, packed[_C_OFFSET:], parameters, flags.num_threads)


def gemm(a, b, out):
    """``out[...] = a @ b`` for 2-d float32 or float64 views of one dtype."""
    calls = _driver_calls(a, b, out)
    if calls is None:
        out[...] = a @ b
    else:
        _run(calls)


def reshaped_view(array, shape):
    """``array`` reshaped to ``shape`` without copying, or None when its strides forbid it."""
    view = array.view()
    try:
        view.shape = shape
    except AttributeError:
        return None
    return view


class ProductPlan:
    """How `batched_gemm` computed a product, with addresses relative to its operands'
    buffers: a product of the same layout on other buffers replays the driver calls
    without building views again."""

    def __init__(self, calls, base):
        self.calls = [(tuple((role, address - base[role]) for role, address in addresses), parameters)
                      for addresses, parameters in calls]

    def run(self, base):
        """The product on the buffers at ``base`` ({"a", "b", "out": address})."""
        _run(self.calls, base)

    def native_calls(self, base):
        """The driver calls for ``base`` as ``(driver address, (A, B), (C,), parameters)``
        launches, for the cpu backend's native launcher."""
        driver = _driver_address()
        launches = []
        for addresses, parameters in self.calls:
            a, b, c = (address + base[role] for role, address in addresses)
            launches.append((driver, (a, b), (c,), parameters))
        return launches


def batched_gemm(a, b, out, base=None):
    """``out[...] = a @ b`` with numpy matmul broadcasting over batch dims; ``out`` is a
    (possibly strided) view with the broadcast batch shape. Given ``base`` (the start
    addresses of the buffers ``a``, ``b`` and ``out`` view), returns a `ProductPlan` for
    replaying it, or None when numpy computed it."""
    calls = _batched_driver_calls(a, b, out)
    if calls is None:
        out[...] = np.matmul(a, b)
        return None
    _run(calls)
    return ProductPlan(calls, base) if base is not None else None
