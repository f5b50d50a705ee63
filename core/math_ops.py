"""Element-wise front end: dtype promotion, numpy broadcasting, unary and binary math.

Each function takes Vars, numpy arrays or Python scalars and returns a lazy Var
built from element-wise meta-ops plus the broadcasts and casts it needs.
"""
import math
import numbers

import numpy as np

from .ir import dtypes, graph, opset
from .errors import MetajitDtypeError, MetajitShapeError, MetajitTypeError
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
    if isinstance(value, (tuple, list)) and any(isinstance(item, Var) for item in value):
        raise MetajitTypeError(
            f"an operator got a {type(value).__name__} of Vars as an operand (did a Jittor "
            f"function return a tuple? jt.argmax/argmin give (indices, values), as Jittor's: "
            f"write `x.argmax(-1)[0]`); stack the Vars first with jt.stack if you meant an array")
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
    if len(x.shape) > 2 and len(y.shape) == 2 and x.dtype is y.dtype and dtypes.is_float(x.dtype):
        # (..., m, k) @ (k, n) is one (rows, k) @ (k, n) product: y's gradient then sums over one
        # axis, a matrix product too (a Linear layer on a sequence or an NHWC map)
        rows = graph.reshape(x, (graph.numel(x.shape[:-1]), x.shape[-1]))
        return wrap(graph.reshape(matmul(wrap(rows), wrap(y))._node, x.shape[:-1] + (y.shape[-1],)))
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


# ---- PyTorch's further element-wise functions ----------------------------------------------

def as_var(x):
    """``x`` as a Var (a list, numpy array or number becomes one)."""
    return x if isinstance(x, Var) else wrap(as_node(x))


def _float_operands(*values):
    """``values`` as Vars of their common dtype, float32 where that is not a float (the
    operands of a function with a float result, e.g. ``atan2`` of int Vars, as PyTorch)."""
    dtype = _operand_dtype(values)
    if not dtypes.is_float(dtype):
        dtype = dtypes.DEFAULT_FLOAT
    return [wrap(cast_node(as_node(v, dtype if _is_scalar(v) else None), dtype)) for v in values]


def with_gradient(value, surrogate):
    """``value``, differentiated as ``surrogate`` (of the same shape): for a value whose own
    formula has the wrong derivative, e.g. one element picked among ties whose gradient
    PyTorch splits between them. Where ``surrogate`` is not finite the gradient is 0.

    Example: ``with_gradient(picked, tied_sum / tie_count)``."""
    value, fixed = value.detach(), surrogate.detach()
    return where(isfinite(fixed), value + (surrogate - fixed), value)


def clamp_min(x, min):
    """``clamp(x, min=min)`` (``torch.clamp_min``). Example: ``jt.clamp_min(x, 0.0)``."""
    return clamp(x, min_v=min)


def clamp_max(x, max):
    """``clamp(x, max=max)`` (``torch.clamp_max``). Example: ``jt.clamp_max(x, 1.0)``."""
    return clamp(x, max_v=max)


def lerp(start, end, weight):
    """``start + weight * (end - start)``, as ``torch.lerp``: computed from ``end`` when
    ``|weight| >= 0.5``, so both ends are exact. Example: ``jt.lerp(a, b, 0.25)``."""
    difference = binary("sub", end, start)
    if isinstance(weight, numbers.Real):
        if abs(weight) < 0.5:
            return binary("add", start, binary("mul", difference, weight))
        return binary("sub", end, binary("mul", difference, 1 - weight))
    from_start = binary("add", start, binary("mul", weight, difference))
    from_end = binary("sub", end, binary("mul", difference, binary("sub", 1, weight)))
    return where(binary("lt", unary("abs", weight), 0.5), from_start, from_end)


def addcmul(x, tensor1, tensor2, value=1):
    """``x + value * tensor1 * tensor2`` (``torch.addcmul``). Example: ``jt.addcmul(x, a, b, value=0.5)``."""
    return binary("add", x, binary("mul", binary("mul", tensor1, tensor2), value))


def addcdiv(x, tensor1, tensor2, value=1):
    """``x + value * tensor1 / tensor2`` (``torch.addcdiv``). Example: ``jt.addcdiv(x, a, b, value=0.5)``."""
    return binary("add", x, binary("mul", binary("div", tensor1, tensor2), value))


