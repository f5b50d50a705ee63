"""The conformance properties, grouped in families. Each property draws `Program` s (or
sizes, for memory) and checks them on the backend under test against the reference."""
import dataclasses
import math
import resource

import numpy as np
from hypothesis import strategies as st

from metajit import plugins
from metajit.ir import graph

from . import checks
from .strategies import (ALL_DTYPES, FLOATS, INTEGERS, NUMERIC, Program, affine_index_map, extreme_arrays,
                         arrays, axes_subsets, broadcastable, edge_arrays, random_dag, shapes)


@dataclasses.dataclass
class Property:
    """One property: ``strategy`` draws examples, ``check(example, backend)`` asserts.

    ``dtypes`` must all be declared by the backend, else the property is reported as
    unsupported. ``smoke`` properties make up the smoke tier.
    """

    name: str
    family: str
    strategy: object
    check: object
    dtypes: tuple = ()
    smoke: bool = False


@st.composite
def _unary(draw, op, dtype, source):
    value = draw(edge_arrays(dtype, draw(shapes()), 50.0))
    return Program(source.format(op=op), [value])


@st.composite
def _binary(draw, op, dtype, source, second=None):
    first_shape = draw(shapes())
    second_shape = draw(broadcastable(first_shape))
    if draw(st.booleans()):
        first_shape, second_shape = second_shape, first_shape
    a = draw(edge_arrays(dtype, first_shape, 1e4))
    b = draw(second(second_shape) if second else edge_arrays(dtype, second_shape, 1e4))
    return Program(source, [a, b], "exact" if dtype not in FLOATS else "elementwise")


UNARY_FLOAT_OPS = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
                   "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round")
BINARY_SOURCES = {
    "add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b",
    # the meta-ops themselves: `//` and `%` refuse an integer divisor of 0 (metajit.division)
    "floor_div": "jt.binary(a, b, 'floor_divide')", "mod": "jt.binary(a, b, 'mod')", "pow": "a ** b", "maximum": "jt.maximum(a, b)", "minimum": "jt.minimum(a, b)",
    "eq": "a == b", "ne": "a != b", "lt": "a < b", "le": "a <= b", "gt": "a > b", "ge": "a >= b",
    "logical_and": "jt.logical_and(a, b)", "logical_or": "jt.logical_or(a, b)",
    "logical_xor": "jt.logical_xor(a, b)", "bitwise_and": "jt.bitwise_and(a, b)",
    "bitwise_or": "jt.bitwise_or(a, b)", "bitwise_xor": "jt.bitwise_xor(a, b)",
    "left_shift": "a << b", "right_shift": "a >> b",
}
BINARY_DTYPES = {
    "add": NUMERIC, "sub": NUMERIC, "mul": NUMERIC, "div": FLOATS, "floor_div": NUMERIC, "mod": NUMERIC,
    "pow": NUMERIC, "maximum": NUMERIC, "minimum": NUMERIC,
    **{op: ALL_DTYPES for op in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                                 "logical_xor")},
    **{op: ("bool",) + INTEGERS for op in ("bitwise_and", "bitwise_or", "bitwise_xor")},
    "left_shift": INTEGERS, "right_shift": INTEGERS,
}
SMOKE_DTYPES = ("float32", "int32", "bool")


def _shift_counts(dtype):
    bits = np.dtype(dtype).itemsize * 8
    return lambda shape: arrays(dtype, shape, bound=None).map(lambda x: (x % bits).astype(dtype))


def _small_exponents(dtype):
    return lambda shape: arrays(dtype, shape).map(lambda x: (x % 7 - 1).astype(dtype))


