"""Element-wise front end: dtype promotion, numpy broadcasting, unary and binary math.

Each function takes Vars, numpy arrays or Python scalars and returns a lazy Var
built from element-wise meta-ops plus the broadcasts and casts it needs.
"""
import numbers

import numpy as np

from .ir import dtypes, graph, opset
from .errors import MetajitShapeError
from .flags import thread_flags
from .var import Var

_inference_additions = []  # rewrites of ``a + b`` without gradients tracked (`register_inference_addition`)


def register_inference_addition(rewrite):
    """Have `binary` try ``rewrite(a, b)`` for ``a + b`` while no gradients are tracked: a
    Var it returns (a fused library op, e.g. `metajit.nn.conv.residual_folded`) is the sum."""
    _inference_additions.append(rewrite)


def as_node(value, dtype=None):
    """The graph node of a Var, or a new leaf for an array, list or scalar."""
    if type(value) is Var or isinstance(value, Var):
        return value._node
    if isinstance(value, (numbers.Number, np.number, np.bool_)) and not isinstance(value, complex):
        return graph.constant_leaf(value, dtypes.as_dtype(dtype) if dtype else dtypes.scalar_dtype(value))
    from .creation import array_node
    return array_node(value, dtype)


def wrap(node):
    """A Var holding ``node``."""
    return Var.from_node(node)


def broadcast_shapes(*shapes, op="broadcast"):
    """numpy's broadcast of ``shapes``; raises `MetajitShapeError` naming them."""
    if len(shapes) == 2 and type(shapes[0]) is tuple and type(shapes[1]) is tuple:
        first, second = shapes
        if len(first) != len(second):  # right-aligned: pad the shorter with ones
            padding = (1,) * abs(len(first) - len(second))
            first, second = (padding + first, second) if len(first) < len(second) else (first, padding + second)
        result = []
        for a, b in zip(first, second):
            if a == b or b == 1:
                result.append(a)
            elif a == 1:
                result.append(b)
            else:
                break  # the general loop below names the offending dimension
        else:
            return tuple(result)
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            raise MetajitShapeError(
                f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} do not broadcast "
                f"(dimension {axis} has sizes {sorted(sizes)})")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def cast_node(node, dtype):
    """``node`` converted to ``dtype`` (no node added when it already is)."""
    if node.dtype is dtype or node.dtype == dtype:
        return node
    return graph.elementwise("cast", [node], dtype)


_PYTHON_SCALARS = (bool, int, float)


def _is_scalar(value):
    return type(value) in _PYTHON_SCALARS or (
        isinstance(value, _PYTHON_SCALARS) and not isinstance(value, Var))


def _operand_dtype(values):
    """Common dtype of Var/array operands, treating Python scalars as weak."""
    array_dtypes, scalars = [], []
    for value in values:
        if type(value) is Var:
            array_dtypes.append(value._node.dtype)
        elif _is_scalar(value):
            scalars.append(value)
        else:
            array_dtypes.append(as_node(value).dtype if isinstance(value, Var) else
                                dtypes.as_dtype(np.asarray(value).dtype))
    if not array_dtypes:
        return dtypes.promote(*(dtypes.scalar_dtype(v) for v in values))
    dtype = array_dtypes[0]
    if any(other is not dtype for other in array_dtypes):
        dtype = dtypes.promote(*array_dtypes)
    for scalar in scalars:
        dtype = dtypes.promote_with_scalar(dtype, scalar)
    return dtype


def _prepare(op, values, dtype):
    nodes = [cast_node(as_node(v, dtype if _is_scalar(v) else None), dtype) for v in values]
    shape = nodes[0].shape
    if any(n.shape != shape for n in nodes):
        shape = broadcast_shapes(*(n.shape for n in nodes), op=op)
        return [graph.broadcast_to(n, shape) for n in nodes]
    return nodes


_FAST_OPS = frozenset(opset.ARITHMETIC_BINARY + opset.COMPARISON_BINARY)
_COMPARISONS = frozenset(opset.COMPARISON_BINARY)
_NUMBERS = (int, float)


