"""Lazy graph nodes and the meta-op constructors with their shape and dtype rules.

A `Node` is one meta-op application: ``op``, ``inputs`` (Nodes), ``attrs``
(hashable parameters), ``shape`` and ``dtype``. Leaves are host arrays
(``"array"``), scalars (``"constant"``) and loop coordinates (``"index"``).
A realised node holds a device ``buffer``; when no gradient can flow through it,
it forgets its inputs so the graph behind it can be freed.

Users never build Nodes directly: `metajit.Var` wraps one, and the front end
calls the constructors here.
"""
import numpy as np

from . import dtypes, indexexpr, opset
from ..errors import MetajitDtypeError, MetajitShapeError, MetajitValueError
from ..flags import thread_flags


class Node:
    """One meta-op application in the lazy graph (see the module docstring)."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "buffer", "host_data",
                 "requires_grad", "grad_boundary", "holder", "__weakref__")

    def __init__(self, op, inputs, attrs, shape, dtype, requires_grad=False, host_data=None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = shape
        self.dtype = dtype
        self.buffer = None
        self.host_data = host_data
        self.requires_grad = requires_grad
        # True for detached/assigned values: a gradient leaf even though it has inputs.
        self.grad_boundary = False
        # a weak reference to the last Var made for this node (unset on nodes a template made)
        self.holder = None

    def __getstate__(self):
        """Pickled without ``holder`` (a Var of this process; a weak reference does not pickle)."""
        return None, {name: getattr(self, name) for name in Node.__slots__[:-2] if hasattr(self, name)}

    @property
    def needs_inputs_for_grad(self):
        """Whether autodiff may still traverse into this node's inputs."""
        return self.requires_grad and not self.grad_boundary

    @property
    def is_realised(self):
        """True once the node's value exists (on a device or as host data)."""
        # host data first: an upload sets ``buffer`` before it clears ``host_data``, so
        # another thread never sees both unset in between
        return self.host_data is not None or self.buffer is not None

    def __repr__(self):
        return f"Node({self.op}, shape={self.shape}, dtype={self.dtype})"


def numel(shape):
    """Number of elements of ``shape``."""
    count = 1
    for size in shape:
        count *= size
    return count


def grad_mode():
    """Whether values computed now track gradients (outside ``no_grad``)."""
    return not thread_flags.no_grad


def derived_requires_grad(dtype):
    """Jittor's rule: every float value computed outside ``no_grad`` is differentiable, so
    ``jt.grad(loss, f)`` is right for any float Var ``f`` in the graph, even one made from
    integers or from stopped values (gradients still do not pass into those)."""
    return not thread_flags.no_grad and dtypes.is_float(dtype)


def array_leaf(data):
    """A leaf holding a host numpy array (copied by the caller when needed)."""
    dtype = dtypes.as_dtype(data.dtype)
    return Node("array", (), (), tuple(data.shape), dtype,
                requires_grad=dtypes.is_float(dtype) and grad_mode(), host_data=data)


_converted_constants = {}  # (type, value, dtype) -> value as dtype (learning rates, 0, 1, 0.5...)


def constant_leaf(value, dtype):
    """A 0-d leaf holding the scalar ``value`` as ``dtype``; fused as a literal."""
    key = (type(value), value, dtype)
    converted = _converted_constants.get(key)
    if converted is None:
        converted = dtype.numpy.type(value).item()
        # -0.0 equals 0.0 and nan equals nothing: neither may share an entry
        if not (type(value) is float and (value == 0.0 or value != value)) and len(_converted_constants) < 4096:
            _converted_constants[key] = converted
    return Node("constant", (), (converted,), (), dtype)


def index_leaf(shape, axis, dtype=dtypes.int32):
    """A leaf whose element at position ``(i0, i1, ...)`` is ``i<axis>``."""
    return Node("index", (), (axis,), tuple(shape), dtype)


def elementwise(op, inputs, target_dtype=None):
    """Apply element-wise meta-op ``op``; inputs must share a shape (and dtype)."""
    shape = inputs[0].shape
    for other in inputs:
        if other.shape != shape:
            raise MetajitShapeError(f"{op}: shapes {[i.shape for i in inputs]} differ; "
                                    "broadcast them first")
    operands = inputs[1:] if op == "select" else inputs
    if op == "select" and inputs[0].dtype != dtypes.bool_:
        raise MetajitDtypeError(f"select: condition must be bool, got {inputs[0].dtype}")
    first_dtype = operands[0].dtype
    for other in operands:
        if other.dtype is not first_dtype and other.dtype != first_dtype:
            raise MetajitDtypeError(f"{op}: dtypes {[str(i.dtype) for i in operands]} differ; "
                                    "cast them first")
    dtype = opset.result_dtype(op, [i.dtype for i in operands], target_dtype)
    attrs = (dtype,) if op == "cast" else ()
    return Node(op, tuple(inputs), attrs, shape, dtype,
                requires_grad=derived_requires_grad(dtype))


