"""Evaluate a `metajit.ir.kernel.Kernel` with numpy over its whole loop domain at once.

This file is the executable specification of the meta-op semantics listed in
`metajit.ir.opset.SEMANTICS`; other backends are tested against it.
"""
import math

import numpy as np

from metajit.ir import indexexpr
from metajit.ir.opset import reduce_identity


def _view(buffer, dtype, shape):
    return buffer[:int(np.prod(shape, dtype=np.int64)) * dtype.itemsize].view(dtype.numpy).reshape(shape)


def _zero_safe(function):
    def apply(a, b):
        if a.dtype.kind in "iub":
            zero = b == 0
            return np.where(zero, 0, function(a, np.where(zero, 1, b))).astype(a.dtype)
        return function(a, b)
    return apply


def _integer_power(a, b):
    if a.dtype.kind in "iu":
        negative = b < 0
        return np.where(negative, 0, np.power(a, np.where(negative, 0, b))).astype(a.dtype)
    return np.power(a, b)


_erf = np.frompyfunc(math.erf, 1, 1)

UNARY = {
    "neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "erf": lambda x: np.asarray(_erf(x), dtype=x.dtype),
    "floor": np.floor, "ceil": np.ceil, "round": np.rint,
    "logical_not": np.logical_not, "bitwise_not": np.invert,
}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "floor_div": _zero_safe(np.floor_divide), "mod": _zero_safe(np.mod), "pow": _integer_power,
    "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal, "ne": np.not_equal,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
    "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor,
    "left_shift": np.left_shift, "right_shift": np.right_shift,
}
REDUCE_UFUNC = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum,
                "any": np.logical_or, "all": np.logical_and}


def _gather(array, index_arrays):
    """``array[index]`` with out-of-range positions clipped (their values are discarded)."""
    if array.size == 0:
        shape = np.broadcast_shapes(*(np.shape(i) for i in index_arrays)) if index_arrays else ()
        return np.zeros(shape, dtype=array.dtype)
    clipped = tuple(np.clip(i, 0, size - 1) for i, size in zip(index_arrays, array.shape))
    return array[clipped]


class _Evaluator:
    def __init__(self, kernel, inputs, parameters):
        self.kernel = kernel
        self.inputs = inputs
        self.parameters = parameters
        ndim = len(kernel.domain)
        self.loops = [np.arange(size, dtype=np.int64).reshape(
            [size if a == axis else 1 for a in range(ndim)]) for axis, size in enumerate(kernel.domain)]
        self.memo = {}

    def index(self, expr):
        return indexexpr.evaluate(expr, self.loops, self.load_extra)

    def load_extra(self, slot, index_arrays):
        return _gather(self.inputs[slot], index_arrays).astype(np.int64)

    def value(self, expr):
        found = self.memo.get(expr)
        if found is None:
            found = self.memo[expr] = np.asarray(self._compute(expr), dtype=expr.dtype.numpy)
        return found

    def _compute(self, expr):
        op = expr.op
        if op == "load":
            slot, index = expr.args
            return _gather(self.inputs[slot], [self.index(e) for e in index])
        if op == "const":
            return np.array(expr.args[0], dtype=expr.dtype.numpy)
        if op == "param":
            return np.array(self.parameters[expr.args[0]], dtype=expr.dtype.numpy)
        if op == "index":
            return self.index(expr.args[0])
        operands = [self.value(a) for a in expr.args]
        if op == "cast":
            return operands[0].astype(expr.dtype.numpy)
        if op == "select":
            return np.where(*operands)
        if len(operands) == 1:
            return UNARY[op](operands[0])
        return BINARY[op](*operands)


def run_kernel(kernel, input_buffers, output_buffers, parameters=()):
    """Execute ``kernel`` reading ``input_buffers`` and writing ``output_buffers`` (uint8 arrays),
    with ``parameters`` as the values of its scalar parameters."""
    inputs = [_view(b, d, s) for b, (d, s) in zip(input_buffers, kernel.inputs)]
    outputs = [_view(b, d, s) for b, (d, s) in zip(output_buffers, kernel.outputs)]
    evaluator = _Evaluator(kernel, inputs, parameters)
    domain = kernel.domain
    with np.errstate(all="ignore"):
        for store in kernel.stores:
            out = outputs[store.slot]
            if store.reduce_op:
                out[...] = reduce_identity(store.reduce_op, kernel.outputs[store.slot][0])
            if 0 in domain:
                continue
            value = np.broadcast_to(evaluator.value(store.value), domain)
            ufunc = REDUCE_UFUNC.get(store.reduce_op)
            axes = store.reduced_axes(domain, out.shape) if ufunc else None
            if axes is not None:
                reduced = ufunc.reduce(value, axis=axes, dtype=out.dtype) if axes else value
                out[...] = ufunc(out, np.reshape(reduced, out.shape))
                continue
            valid = np.broadcast_to(evaluator.index(store.condition) != 0, domain).reshape(-1)
            flat_position = np.zeros(int(valid.sum()), dtype=np.int64)
            for expr, size in zip(store.index, out.shape):
                position = np.broadcast_to(evaluator.index(expr), domain).reshape(-1)[valid]
                if position.size and (position.min() < 0 or position.max() >= size):
                    raise IndexError("store index out of range: the kernel's store condition "
                                     "must exclude it")
                flat_position = flat_position * size + position
            values = value.reshape(-1)[valid]
            flat_out = out.reshape(-1)
            if ufunc is None:
                flat_out[flat_position] = values
            else:
                ufunc.at(flat_out, flat_position, values)