def signbit(x):
    """True where the sign bit of ``x`` is set: negative numbers and -0.0 (``torch.signbit``;
    a nan counts as positive, whatever its bit). Example: ``jt.signbit(jt.array([-0.0, 1.0]))``."""
    x = as_var(x)
    negative = binary("lt", x, 0)
    if not dtypes.is_float(x.dtype):
        return negative
    return negative | ((x == 0) & (binary("div", 1.0, x) < 0))


def atan2(y, x):
    """The angle of the point ``(x, y)`` in [-pi, pi], as ``torch.atan2`` (signed zeros and
    infinities included): ``atan(y / x)`` or ``pi/2 - atan(x / y)``, whichever divides by
    the larger coordinate, so the gradient ``(x, -y) / (x^2 + y^2)`` is finite off the
    origin and 0 at it. Example: ``jt.atan2(jt.array([1.0]), jt.array([-1.0]))`` is 3pi/4."""
    y, x = _float_operands(y, x)
    origin = (x == 0) & (y == 0)
    y = where(origin, y.detach(), y)
    x_larger = unary("abs", x) >= unary("abs", y)
    half_turn = where(signbit(y), -math.pi, math.pi)
    along_x = unary("atan", y / where(x == 0, 1.0, x))
    along_x = where(signbit(x), along_x + half_turn, along_x)
    along_y = where(y > 0, math.pi / 2, -math.pi / 2) - unary("atan", x / where(x_larger, 1.0, y))
    corner = where(x > 0, math.pi / 4, 3 * math.pi / 4) * where(signbit(y), -1.0, 1.0)
    return where(isinf(x) & isinf(y), corner, where(x_larger, along_x, along_y))


def hypot(x, y):
    """``sqrt(x^2 + y^2)`` without overflow or underflow in the squares (``torch.hypot``).
    Example: ``jt.hypot(jt.array([3e30]), jt.array([4e30]))`` is 5e30."""
    x, y = _float_operands(x, y)
    a, b = unary("abs", x), unary("abs", y)
    a_larger = a >= b
    larger, smaller = where(a_larger, a, b), where(a_larger, b, a)
    ratio = smaller / where(larger == 0, 1.0, larger)
    return where(larger == math.inf, math.inf, larger * unary("sqrt", ratio * ratio + 1.0))


def _log_add(a, b, base):
    """``log_base(base**a + base**b)``: the larger operand plus ``log1p`` of the smaller
    power, each branch fed only differences it can take (its gradient is then finite and
    splits evenly at a tie); equal infinities give themselves and a nan gives nan."""
    a, b = _float_operands(a, b)

    def log_one_plus_power(exponent):  # log_base(1 + base**exponent), exponent <= 0
        if base == 2:
            return unary("log1p", binary("pow", 2.0, exponent)) / math.log(2)
        return unary("log1p", unary("exp", exponent))
    difference = a - b
    a_larger = difference >= 0
    from_a = a + log_one_plus_power(-where(a_larger, difference, 0.0))
    from_b = b + log_one_plus_power(where(a_larger, 0.0, difference))
    return where(isinf(a) & (a == b), a, where(a_larger, from_a, from_b))


def logaddexp(a, b):
    """``log(exp(a) + exp(b))`` without overflow (``torch.logaddexp``).
    Example: ``jt.logaddexp(jt.array([1000.0]), jt.array([1000.0]))`` is 1000 + log 2."""
    return _log_add(a, b, math.e)


def logaddexp2(a, b):
    """``log2(2**a + 2**b)`` without overflow (``torch.logaddexp2``). Example: ``jt.logaddexp2(x, y)``."""
    return _log_add(a, b, 2)


def deg2rad(x):
    """Degrees to radians (``torch.deg2rad``). Example: ``jt.deg2rad(jt.array([180.0]))`` is pi."""
    return _float_operands(x)[0] * (math.pi / 180)


def rad2deg(x):
    """Radians to degrees (``torch.rad2deg``). Example: ``jt.rad2deg(jt.array([math.pi]))`` is 180."""
    return _float_operands(x)[0] * (180 / math.pi)