def elementwise_properties():
    found = []
    for op in UNARY_FLOAT_OPS:
        for dtype in FLOATS:
            found.append(Property(f"elementwise.{op}[{dtype}]", "elementwise",
                                  _unary(op, dtype, "jt.{op}(a)"), checks.against_reference, (dtype,),
                                  smoke=dtype == "float32" and op in ("exp", "tanh", "floor")))
    for op, dtypes in (("neg", NUMERIC), ("abs", NUMERIC), ("logical_not", ALL_DTYPES),
                       ("bitwise_not", ("bool",) + INTEGERS)):
        for dtype in dtypes:
            found.append(Property(f"elementwise.{op}[{dtype}]", "elementwise",
                                  _unary(op, dtype, "jt.{op}(a)"), checks.against_reference, (dtype,),
                                  smoke=dtype in SMOKE_DTYPES and op == "neg"))
    for op, source in BINARY_SOURCES.items():
        for dtype in BINARY_DTYPES[op]:
            second = None
            if op in ("left_shift", "right_shift"):
                second = _shift_counts(dtype)
            elif op == "pow" and dtype not in FLOATS:
                second = _small_exponents(dtype)
            found.append(Property(f"elementwise.{op}[{dtype}]", "elementwise",
                                  _binary(op, dtype, source, second), checks.against_reference,
                                  (dtype,), smoke=dtype in SMOKE_DTYPES and op in ("add", "mul", "lt")))
    for dtype in ALL_DTYPES:
        found.append(Property(f"elementwise.select[{dtype}]", "elementwise", _select(dtype),
                              checks.against_reference, (dtype,), smoke=dtype == "float32"))
    for source, target in CAST_PAIRS:
        found.append(Property(f"elementwise.cast[{source}->{target}]", "elementwise",
                              _cast(source, target), checks.against_reference, (source, target),
                              smoke=(source, target) in (("float32", "int32"), ("int32", "float32"))))
    return found


# every dtype to and from the pivots float32, int32 and bool
CAST_PAIRS = sorted({(s, t) for s in ALL_DTYPES for t in ALL_DTYPES
                     if s != t and ({s, t} & {"float32", "int32", "bool"})})


@st.composite
def _select(draw, dtype):
    shape = draw(shapes())
    return Program("jt.where(c, a, b)", [draw(arrays(dtype, shape)), draw(arrays(dtype, shape)),
                                         draw(arrays("bool", shape))], "exact")


@st.composite
def _cast(draw, dtype, target):
    shape = draw(shapes())
    if dtype in FLOATS and target not in FLOATS and target != "bool":
        low = 0 if target == "uint8" else -100
        value = draw(arrays(dtype, shape, bound=100.0)).clip(low, 100)
    else:
        value = draw(arrays(dtype, shape, edges=target in FLOATS + ("bool",)))
    return Program(f"a.cast('{target}')", [value], "elementwise")


@st.composite
def _reduction(draw, op, dtype):
    shape = draw(shapes(max_dims=3))
    axes = draw(axes_subsets(len(shape)))
    if op in ("max", "min"):  # over a zero-size dimension they raise (errors.empty_max)
        reduced = graph.normalise_axes(axes, len(shape))
        shape = tuple(max(size, 1) if axis in reduced else size for axis, size in enumerate(shape))
    keepdims = draw(st.booleans())
    if op in ("sum", "prod") and dtype in FLOATS:
        bound = 1.5 if op == "prod" else 100.0
        value = draw(arrays(dtype, shape, bound=bound))
        if op == "prod":
            value = np.where(np.abs(value) < 0.5, 1, value).astype(dtype)
    else:
        value = draw(arrays(dtype, shape))
    tolerance = "accumulated" if op in ("sum", "prod") else "exact"
    return Program(f"a.{op}(dims={axes!r}, keepdims={keepdims})", [value], tolerance)


def reduce_properties():
    found = []
    for op in ("sum", "prod", "max", "min"):
        for dtype in NUMERIC:
            found.append(Property(f"reduce.{op}[{dtype}]", "reduce", _reduction(op, dtype),
                                  checks.against_reference, (dtype,),
                                  smoke=dtype in ("float32", "int32") and op in ("sum", "max")))
    for op in ("any", "all"):
        found.append(Property(f"reduce.{op}[bool]", "reduce", _reduction(op, "bool"),
                              checks.against_reference, ("bool",), smoke=op == "any"))
    return found


@st.composite
def _broadcast(draw, dtype):
    target = draw(shapes(max_dims=3))
    source = draw(broadcastable(target))
    return Program(f"jt.broadcast_to(a, {target!r})", [draw(arrays(dtype, source))], "exact")