def select_below(position, offset, below, above):
    """``select(position < offset, below, above)`` for an int32 ``position`` index leaf and
    ``below``/``above`` of its shape and one dtype: a concatenation's select tree, built
    without `elementwise`'s checks (a DenseNet forward builds 600 of these nodes)."""
    shape = position.shape
    bound = Node("broadcast_to", (constant_leaf(offset, position.dtype),), (), shape, position.dtype)
    condition = Node("lt", (position, bound), (), shape, dtypes.bool_)
    return Node("select", (condition, below, above), (), shape, below.dtype,
                requires_grad=derived_requires_grad(below.dtype))


_normalised_axes = {}  # (axes, ndim) -> result, for hashable valid arguments


def normalise_axes(axes, ndim, op="reduce"):
    """Sorted tuple of non-negative axes; accepts None (all), an int, or a sequence."""
    try:
        return _normalised_axes[axes, ndim]
    except (KeyError, TypeError):  # not seen yet, or a list
        pass
    result = _normalise_axes(axes, ndim, op)
    if type(axes) in (int, tuple, type(None)) and len(_normalised_axes) < 4096:
        _normalised_axes[axes, ndim] = result
    return result


def _normalise_axes(axes, ndim, op):
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    result = set()
    for axis in axes:
        if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < max(ndim, 1):
            raise MetajitShapeError(f"{op}: axis {axis} is out of range for {ndim}-d input")
        result.add(int(axis) % ndim if ndim else 0)
    return tuple(sorted(result)) if ndim else ()