def exp2(x):
    """``2**x`` (``torch.exp2``), exact for integer ``x``. Example: ``jt.exp2(jt.array([3.0]))`` is 8."""
    return binary("pow", 2.0, _float_operands(x)[0])


def trunc(x):
    """``x`` rounded toward zero (``torch.trunc`` / ``fix``); integers stay.
    Example: ``jt.trunc(jt.array([-1.5]))`` is -1."""
    x = as_var(x)
    if not dtypes.is_float(x.dtype):
        return x
    return where(x < 0, unary("ceil", x), unary("floor", x))


def frac(x):
    """``x - trunc(x)``, with ``x``'s sign (``torch.frac``). Example: ``jt.frac(jt.array([-1.25]))`` is -0.25."""
    return binary("sub", x, trunc(x))


def copysign(a, b):
    """``|a|`` with the sign (bit) of ``b``, a float (``torch.copysign``).
    Example: ``jt.copysign(jt.array([2.0]), -0.0)`` is -2."""
    a, b = _float_operands(a, b)
    magnitude = unary("abs", a)
    return where(signbit(b), -magnitude, magnitude)


def heaviside(x, values):
    """The step function: 0 where ``x < 0``, ``values`` where ``x == 0``, 1 where ``x > 0``
    (``torch.heaviside``). Example: ``jt.heaviside(x, 0.5)``."""
    x = as_var(x)
    return where(x == 0, values, cast(x > 0, _operand_dtype([x, values])))


def sinc(x):
    """The normalised sinc ``sin(pi x) / (pi x)``, 1 at 0 (with gradient 0 there), as
    ``torch.sinc``. Example: ``jt.sinc(jt.array([0.0, 0.5]))`` is ``[1, 2/pi]``."""
    x = _float_operands(x)[0]
    zero = x == 0
    scaled = where(zero, 1.0, x) * math.pi
    return where(zero, 1.0, unary("sin", scaled) / scaled)


def xlogy(x, y):
    """``x * log(y)``, 0 where ``x == 0`` unless ``y`` is nan (``torch.xlogy``); the
    gradient is 0 there too. Example: ``jt.xlogy(jt.array([0.0]), jt.array([0.0]))`` is 0."""
    x, y = _float_operands(x, y)
    zero = (x == 0) & ~isnan(y)
    return where(zero, 0.0, x * unary("log", where(zero, 1.0, y)))