@st.composite
def _reindex(draw, dtype):
    source_shape = draw(shapes(min_dims=1, max_dims=3))
    out_shape = draw(shapes(min_dims=1, max_dims=3))
    exprs = draw(affine_index_map(source_shape, len(out_shape)))
    conditions = []
    if draw(st.booleans()):
        axis = draw(st.integers(0, len(out_shape) - 1))
        conditions.append(f"i{axis} == {draw(st.integers(0, 2))}")
    overflow = draw(arrays(dtype, ())).item()
    source = (f"a.reindex({list(out_shape)!r}, {exprs!r}, overflow_value={overflow!r}, "
              f"overflow_conditions={conditions!r})")
    return Program(source.replace("nan", "float('nan')").replace("inf", "float('inf')"),
                   [draw(arrays(dtype, source_shape))], "exact")


@st.composite
def _gather(draw, dtype):
    source_shape = draw(shapes(min_dims=1, max_dims=2, nonempty=True))
    count = draw(st.integers(0, 6))
    indices = np.array(draw(st.lists(st.integers(-source_shape[0], source_shape[0] - 1),
                                     min_size=count, max_size=count)), dtype=np.int32)
    return Program("a[b]", [draw(arrays(dtype, source_shape)), indices], "exact")


@st.composite
def _reindex_reduce(draw, op, dtype):
    source_shape = draw(shapes(min_dims=1, max_dims=2))
    out_shape = draw(shapes(min_dims=1, max_dims=2, nonempty=True))
    exprs = draw(affine_index_map(out_shape, len(source_shape)))
    bounded = dtype in FLOATS and op in ("sum", "prod")
    value = draw(arrays(dtype, source_shape, bound=2.0 if bounded else None))
    return Program(f"a.reindex_reduce({op!r}, {list(out_shape)!r}, {exprs!r})", [value],
                   "accumulated" if op in ("sum", "prod") else "exact")


def index_properties():
    found = []
    for dtype in ALL_DTYPES:
        smoke = dtype in SMOKE_DTYPES
        found.append(Property(f"index.broadcast_to[{dtype}]", "index", _broadcast(dtype),
                              checks.against_reference, (dtype,), smoke=smoke))
        found.append(Property(f"index.reindex[{dtype}]", "index", _reindex(dtype),
                              checks.against_reference, (dtype,), smoke=smoke))
        found.append(Property(f"index.gather[{dtype}]", "index", _gather(dtype),
                              checks.against_reference, (dtype, "int32"), smoke=dtype == "float32"))
    for op in ("sum", "max", "min", "prod"):
        for dtype in ("float32", "float64", "int32", "int64"):
            found.append(Property(f"index.reindex_reduce.{op}[{dtype}]", "index",
                                  _reindex_reduce(op, dtype), checks.against_reference, (dtype,),
                                  smoke=dtype == "float32" and op in ("sum", "max")))
    return found


@st.composite
def _sibling_reductions(draw, op, dtype):
    """Reductions of one domain and axes over shared inputs, with an element-wise value
    that a reduction sums and a later kernel reads, realised together: on a backend whose
    `FusionCosts.shared_reduction_loops` is set, one kernel with several reducing stores
    and an element-wise store."""
    shape = draw(shapes(min_dims=1, max_dims=3, nonempty=op == "max"))
    axes = draw(axes_subsets(len(shape)))
    keepdims = draw(st.booleans())
    a, b = (draw(arrays(dtype, shape, bound=2.0)) for _ in range(2))
    reduce = f".{op}(dims={axes!r}, keepdims={keepdims})"
    source = (f"[(e := jt.exp(a * 0.25)){reduce}, (e * b){reduce}, (a - b){reduce}, "
              f"(b * b){reduce}, e * 2.0]")
    return Program(source, [a, b], "accumulated")


def fusion_properties():
    found = [Property(f"fusion.random_dag[{dtype}]", "fusion", random_dag(dtype),
                      checks.fused_unfused_reference, (dtype,), smoke=dtype == "float32")
             for dtype in ("float32", "float64")]
    for op in ("sum", "max"):
        found += [Property(f"fusion.sibling_reductions.{op}[{dtype}]", "fusion", _sibling_reductions(op, dtype),
                           checks.fused_unfused_reference, (dtype,), smoke=dtype == "float32" and op == "sum")
                  for dtype in ("float32", "float64")]
    return found


