"""The ``matmul`` library kernel: a `metajit.ir.kernel.LibraryCall` whose attrs (a
`metajit.toolkit.analysis.MatmulAttrs`) give each operand's element strides, run as
BLAS on strided views of the buffers (no copies: a transposed operand is a transpose
flag). Products run on OpenBLAS split across the kernels' OpenMP threads (`blas`), or
as numpy's matmul when that is missing.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import blas


def buffer_view(buffer, dtype, shape):
    """A numpy view of a `HostBuffer` as ``dtype`` and ``shape``."""
    count = int(np.prod(shape, dtype=np.int64))
    return buffer.array[:count * dtype.itemsize].view(dtype.numpy).reshape(shape)


def _strided(buffer, dtype, total, sizes, strides):
    """A view of ``buffer`` (``total`` elements of ``dtype``) with element ``strides``;
    a broadcast dim (stride 0) keeps size 1, so numpy and BLAS see it as broadcast."""
    flat = buffer_view(buffer, dtype, (total,))
    shape = tuple(size if stride or i >= len(sizes) - 2 else 1 for i, (size, stride) in enumerate(zip(sizes, strides)))
    return as_strided(flat, shape, tuple(s * dtype.itemsize for s in strides))


class MatmulProgram:
    """Runs a ``matmul`` call as a (batched) GEMM on strided views of its buffers."""

    def __init__(self, call):
        self.call = call
        self.attrs = call.attrs
        self.plan = None  # a `blas.ProductPlan` once the product ran on BLAS

    def _base(self, inputs, outputs):
        """The start addresses of the A, B and output buffers, by `blas` role."""
        return {"a": inputs[self.attrs.a_slot].address, "b": inputs[self.attrs.b_slot].address,
                "out": outputs[0].address}

    def native_calls(self, inputs, outputs):
        """This product's BLAS driver calls as native launches (see `blas.ProductPlan`),
        or None before the first run recorded them (or without BLAS)."""
        if self.plan is None or not blas.available():
            return None
        return self.plan.native_calls(self._base(inputs, outputs))

    def views(self, inputs, outputs):
        """Strided numpy views ``(A, B, C)`` of the operands and the output."""
        attrs, call = self.attrs, self.call
        batch = attrs.batch

        def view(buffer, slot_dtype_shape, sizes, strides):
            dtype, shape = slot_dtype_shape
            return _strided(buffer, dtype, int(np.prod(shape, dtype=np.int64)), batch + sizes, strides)
        a = view(inputs[attrs.a_slot], call.inputs[attrs.a_slot], (attrs.m, attrs.k), attrs.a_strides)
        b = view(inputs[attrs.b_slot], call.inputs[attrs.b_slot], (attrs.k, attrs.n), attrs.b_strides)
        dtype, shape = call.outputs[0]
        c = as_strided(buffer_view(outputs[0], dtype, (int(np.prod(shape, dtype=np.int64)),)),
                       batch + (attrs.m, attrs.n), tuple(s * dtype.itemsize for s in attrs.c_strides))
        return a, b, c

    def __call__(self, inputs, outputs, parameters):
        base = self._base(inputs, outputs)
        if self.plan is not None and blas.available():
            self.plan.run(base)
            return
        a, b, c = self.views(inputs, outputs)
        if blas.available() and c.dtype in (np.float32, np.float64):
            self.plan = blas.batched_gemm(a, b, c, base)
        else:
            np.matmul(a, b, out=c)