def _fast_binary(op, a, b):
    """`binary` for what training steps are made of, without the general promotion
    machinery: a float Var with a float Var of the same dtype, or with a Python int or
    float (which takes the Var's dtype). None for anything else."""
    if op not in _FAST_OPS:
        return None
    if type(a) is Var:
        x = a._node
        if type(b) is Var:
            y = b._node
            if y.dtype is not x.dtype:
                return None
        elif type(b) in _NUMBERS:
            y = graph.constant_leaf(b, x.dtype)
        else:
            return None
    elif type(b) is Var and type(a) in _NUMBERS:
        y = b._node
        x = graph.constant_leaf(a, y.dtype)
    else:
        return None
    dtype = x.dtype
    if not dtypes.is_float(dtype):
        return None
    if x.shape != y.shape:
        shape = x.shape if not y.shape else y.shape if not x.shape else broadcast_shapes(x.shape, y.shape, op=op)
        x, y = graph.broadcast_to_tuple(x, shape), graph.broadcast_to_tuple(y, shape)
    if op in _COMPARISONS:
        return wrap(graph.Node(op, (x, y), (), x.shape, dtypes.bool_))
    return wrap(graph.Node(op, (x, y), (), x.shape, dtype, requires_grad=graph.derived_requires_grad(dtype)))


def binary(op, a, b):
    """Apply binary meta-op ``op`` with promotion and broadcasting, e.g. ``binary("add", x, 1)``."""
    if op == "add" and thread_flags.no_grad:
        for rewrite in _inference_additions:
            fused = rewrite(a, b)
            if fused is not None:
                return fused
    fast = _fast_binary(op, a, b)
    if fast is not None:
        return fast
    dtype = _operand_dtype([a, b])
    if op == "div" and not dtypes.is_float(dtype):
        dtype = dtypes.DEFAULT_FLOAT
    if op in opset.LOGICAL_BINARY:
        dtype = dtypes.bool_
    return wrap(graph.elementwise(op, _prepare(op, [a, b], dtype)))


def unary(op, x):
    """Apply unary meta-op ``op``; integer inputs of float functions become float32."""
    node = as_node(x)
    if op in opset.FLOAT_UNARY and not dtypes.is_float(node.dtype):
        if op in ("floor", "ceil", "round"):
            return wrap(node)
        node = cast_node(node, dtypes.DEFAULT_FLOAT)
    if op == "logical_not":
        node = cast_node(node, dtypes.bool_)
    return wrap(graph.elementwise(op, [node]))


def where(condition, x=None, y=None):
    """``x`` where ``condition`` else ``y`` (broadcast). With one argument: the indices of
    true elements, a tuple of int32 Vars per dimension (a sync point, like numpy)."""
    if x is None and y is None:
        return nonzero(condition, as_tuple=True)
    dtype = _operand_dtype([x, y])
    condition_node = cast_node(as_node(condition), dtypes.bool_)
    nodes = _prepare("where", [x, y], dtype)
    shape = broadcast_shapes(condition_node.shape, nodes[0].shape, op="where")
    nodes = [graph.broadcast_to(n, shape) for n in [condition_node] + nodes]
    return wrap(graph.elementwise("select", nodes))


def nonzero(x, as_tuple=False):
    """Indices of nonzero elements: an int32 Var of shape (count, ndim), or a tuple per dim.

    The count decides the output shape, so this realises ``x``.
    """
    mask = as_node(x)
    host = np.nonzero(Var.from_node(mask).numpy())
    columns = [wrap(graph.array_leaf(np.ascontiguousarray(c, dtype=np.int32))) for c in host]
    if as_tuple:
        return tuple(columns)
    from .shape_ops import stack
    return stack(columns, dim=1) if columns else wrap(graph.array_leaf(np.zeros((0, 0), np.int32)))


def cast(x, dtype):
    """``x`` converted to ``dtype`` (Jittor's ``Var.cast`` / ``astype``; PyTorch ``to``)."""
    return wrap(cast_node(as_node(x), dtypes.as_dtype(dtype)))


def clamp(x, min_v=None, max_v=None, *, min=None, max=None):
    """Limit ``x`` to ``[min_v, max_v]`` (either bound may be None); the gradient passes
    where ``min_v <= x <= max_v`` (PyTorch's: not at a nan)."""
    low = min_v if min_v is not None else min
    high = max_v if max_v is not None else max
    value = x if isinstance(x, Var) else wrap(as_node(x))
    result = value
    # selects, not maximum/minimum: the gradient is 1 on the closed interval, as PyTorch's
    # (a tie in maximum splits it); a nan compares false and stays; low > high gives high
    if low is not None:
        result = where(binary("lt", result, low), low, result)
    if high is not None:
        result = where(binary("gt", result, high), high, result)
    if dtypes.is_float(value.dtype) and (low is not None or high is not None):
        result = where(binary("ne", value, value), value.detach(), result)  # nan, without a gradient
    return result