GRAD_FUNCTIONS = {
    "exp": "jt.exp(a)", "log": "jt.log(a * a + 0.5)", "tanh": "jt.tanh(a)", "sigmoid": "jt.sigmoid(a)",
    "sin": "jt.sin(a)", "sqrt": "jt.sqrt(a * a + 0.5)", "erf": "jt.erf(a)", "mul": "a * b",
    "div": "a / (b * b + 0.5)", "pow": "(a * a + 0.5) ** b", "maximum": "jt.maximum(a, b)",
    "sum": "(a * b).sum(0)", "max": "(a + b * 0.01).max(-1)", "prod": "(a * b).prod(1)",
    "matmul": "a @ b.transpose()", "reindex": "a.reindex([3, 2], ['i1', 'i0 - 1'])[1:] * b[:, :1]",
    "gather": "a[jt.array([1, 0, 1])] * b[0]", "softmax": "(a.exp() / a.exp().sum(1, keepdims=True)) * b",
}


@st.composite
def _distinct_values(draw, dtype, count):
    """``count`` values at least 0.2 apart (no ties: finite differences need smooth points)."""
    order = draw(st.permutations(range(count)))
    jitter = draw(st.lists(st.floats(-0.05, 0.05), min_size=count, max_size=count))
    return np.array([0.25 * k - 1.5 + j for k, j in zip(order, jitter)], dtype=dtype)


@st.composite
def _grad_program(draw, body, dtype, order=1, smooth=False):
    if smooth:
        values = draw(_distinct_values(dtype, 12))
        a, b = values[:6].reshape(2, 3), values[6:].reshape(2, 3)
    else:
        a = draw(arrays(dtype, (2, 3), bound=1.5))
        b = draw(arrays(dtype, (2, 3), bound=1.5))
    source = f"jt.grad(({body}).sum(), [a, b])"
    if order == 2:
        source = f"jt.grad(jt.grad(({body}).sum(), [a])[0].sum(), [a, b])"
    return Program(source, [a, b], "accumulated")


def grad_properties():
    found = []
    for name, body in GRAD_FUNCTIONS.items():
        for dtype in ("float32", "float64"):
            found.append(Property(f"grad.{name}[{dtype}]", "grad", _grad_program(body, dtype),
                                  checks.against_reference, (dtype,),
                                  smoke=dtype == "float32" and name in ("mul", "sum", "matmul")))
        found.append(Property(f"grad.finite_differences.{name}[float64]", "grad",
                              _grad_program(body, "float64", smooth=True), checks.finite_differences,
                              ("float64",)))
    for name in ("exp", "tanh", "mul", "softmax", "matmul"):
        found.append(Property(f"grad.second_order.{name}[float64]", "grad",
                              _grad_program(GRAD_FUNCTIONS[name], "float64", order=2),
                              checks.against_reference, ("float64",), smoke=name == "tanh"))
    return found


def _roundtrip(size, backend):
    handle = plugins.registry().handle(backend)
    data = np.frombuffer(np.random.default_rng(size).bytes(size), dtype=np.uint8)
    first, second = handle.allocate(size), handle.allocate(size)
    try:
        handle.copy_from_host(first, data)
        handle.copy_device_to_device(second, first, size)
        handle.synchronize()
        back = np.zeros(size, dtype=np.uint8)
        handle.copy_to_host(second, back)
        assert np.array_equal(back, data), (
            f"{size} bytes host->device->device->host differ at byte "
            f"{int(np.argmax(back != data))}")
    finally:
        handle.free(first)
        handle.free(second)


def _no_leak(cycles, backend):
    handle = plugins.registry().handle(backend)
    size = 8 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(cycles):
        buffer = handle.allocate(size)
        handle.copy_from_host(buffer, np.ones(size, dtype=np.uint8))
        handle.free(buffer)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 * 1024, f"peak memory grew by {grown_kib // 1024} MiB over {cycles} cycles"


def memory_properties(tier):
    largest = (300 << 20) if tier == "full" else (64 << 20)
    sizes = st.one_of(st.integers(0, 4096), st.integers(4097, 1 << 22),
                      st.sampled_from([0, 1, 63, 64, 65, largest]))
    return [Property("memory.roundtrip", "memory", sizes, _roundtrip, smoke=True),
            Property("memory.no_leak", "memory", st.integers(20, 60), _no_leak)]


