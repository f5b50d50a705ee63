"""The ``matmul`` library op on cuBLAS: every (batched, broadcast, transposed) product the
fusion pass recognises runs as ``cublasGemmStridedBatchedEx`` calls on the buffers in
place (`metajit.toolkit.gemm` gives the layout; transposes are flags, broadcasts zero
strides), queued on the device's stream.

Precision: float32 products are strict IEEE float32 by default; ``jt.flags.allow_tf32 = 1``
(or Jittor's ``use_tensorcore``) lets cuBLAS use TF32 tensor cores. float16 products
accumulate in float32 on tensor cores; float64 in float64.

`MatmulProgram` talks to a `Blas` object (column-major, as cuBLAS): `Cublas` on a GPU; the
tests give it a host implementation of the same calls to check the layouts without one.
"""
import ctypes

from metajit.errors import MetajitDeviceError
from metajit.flags import flags
from metajit.toolkit.gemm import gemm_layout

from . import nvidia_libraries

OP_N, OP_T = 0, 1                                    # cublasOperation_t
DATA_TYPES = {"float32": 0, "float64": 1, "float16": 2}  # cudaDataType
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70  # cublasComputeType_t
GEMM_DEFAULT = -1                                    # cublasGemmAlgo_t
WORKSPACE_BYTES = 32 << 20  # cuBLAS's scratch, set explicitly so that graph capture never allocates
STATUS_NAMES = {1: "NOT_INITIALIZED", 3: "ALLOC_FAILED", 7: "INVALID_VALUE", 8: "ARCH_MISMATCH",
                11: "MAPPING_ERROR", 13: "EXECUTION_FAILED", 14: "INTERNAL_ERROR", 15: "NOT_SUPPORTED",
                16: "LICENSE_ERROR"}
DTYPES = tuple(DATA_TYPES)


def tf32_allowed():
    """Whether float32 products may use TF32 tensor cores (``allow_tf32`` or ``use_tensorcore``)."""
    return bool(flags.allow_tf32 or flags.use_tensorcore)


def compute_type(dtype_name):
    """``(cublasComputeType_t, ctypes scale type)`` for products of ``dtype_name``."""
    if dtype_name == "float64":
        return COMPUTE_64F, ctypes.c_double
    if dtype_name == "float32" and tf32_allowed():
        return COMPUTE_32F_FAST_TF32, ctypes.c_float
    return COMPUTE_32F, ctypes.c_float


def _check(status, what):
    if status != 0:
        raise MetajitDeviceError(f"cuBLAS {what} failed: CUBLAS_STATUS_{STATUS_NAMES.get(status, status)}")


class Cublas:
    """A cuBLAS handle bound to ``device``'s stream, with a fixed workspace."""

    def __init__(self, device):
        library = nvidia_libraries.load("cublas")
        pointer, size = ctypes.c_void_p, ctypes.c_size_t
        create = nvidia_libraries.function(library, "cublasCreate_v2", ctypes.c_int, ctypes.POINTER(pointer))
        set_stream = nvidia_libraries.function(library, "cublasSetStream_v2", ctypes.c_int, pointer, pointer)
        set_workspace = nvidia_libraries.function(library, "cublasSetWorkspace_v2", ctypes.c_int, pointer, pointer,
                                                  size)
        i64, ll, i32 = ctypes.c_int64, ctypes.c_longlong, ctypes.c_int
        self._gemm = nvidia_libraries.function(
            library, "cublasGemmStridedBatchedEx_64", i32, pointer, i32, i32, i64, i64, i64, pointer,
            pointer, i32, i64, ll, pointer, i32, i64, ll, pointer, pointer, i32, i64, ll, i64, i32, i32)
        device.make_current()
        self.handle = pointer()
        _check(create(ctypes.byref(self.handle)), "cublasCreate")
        _check(set_stream(self.handle, pointer(int(device.stream))), "cublasSetStream")
        self.workspace = device.allocate(WORKSPACE_BYTES)  # held for the handle's life
        _check(set_workspace(self.handle, pointer(self.workspace.address), WORKSPACE_BYTES), "cublasSetWorkspace")

    def gemm(self, dtype_name, trans_first, trans_second, m, n, k, first, ld_first, stride_first,
             second, ld_second, stride_second, out, ldc, stride_c, batch):
        """Column-major ``out = op(first) @ op(second)`` for ``batch`` items (addresses as ints)."""
        data_type = DATA_TYPES[dtype_name]
        compute, scale = compute_type(dtype_name)
        one, zero = scale(1.0), scale(0.0)
        _check(self._gemm(self.handle, OP_T if trans_first else OP_N, OP_T if trans_second else OP_N, m, n, k,
                          ctypes.byref(one), first, data_type, ld_first, stride_first, second, data_type,
                          ld_second, stride_second, ctypes.byref(zero), out, data_type, ldc, stride_c, batch,
                          compute, GEMM_DEFAULT), f"GemmStridedBatchedEx({dtype_name}, {m}x{n}x{k}, batch {batch})")


class MatmulProgram:
    """A ``matmul`` `metajit.ir.kernel.LibraryCall` as GEMM calls on ``blas`` (a `Cublas`, or
    any object with its ``gemm``); ``graph_safe``: it only queues work on the stream."""

    graph_safe = True

    def __init__(self, call, blas):
        self.call = call
        self.blas = blas
        self.layout = gemm_layout(call.attrs)
        if self.layout is None:
            raise MetajitDeviceError(f"cuBLAS cannot read the operands of {call} in place")
        self.dtype_name = str(call.outputs[0][0])
        self.itemsize = call.outputs[0][0].itemsize
        attrs = call.attrs
        self.slots = (attrs.b_slot, attrs.a_slot) if self.layout.swapped else (attrs.a_slot, attrs.b_slot)

    def __call__(self, inputs, outputs, parameters):
        layout, size = self.layout, self.itemsize
        trans_first, trans_second, m, n, k, _, ld_first, _, ld_second = layout.column_major()
        a, b, c = inputs[self.slots[0]].address, inputs[self.slots[1]].address, outputs[0].address
        for a_offset, b_offset, c_offset in layout.offsets:
            # column-major C^T = B^T A^T: B first
            self.blas.gemm(self.dtype_name, trans_first, trans_second, m, n, k,
                           b + b_offset * size, ld_first, layout.stride_b,
                           a + a_offset * size, ld_second, layout.stride_a,
                           c + c_offset * size, layout.ldc, layout.stride_c, layout.batch)
