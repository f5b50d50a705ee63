"""Hypothesis strategies for conformance examples: shapes, dtypes, edge values, index maps,
random fused DAGs. An example is a `Program`: metajit source over inputs ``a, b, c...``."""
import dataclasses

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOATS = ("float16", "float32", "float64")
SIGNED = ("int8", "int16", "int32", "int64")
INTEGERS = ("uint8",) + SIGNED
NUMERIC = INTEGERS + FLOATS
ALL_DTYPES = ("bool",) + NUMERIC
SIDES = (0, 1, 2, 3, 5)


@dataclasses.dataclass
class Program:
    """``source`` evaluated with ``jt``, ``np`` and the ``inputs`` bound to a, b, c...

    ``tolerance`` names the comparison: ``"exact"``, ``"elementwise"`` or ``"accumulated"``
    (sums and products, where the order of accumulation may differ).
    """

    source: str
    inputs: list
    tolerance: str = "elementwise"

    def names(self):
        return "abcdefgh"[:len(self.inputs)]


def shapes(min_dims=0, max_dims=3, nonempty=False):
    """Small shapes, including scalars and 0-size dims (unless ``nonempty``)."""
    sides = st.sampled_from([s for s in SIDES if s or not nonempty])
    return st.lists(sides, min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable(draw, shape):
    """A shape that broadcasts with ``shape``: trailing dims kept or set to 1."""
    keep = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - keep:]
    return tuple(1 if draw(st.booleans()) else side for side in tail)


def elements(dtype, edges=True, bound=None):
    """Element values of ``dtype``; floats include nan, +-inf and -0.0 when ``edges``."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if bound is None else (max(info.min, -bound), min(info.max, bound))
        return st.integers(int(low), int(high))
    width = dtype.itemsize * 8
    if bound is not None:
        return st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False)
    return st.floats(width=width, allow_nan=edges, allow_infinity=edges)


def arrays(dtype, shape, edges=True, bound=None):
    """numpy arrays of ``dtype`` and ``shape``."""
    return hnp.arrays(np.dtype(dtype), shape, elements=elements(dtype, edges, bound))


EDGE_FLOATS = st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 0.0])


def edge_arrays(dtype, shape, bound):
    """Arrays whose floats are bounded by ``bound`` in magnitude but also include nan, +-inf
    and -0.0 (keeps transcendental results comparable while testing the edges);
    integers and bools span their whole range."""
    if dtype not in FLOATS:
        return arrays(dtype, shape)
    width = np.dtype(dtype).itemsize * 8
    values = st.one_of(st.floats(-bound, bound, width=width), EDGE_FLOATS)
    return hnp.arrays(np.dtype(dtype), shape, elements=values)


def extreme_arrays(dtype, shape):
    """Float arrays drawn over the dtype's whole range: subnormals, huge values, nan, +-inf."""
    width = np.dtype(dtype).itemsize * 8
    return hnp.arrays(np.dtype(dtype), shape, elements=st.one_of(st.floats(width=width), EDGE_FLOATS))


def axes_subsets(ndim):
    """A subset of axes (as negative or positive ints) or None for all."""
    if ndim == 0:
        return st.just(None)
    return st.one_of(st.none(), st.lists(st.integers(0, ndim - 1), unique=True).map(
        lambda axes: tuple(axes)), st.integers(-ndim, -1))


@st.composite
def affine_index_map(draw, source_shape, out_ndim):
    """One C expression per source dim: ``k*i<j> + offset`` (may read out of range) or a constant."""
    exprs = []
    for side in source_shape:
        if out_ndim and draw(st.booleans()):
            axis = draw(st.integers(0, out_ndim - 1))
            scale = draw(st.sampled_from([1, 1, -1, 2]))
            offset = draw(st.integers(-2, max(side, 1)))
            exprs.append(f"i{axis}*{scale}+{offset}" if offset >= 0 else f"i{axis}*{scale}{offset}")
        else:
            exprs.append(str(draw(st.integers(-1, max(side, 1)))))
    return exprs


UNARY_CHAIN = ["({x}).exp()", "({x}).tanh()", "({x}).sin()", "({x}).abs()", "-({x})",
               "({x}).sigmoid()", "({x}) * 0.5", "({x}).relu()"]
BINARY_CHAIN = ["({x}) + ({y})", "({x}) * ({y})", "({x}) - ({y})", "jt.maximum({x}, {y})",
                "jt.where(({x}) > ({y}), {x}, {y})"]
SHAPE_CHAIN = ["({x}).transpose()", "({x}).flip(0)", "jt.pad(({x})[1:], (0, 0, 1, 0))",
               "jt.broadcast_to(({x}).sum(0, keepdims=True), ({side}, {side}))",
               "jt.broadcast_to(({x}).max(-1, keepdims=True), ({side}, {side}))",
               "({x}).reindex([{side}, {side}], ['i0', '(i1+1)%{side}'])",
               "jt.concat([({x})[:, :1], ({x})[:, 1:]], dim=1)"]


@st.composite
def random_dag(draw, dtype="float32"):
    """A random program mixing element-wise, index and reduce meta-ops over 2-3 inputs of
    one square-ish shape, so intermediate values are shared and fused in varied ways."""
    side = draw(st.sampled_from([1, 2, 3, 4]))
    count = draw(st.integers(2, 3))
    inputs = [draw(arrays(dtype, (side, side), bound=3.0)) for _ in range(count)]
    names = "abc"[:count]
    pool = list(names)
    for _ in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["unary", "binary", "shape"]))
        x = draw(st.sampled_from(pool))
        if kind == "unary":
            term = draw(st.sampled_from(UNARY_CHAIN)).format(x=x)
        elif kind == "binary":
            y = draw(st.sampled_from(pool))
            term = draw(st.sampled_from(BINARY_CHAIN)).format(x=x, y=y)
        else:
            term = draw(st.sampled_from(SHAPE_CHAIN)).format(x=x, side=side)
        pool.append(term)
    final = " + ".join(f"({term})" for term in pool[-2:])
    return Program(f"({final}).sum(1)", inputs, "accumulated")