def logit(x, eps=None):
    """``log(x / (1 - x))``, ``x`` first clamped to ``[eps, 1 - eps]`` when ``eps`` is given
    (``torch.logit``). Example: ``jt.logit(p, eps=1e-6)``."""
    x = _float_operands(x)[0]
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return unary("log", x / (1.0 - x))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """``x`` with nan, +inf and -inf replaced (by default with 0 and the dtype's largest and
    lowest finite values), as ``torch.nan_to_num``; the gradient is 0 at replaced elements.
    Example: ``jt.nan_to_num(x, nan=0.0, posinf=1e6)``."""
    x = as_var(x)
    if not dtypes.is_float(x.dtype):
        return x
    limits = np.finfo(x.dtype.numpy)
    result = where(isnan(x), nan, x)
    result = where(x == math.inf, float(limits.max) if posinf is None else posinf, result)
    return where(x == -math.inf, float(limits.min) if neginf is None else neginf, result)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Where ``|a - b| <= atol + rtol * |b|`` (equal values, infinities included, always;
    nan with nan when ``equal_nan``), as ``torch.isclose``. Example: ``jt.isclose(x, y, atol=1e-6)``."""
    a, b = as_var(a), as_var(b)
    equal = a == b
    if _operand_dtype([a, b]) == dtypes.bool_:
        return equal
    near = unary("abs", a - b) <= unary("abs", b) * float(rtol) + float(atol)
    close = equal | (isfinite(a) & isfinite(b) & near)
    return close | (isnan(a) & isnan(b)) if equal_nan else close


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """PyTorch's ``torch.isin``: a bool Var of ``elements``' shape, whether each element is
    among ``test_elements`` (a Var, array or scalar; nan never is), or with ``invert`` whether
    it is not. One fused comparison per pair of elements (``assume_unique`` changes nothing).
    Example: ``jt.isin(token_ids, jt.array(special_ids))``."""
    elements = as_var(elements)
    tests = as_var(test_elements).reshape(-1)
    found = binary("eq", elements.unsqueeze(-1), tests).any(-1)
    return unary("logical_not", found) if invert else found


def isposinf(x):
    """True where ``x`` is +inf (``torch.isposinf``). Example: ``jt.isposinf(x)``."""
    return binary("eq", x, math.inf)


def isneginf(x):
    """True where ``x`` is -inf (``torch.isneginf``). Example: ``jt.isneginf(x)``."""
    return binary("eq", x, -math.inf)


def isreal(x):
    """True everywhere: metajit has no complex dtypes (``torch.isreal``). Example: ``jt.isreal(x)``."""
    from .creation import full
    return full(as_var(x).shape, True, dtypes.bool_)


def float_power(x, exponent):
    """``x ** exponent`` computed in float64 (``torch.float_power``). Example: ``jt.float_power(x, 2)``."""
    base = cast(as_var(x), dtypes.float64)
    if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        exponent = cast(as_var(exponent), dtypes.float64)
    return binary("pow", base, exponent)


def _euclid_steps(dtype):
    """The most division steps Euclid's algorithm takes on values of integer ``dtype``:
    consecutive Fibonacci numbers are the worst case (Lamé)."""
    largest, previous, current, steps = int(np.iinfo(dtype.numpy).max), 1, 2, 1
    while current <= largest:
        previous, current, steps = current, previous + current, steps + 1
    return steps


def gcd(a, b):
    """The greatest common divisor of integers, non-negative, ``gcd(0, 0) = 0`` (``torch.gcd``):
    Euclid's algorithm run for the most steps the dtype can need. Example: ``jt.gcd(a, b)``."""
    a, b = as_var(a), as_var(b)
    dtype = _operand_dtype([a, b])
    if not dtypes.is_integer(dtype):
        raise MetajitDtypeError(f"gcd needs integer Vars, got {dtype}; cast them first (x.int64())")
    a, b = unary("abs", cast(a, dtype)), unary("abs", cast(b, dtype))
    for _ in range(_euclid_steps(dtype)):
        a, b = where(b != 0, b, a), binary("mod", a, b)  # a % 0 is 0: a finished pair stays
    return a


def lcm(a, b):
    """The least common multiple of integers, non-negative, 0 when either is 0 (``torch.lcm``).
    Example: ``jt.lcm(jt.array([4]), jt.array([6]))`` is 12."""
    divisor = gcd(a, b)
    return unary("abs", binary("mul", binary("floor_div", a, divisor), b))  # x // 0 is 0


# ---- special functions: series evaluated in float64 ---------------------------------------

def _in_float64(function, x):
    """``function(x)`` evaluated in float64 and returned in ``x``'s float dtype (float32 for
    integers): the series below need float64's digits to give float32 results exact."""
    x = as_var(x)
    dtype = x.dtype if dtypes.is_float(x.dtype) else dtypes.DEFAULT_FLOAT
    return cast(function(cast(x, dtypes.float64)), dtype)


def _horner(x, coefficients, monic=False):
    """The polynomial with ``coefficients`` from the highest power down at ``x`` (a leading
    1 before them when ``monic``): Cephes' ``polevl`` / ``p1evl``."""
    result = x + coefficients[0] if monic else coefficients[0]
    for coefficient in coefficients[1:]:
        result = result * x + coefficient
    return result


# Cephes' erfc (ndtr.c): exp(-x^2) P(x)/Q(x) for 1 <= x < 8, exp(-x^2) R(x)/S(x) beyond
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
           6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFC_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
           1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)


def _erfc(x):
    magnitude = binary("minimum", unary("abs", x), 30.0)  # erfc(30) underflows float64
    ratio = where(magnitude < 8, _horner(magnitude, _ERFC_P) / _horner(magnitude, _ERFC_Q, True),
                  _horner(magnitude, _ERFC_R) / _horner(magnitude, _ERFC_S, True))
    tail = unary("exp", -magnitude * magnitude) * ratio
    return where(magnitude < 1, 1.0 - unary("erf", x), where(x < 0, 2.0 - tail, tail))