def sign(x):
    """-1, 0 or 1 by the sign of each element (nan stays nan)."""
    x = x if isinstance(x, Var) else wrap(as_node(x))
    positive = cast(binary("gt", x, 0), x.dtype)
    negative = cast(binary("lt", x, 0), x.dtype)
    result = binary("sub", positive, negative)
    if dtypes.is_float(x.dtype):
        result = where(binary("ne", x, x), x, result)
    return result


def replace_at_zero(function, x, value=0.0):
    """``function(x)`` where ``x`` is not 0, and ``value`` with a zero gradient where it is:
    ``function`` is evaluated at 1 there instead, so the pole of a derivative at 0 (sqrt,
    fractional and negative powers) never multiplies a zero gradient into nan, as PyTorch's norms.

    Example: ``replace_at_zero(lambda t: unary("sqrt", t), total)`` (a 2-norm from its sum of squares)."""
    zero = binary("eq", x, 0.0)
    return where(zero, value, function(where(zero, 1.0, x)))


def isnan(x):
    """True where ``x`` is nan."""
    return binary("ne", x, x)


def isinf(x):
    """True where ``x`` is +inf or -inf."""
    return binary("eq", unary("abs", x), float("inf"))


def isfinite(x):
    """True where ``x`` is neither nan nor infinite."""
    return binary("lt", unary("abs", x), float("inf"))


def relu(x):
    """``max(x, 0)``; its gradient is 1 where ``x > 0`` and 0 elsewhere, at 0 itself too, as
    PyTorch's (a tie of ``maximum`` with a constant passes no gradient: `gradients`)."""
    return binary("maximum", x, 0)


def matmul(a, b):
    """Matrix product with numpy's rules (1-d operands, batch broadcasting), as broadcast + mul + sum.

    ``a @ b``. The product is arranged so the reduction yields the result shape
    directly; backends that claim ``matmul`` run it as a BLAS call.
    """
    x, y = as_node(a), as_node(b)
    if not x.shape or not y.shape:
        raise MetajitShapeError("matmul: both operands need at least one dimension")
    contracted_b = y.shape[0] if len(y.shape) == 1 else y.shape[-2]
    if x.shape[-1] != contracted_b:
        raise MetajitShapeError(f"matmul: shapes {x.shape} and {y.shape} do not match "
                                f"({x.shape[-1]} != {contracted_b})")
    if len(x.shape) > 1 and len(y.shape) > 1 and x.dtype is y.dtype and dtypes.is_float(x.dtype):
        # (..., m, k, 1) * (..., 1, k, n) summed over k, built without the front end's checks
        batch = x.shape[:-2] if x.shape[:-2] == y.shape[:-2] else \
            broadcast_shapes(x.shape[:-2], y.shape[:-2], op="matmul")
        (m, k), n = x.shape[-2:], y.shape[-1]
        shape = batch + (m, k, n)
        requires_grad = graph.derived_requires_grad(x.dtype)
        x = graph.Node("broadcast_to", (graph.reshape(x, x.shape + (1,)),), (), shape, x.dtype, requires_grad)
        y = graph.Node("broadcast_to", (graph.reshape(y, y.shape[:-2] + (1,) + y.shape[-2:]),), (), shape,
                       y.dtype, requires_grad)
        product = graph.Node("mul", (x, y), (), shape, x.dtype, requires_grad)
        return wrap(graph.Node("reduce", (product,), ("sum", (len(shape) - 2,), False), batch + (m, n),
                               x.dtype, requires_grad))
    from .reductions import sum as reduce_sum
    from .shape_ops import unsqueeze
    a, b = wrap(x), wrap(y)
    if b.ndim == 1:
        return reduce_sum(binary("mul", a, b), dim=-1)
    if a.ndim == 1:
        return reduce_sum(binary("mul", unsqueeze(a, -1), b), dim=-2)
    return reduce_sum(binary("mul", unsqueeze(a, -1), unsqueeze(b, -3)), dim=-2)