def reduce(op, x, axes, keepdims=False):
    """Reduce ``x`` with ``op`` (sum/prod/max/min/any/all) over ``axes``."""
    op = opset.normalise_reduce_op(op)
    axes = normalise_axes(axes, len(x.shape), op)
    dtype = x.dtype
    is_bool = dtype is dtypes.bool_ or dtype == dtypes.bool_
    if op in ("sum", "prod") and is_bool:
        raise MetajitDtypeError(f"{op} of bool: cast to an integer dtype first")
    if op in ("any", "all"):
        if not is_bool:
            raise MetajitDtypeError(f"{op} needs a bool input, got {x.dtype}")
        dtype = dtypes.bool_
    if keepdims:
        shape = tuple([1 if a in axes else s for a, s in enumerate(x.shape)])
    else:
        shape = tuple([s for a, s in enumerate(x.shape) if a not in axes])
    return Node("reduce", (x,), (op, axes, keepdims), shape, dtype,
                requires_grad=derived_requires_grad(dtype) and op in ("sum", "prod", "max", "min"))


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` with numpy's right-aligned rule."""
    if shape == x.shape:
        return x
    shape = tuple(int(s) for s in shape)
    return broadcast_to_tuple(x, shape)


def broadcast_to_tuple(x, shape):
    """`broadcast_to` for a ``shape`` that is already a tuple of ints."""
    if shape == x.shape:
        return x
    if x.shape and (len(shape) < len(x.shape) or any(
            xs != s and xs != 1 for xs, s in zip(x.shape[::-1], shape[::-1]))):
        raise MetajitShapeError(f"cannot broadcast shape {x.shape} to {shape}")
    return Node("broadcast_to", (x,), (), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype))


def _check_exprs(kind, exprs, count, what):
    if len(exprs) != count:
        raise MetajitShapeError(f"{kind}: {len(exprs)} index expressions given for {what} "
                                f"with {count} dims; one per dimension is needed")


def _simplify_all(exprs, domain):
    return tuple(indexexpr.simplify(e, domain) for e in exprs)


def simplified_reindex(shape, exprs, conditions=()):
    """``(exprs, conditions, is identity)`` of a reindex onto ``shape``, simplified once per
    distinct question (a model's forward asks the same ones at every call)."""
    key = (shape, exprs, conditions)
    found = _reindexes.get(key)
    if found is None:
        simple = _simplify_all(exprs, shape)
        kept = tuple(c for c in _simplify_all(conditions, shape) if c != indexexpr.const(0))
        identity = not kept and simple == tuple(indexexpr.loop(a) for a in range(len(shape)))
        found = (simple, kept, identity)
        if len(_reindexes) > 8192:
            _reindexes.clear()
        _reindexes[key] = found
    return found


_reindexes = {}  # (shape, exprs, conditions) -> `simplified_reindex`'s answer


def reindex(x, shape, exprs, overflow_value=0, overflow_conditions=(), extras=()):
    """Gather: ``out[i] = x[exprs(i)]``, or ``overflow_value`` out of range / when a condition holds.

    ``exprs`` (one per dim of ``x``) and ``overflow_conditions`` are IndexExprs over the
    output indices; extras are integer Nodes read by ``@e<k>`` loads.
    """
    shape = tuple(map(int, shape))
    if shape and min(shape) < 0:
        raise MetajitShapeError(f"reindex: negative size in shape {shape}")
    _check_exprs("reindex", exprs, len(x.shape), f"input of shape {x.shape}")
    _check_extras("reindex", extras)
    exprs, conditions, identity = simplified_reindex(shape, tuple(exprs), tuple(overflow_conditions))
    value = _zero(x.dtype) if overflow_value == 0 and type(overflow_value) is int else \
        x.dtype.numpy.type(overflow_value).item()
    if identity and shape == x.shape and not extras:
        return x
    return Node("reindex", (x,) + tuple(extras), (exprs, value, conditions), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype))


def reindex_simplified(x, shape, simplified):
    """`reindex` of ``x`` onto the tuple of ints ``shape`` with zero overflow, given
    ``simplified`` = ``simplified_reindex(shape, exprs)`` for it (a caller that asks
    the same question at every call keeps the answer: a concatenation's pieces)."""
    exprs, conditions, identity = simplified
    if identity and shape == x.shape:
        return x
    return Node("reindex", (x,), (exprs, _zero(x.dtype), conditions), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype))


_permutations = {}  # (dims, output shape) -> simplified index expressions


def permute(x, dims):
    """``x`` with output dim k reading input dim ``dims[k]`` (a permutation of its dims)."""
    dims = tuple(dims)
    if dims == tuple(range(len(dims))):
        return x
    shape = tuple([x.shape[d] for d in dims])
    exprs = _permutations.get((dims, shape))
    if exprs is None:
        loops = [None] * len(dims)
        for out_axis, in_axis in enumerate(dims):
            loops[in_axis] = indexexpr.loop(out_axis)
        exprs = _simplify_all(loops, shape)
        if len(_permutations) < 4096:
            _permutations[dims, shape] = exprs
    return Node("reindex", (x,), (exprs, _zero(x.dtype), ()), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype))


_zeros = {}  # dtype -> its zero as a Python scalar (the overflow value of a reshape)


def _zero(dtype):
    zero = _zeros.get(dtype)
    if zero is None:
        zero = _zeros[dtype] = dtype.numpy.type(0).item()
    return zero


def reshape(x, shape):
    """``x`` read row-major as ``shape`` (a tuple of ints with ``x``'s element count): the
    reindex `reindex` would build, from memoised index expressions, without its checks."""
    if shape == x.shape:
        return x
    return Node("reindex", (x,), (indexexpr.reshape_exprs(x.shape, shape), _zero(x.dtype), ()), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype))


def reindex_reduce(op, x, shape, exprs, overflow_conditions=(), extras=()):
    """Scatter-reduce: ``out[exprs(i)] op= x[i]``; positions out of range or under a condition are skipped."""
    op = opset.normalise_reduce_op(op)
    shape = tuple(int(s) for s in shape)
    _check_exprs("reindex_reduce", exprs, len(shape), f"output of shape {shape}")
    _check_extras("reindex_reduce", extras)
    if op in ("any", "all") and x.dtype != dtypes.bool_:
        raise MetajitDtypeError(f"reindex_reduce {op} needs a bool input, got {x.dtype}")
    exprs = _simplify_all(exprs, x.shape)
    conditions = tuple(c for c in _simplify_all(overflow_conditions, x.shape)
                       if c != indexexpr.const(0))
    return Node("reindex_reduce", (x,) + tuple(extras), (op, exprs, conditions), shape, x.dtype,
                requires_grad=derived_requires_grad(x.dtype) and op != "any" and op != "all")


def library(name, inputs, attrs, shape):
    """An opaque library-op node (`metajit.library_ops`); its dtype is the first input's."""
    dtype = inputs[0].dtype
    return Node("library", tuple(inputs), (name, attrs), tuple(shape), dtype,
                requires_grad=derived_requires_grad(dtype))


def _check_extras(kind, extras):
    for k, node in enumerate(extras):
        if not dtypes.is_integer(node.dtype):
            raise MetajitValueError(f"{kind}: extra input @e{k} must be an integer Var, "
                                    f"got {node.dtype}")