ERROR_PROGRAMS = {
    "shape_mismatch": "a + jt.zeros((7, 5))",
    "bad_axis": "a.sum(5)",
    "bad_reshape": "a.reshape(4, 4)",
    "bad_index_expression": "a.reindex([2], ['i0 +* 2'])",
    "index_out_of_range": "a[10]",
    "float_bitwise": "jt.bitwise_and(a, a)",
    "empty_max": "a[:0].max(0)",
    # an index computed by a kernel: the realisation raises (a device-side check), not reads 0
    "index_out_of_range_on_device": "jt.arange(6)[(a[0, :2] * 0 + 9).int32()]",
    "class_out_of_range_on_device": "jt.nn.cross_entropy(a, (a[:, 0] * 0 + 3).int32())",
}


@st.composite
def _convolution(draw, dtype, with_grads):
    """``jt.nn.conv2d`` over a drawn geometry (stride, padding, dilation, groups), with or
    without a bias; with gradients of a weighted sum with respect to every operand.
    Backends that claim the ``conv2d`` library ops run them; the reference runs their
    meta-op composition."""
    groups = draw(st.sampled_from([1, 2]))
    channels, out_channels = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))), (draw(st.integers(1, 2)),) * 2
    padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    size = [draw(st.integers(dilation[0] * (k - 1) + 1, 9)) for k in kernel]
    x = draw(arrays(dtype, (draw(st.integers(1, 2)), channels, *size), bound=2.0))
    w = draw(arrays(dtype, (out_channels, channels // groups, *kernel), bound=2.0))
    inputs = [x, w] + ([draw(arrays(dtype, (out_channels,), bound=2.0))] if draw(st.booleans()) else [])
    names = "abc"[:len(inputs)]
    call = f"jt.nn.conv2d(a, b, {'c' if len(inputs) == 3 else None}, {stride}, {padding}, {dilation}, {groups})"
    if not with_grads:
        return Program(call, inputs, "accumulated")
    return Program(f"[{call}] + jt.grad(({call} * {call}.detach()).sum(), [{', '.join(names)}])", inputs,
                   "accumulated")


@st.composite
def _residual_convolution(draw, dtype):
    """A biased ``jt.nn.conv2d`` plus a value of its output's shape, with or without a ReLU
    after, without gradients tracked. Backends that claim ``conv2d_bias_add`` (and
    ``conv2d_bias_add_relu``) run the addition as the convolution's post-op; the reference
    runs the composition. Finite values, as the convolution properties draw (oneDNN's
    ReLU post-op turns a NaN into 0, docs/models.md)."""
    kernel, groups = draw(st.sampled_from([(1, 1), (3, 1), (3, 2)]))
    stride, padding = draw(st.integers(1, 2)), kernel // 2
    channels, size = groups * draw(st.integers(1, 3)), draw(st.integers(kernel, 8))
    out_channels = groups * draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    out_size = (size + 2 * padding - kernel) // stride + 1
    inputs = [draw(arrays(dtype, (batch, channels, size, size), bound=2.0)),
              draw(arrays(dtype, (out_channels, channels // groups, kernel, kernel), bound=2.0)),
              draw(arrays(dtype, (out_channels,), bound=2.0)),
              draw(arrays(dtype, (batch, out_channels, out_size, out_size), bound=4.0))]
    call = f"jt.nn.conv2d(a, b, c, {stride}, {padding}, 1, {groups}) + d"
    return Program(f"jt.no_grad()(lambda: {'jt.nn.relu(' + call + ')' if draw(st.booleans()) else call})()", inputs,
                   "accumulated")


@st.composite
def _joined_convolutions(draw, dtype):
    """The channel concatenation of two to three 1x1 convolutions of one input (with a
    max pooling of it, sometimes), without gradients tracked. Backends that claim
    ``concat`` run it as a library kernel; the reference runs the composition."""
    batch, channels, size = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 6))
    widths = [draw(st.sampled_from([1, 3, 16, 32])) for _ in range(draw(st.integers(2, 3)))]
    inputs = [draw(arrays(dtype, (batch, channels, size, size), bound=2.0))]
    inputs += [draw(arrays(dtype, (width, channels, 1, 1), bound=2.0)) for width in widths]
    names = "bcd"[:len(widths)]
    parts = [f"jt.nn.conv2d(a, {name})" for name in names]
    if draw(st.booleans()):
        parts.append("jt.nn.max_pool2d(a, 3, 1, 1)")
    return Program(f"jt.no_grad()(lambda: jt.concat([{', '.join(parts)}], 1))()", inputs, "accumulated")


@st.composite
def _pooling(draw, dtype, op):
    """``jt.nn.max_pool2d`` or ``jt.nn.avg_pool2d`` over a drawn geometry (kernel, stride,
    padding, dilation for the maximum, ``ceil_mode``, ``count_include_pad`` for the
    average) of an input that may hold nan and infinities (a maximum's window with a nan
    gives nan). Backends that claim the ``max_pool2d`` / ``avg_pool2d`` library ops run
    them (for inference: the input is taken with ``stop_grad``); the reference runs their
    meta-op compositions."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)),) * 2 if op == "max" else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = [draw(st.integers(dilation[0] * (k - 1) + 1, 9)) for k in kernel]
    x = draw(edge_arrays(dtype, (draw(st.integers(1, 2)), draw(st.integers(1, 20)), *size), bound=4.0))
    if op == "max":
        return Program(f"jt.nn.max_pool2d(a.stop_grad(), {kernel}, {stride}, {padding}, {dilation}, "
                       f"{draw(st.booleans())})", [x])
    return Program(f"jt.nn.avg_pool2d(a.stop_grad(), {kernel}, {stride}, {padding}, {draw(st.booleans())}, "
                   f"{draw(st.booleans())})", [x])


def library_properties():
    return [Property(f"library.conv2d{'.grad' if grads else ''}[{dtype}]", "library",
                     _convolution(dtype, grads), checks.against_reference, (dtype,),
                     smoke=dtype == "float32")
            for grads in (False, True) for dtype in ("float32", "float64")] + [
        Property(f"library.{op}_pool2d[{dtype}]", "library", _pooling(dtype, op), checks.against_reference, (dtype,),
                 smoke=dtype == "float32") for op in ("max", "avg") for dtype in ("float32", "float64")] + [
        Property(f"library.conv2d_bias_add[{dtype}]", "library", _residual_convolution(dtype),
                 checks.against_reference, (dtype,), smoke=dtype == "float32") for dtype in ("float32", "float64")] + [
        Property(f"library.concat[{dtype}]", "library", _joined_convolutions(dtype), checks.against_reference,
                 (dtype,), smoke=dtype == "float32") for dtype in ("float32", "float64")]


def error_properties():
    return [Property(f"errors.{name}", "errors", st.just(Program(source, [np.zeros((2, 3), np.float32)])),
                     checks.raises_metajit_error, ("float32",), smoke=True)
            for name, source in ERROR_PROGRAMS.items()]


_ERF = np.vectorize(math.erf, otypes=[np.float64])
NUMPY_FUNCTIONS = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "erf": _ERF,
    "floor": np.floor, "ceil": np.ceil, "round": np.rint,
}


@st.composite
def _extreme_unary(draw, op, dtype):
    return Program(f"jt.{op}(a)", [draw(extreme_arrays(dtype, draw(shapes(max_dims=1))))])


def accuracy_properties():
    """Each float element-wise op against numpy over the dtype's whole range (subnormals,
    huge values, nan, infinities): an oracle independent of metajit's own definitions."""
    return [Property(f"accuracy.{op}[{dtype}]", "accuracy", _extreme_unary(op, dtype),
                     checks.against_numpy(function), (dtype,), smoke=dtype == "float32" and op in ("exp", "log1p"))
            for op, function in NUMPY_FUNCTIONS.items() for dtype in ("float32", "float64")]


def all_properties(tier="standard"):
    """Every property, in family order."""
    return (elementwise_properties() + accuracy_properties() + reduce_properties() + index_properties()
            + fusion_properties() + grad_properties() + library_properties() + memory_properties(tier)
            + error_properties())