def erfc(x):
    """``1 - erf(x)`` without its cancellation for large ``x`` (``torch.erfc``): Cephes'
    rational approximations of ``erfc(x) exp(x^2)``, in float64.
    Example: ``jt.erfc(jt.array([10.0]))`` is 2.1e-45."""
    return _in_float64(_erfc, x)


_SHIFT = 10  # the series below are used from 10 up; smaller arguments are shifted there
_STIRLING = (1 / 156, -691 / 360360, 1 / 1188, -1 / 1680, 1 / 1260, -1 / 360, 1 / 12)  # of z^-13 ... z^-1
_DIGAMMA_SERIES = (1 / 12, -691 / 32760, 1 / 132, -1 / 240, 1 / 252, -1 / 120, 1 / 12)  # of z^-14 ... z^-2


def _shifted(y):
    """``(z, small, y_small)``: the argument ``y >= 0.5`` raised by `_SHIFT` where it is
    below it, which of them were, and ``y`` with 1 in the others (a safe input there)."""
    small = y < _SHIFT
    return where(small, y + float(_SHIFT), y), small, where(small, y, 1.0)


def _lgamma_from_half(y):
    """``log|Gamma(y)|`` for ``y >= 0.5``: Stirling's series at ``z = y + 10`` less the log
    of ``y (y + 1) ... (y + 9)`` (the recurrence Gamma(y + 1) = y Gamma(y))."""
    z, small, y_small = _shifted(y)
    product = y_small
    for step in range(1, _SHIFT):
        product = product * (y_small + float(step))
    w = 1.0 / z
    series = _horner(w * w, _STIRLING) * w
    stirling = (z - 0.5) * unary("log", z) - z + (0.5 * math.log(2 * math.pi)) + series
    return stirling - where(small, unary("log", product), 0.0)


def _reflected(x):
    """``(reflect, y, r)``: where ``x < 0.5``, the argument ``y`` (``1 - x`` there) the series
    take, and ``x`` less its nearest integer (0.25 elsewhere): ``sin`` and ``tan`` of
    ``pi r`` are those of ``pi x`` up to sign, without the error of a large ``pi x``."""
    reflect = x < 0.5
    return reflect, where(reflect, 1.0 - x, x), where(reflect, x - unary("round", x), 0.25)


def _lgamma(x):
    reflect, y, r = _reflected(x)
    value = _lgamma_from_half(y)
    reflection = unary("log", math.pi / unary("abs", unary("sin", r * math.pi)))  # Gamma(x) Gamma(1-x) = pi / sin(pi x)
    return where(isinf(x), math.inf, where(reflect, reflection - value, value))


def lgamma(x):
    """``log|Gamma(x)|`` (``torch.lgamma``): Stirling's series after shifting the argument to
    10 or more, the reflection formula below 1/2, +inf at the poles (0, -1, -2, ...).
    Example: ``jt.lgamma(jt.array([5.0]))`` is log(24)."""
    return _in_float64(_lgamma, x)


def _digamma(x):
    reflect, y, r = _reflected(x)
    z, small, y_small = _shifted(y)
    correction = 1.0 / y_small
    for step in range(1, _SHIFT):
        correction = correction + 1.0 / (y_small + float(step))
    w2 = 1.0 / (z * z)
    value = unary("log", z) - 0.5 / z - _horner(w2, _DIGAMMA_SERIES) * w2 - where(small, correction, 0.0)
    r = where(x == 0, x, r)  # keeps the sign of a zero: digamma(+-0) = -+inf, as PyTorch
    reflected = value - math.pi / unary("tan", r * math.pi)  # psi(1-x) - psi(x) = pi cot(pi x)
    pole = (x < 0) & (x == unary("floor", x))
    return where(pole, math.nan, where(reflect, reflected, value))


def digamma(x):
    """The logarithmic derivative of Gamma, ``Gamma'(x) / Gamma(x)`` (``torch.digamma``): its
    asymptotic series after shifting the argument to 10 or more, the reflection formula
    below 1/2; -inf at +0, +inf at -0 and nan at the negative integers, as PyTorch.
    Example: ``jt.digamma(jt.array([1.0]))`` is -0.5772 (minus Euler's constant)."""
    return _in_float64(_digamma, x)
