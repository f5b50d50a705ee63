"""Creating Vars: from data (``jt.array``), constants, ranges and random numbers.

Constant fills and ranges are meta-ops (constant / index leaves broadcast and
combined element-wise), so they fuse into their consumers; random numbers are
host-generated leaves, reproducible with `seed`.
"""
import numbers

import random as python_random

import numpy as np

from .ir import dtypes, graph
from .passes import batching, side_effects
from .errors import MetajitShapeError, MetajitValueError
from .flags import flags
from .var import Var

_generator = np.random.default_rng()


def seed(value):
    """Seed metajit's random numbers (``jt.seed`` / ``manual_seed``)."""
    global _generator
    _generator = np.random.default_rng(value)


def manual_seed(value):
    """PyTorch's ``torch.manual_seed``: seed metajit's random numbers and numpy's global
    generator, from which samplers and ``DataLoader(shuffle=True)`` draw when given no
    ``generator`` (as torch's draw from its own), so a PyTorch script's shuffles repeat."""
    seed(value)
    np.random.seed(value % 2 ** 32)


def set_global_seed(value):
    """Seed metajit, numpy's global generator and Python's ``random`` (Jittor's
    ``jt.set_global_seed`` / ``jt.set_seed``), so a script's data shuffling and
    initialisation repeat."""
    manual_seed(value)
    python_random.seed(value)


_NARROWED = {"float64": dtypes.float32, "int64": dtypes.int32}


def _default_dtype_for(data):
    if isinstance(data, (np.ndarray, np.generic)):
        dtype = dtypes.as_dtype(data.dtype)
        return _NARROWED.get(str(dtype), dtype) if flags.auto_convert_64_to_32 else dtype
    flat = np.asarray(data)
    if flat.dtype.kind == "f":
        return dtypes.DEFAULT_FLOAT
    if flat.dtype.kind in "iu":
        return dtypes.DEFAULT_INT
    if flat.dtype.kind == "b":
        return dtypes.bool_
    raise MetajitValueError(f"cannot make a Var from {type(data).__name__} with numpy dtype {flat.dtype}")


def array_node(data, dtype=None):
    """A leaf node holding a copy of ``data`` (Var, numpy array, torch tensor, list, scalar)."""
    if isinstance(data, Var):
        from .math_ops import cast_node
        node = data._node if dtype is None else cast_node(data._node, dtypes.as_dtype(dtype))
        return graph.elementwise("cast", [node], node.dtype)
    if hasattr(data, "detach") and hasattr(data, "numpy") and not isinstance(data, np.ndarray):
        data = data.detach().cpu().numpy()
    if isinstance(data, (list, tuple)) and any(isinstance(v, Var) for v in _flatten(data)):
        data = [v.numpy() if isinstance(v, Var) else v for v in data]
    target = dtypes.as_dtype(dtype) if dtype is not None else _default_dtype_for(data)
    try:
        host = np.array(data, dtype=target.numpy, copy=True, order="C")
    except (ValueError, TypeError) as error:
        raise MetajitValueError(f"cannot make a Var from this data: {error}") from None
    return graph.array_leaf(host)


def _flatten(data):
    for value in data:
        if isinstance(value, (list, tuple)):
            yield from _flatten(value)
        else:
            yield value


def _trainable(var):
    """Created float Vars track gradients (Jittor: differentiable unless stop_grad); they
    are leaves (PyTorch's ``jt.ones(3).is_leaf``), not results of the ops that built them."""
    var._node.requires_grad = dtypes.is_float(var.dtype) and not flags.no_grad
    var._node.grad_boundary = True
    return var


def array(data, dtype=None):
    """A Var holding a copy of ``data``.

    Python floats become float32, ints int32, bools bool; numpy arrays keep their
    dtype. Example: ``jt.array([[1, 2], [3, 4]], dtype="float32")``.
    """
    return Var.from_node(array_node(data, dtype))


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """PyTorch's ``torch.tensor``: a copy of ``data``, Python ints as int64 and floats as
    float32 (as torch; `array` keeps Jittor's int32); ``device`` as in ``Var.to``;
    ``pin_memory`` changes nothing (a Var's host copy is what a transfer reads)."""
    if dtype is None and isinstance(data, (int, list, tuple)):
        values = list(_flatten(data)) if isinstance(data, (list, tuple)) else [data]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            dtype = dtypes.int64
    result = array(data, dtype)
    if device is not None:
        from .placement import check_device
        check_device(device)
    return result.requires_grad_() if requires_grad else result


def as_tensor(data, dtype=None, device=None):
    """PyTorch's ``torch.as_tensor``: `tensor` without gradient tracking."""
    return tensor(data, dtype, device)


def from_numpy(array_data):
    """PyTorch's ``torch.from_numpy``: a Var of the numpy array's own dtype (a copy)."""
    return array(array_data, array_data.dtype)


def convert(value, dtype):
    """``value`` as a Var of ``dtype``: what ``jt.float32(value)`` and the other dtypes do."""
    return value.cast(dtype) if isinstance(value, Var) else array(value, dtype)


dtypes.set_converter(convert)


def _shape(args):
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    for size in args:
        if not isinstance(size, (numbers.Integral, np.integer)) or size < 0:
            raise MetajitShapeError(f"shape {tuple(args)} must be non-negative integers")
    return tuple(int(s) for s in args)


def full(shape, value, dtype=None):
    """A Var of ``shape`` filled with ``value`` (dtype from the value unless given)."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.scalar_dtype(value)
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape))
    constant = graph.constant_leaf(value, dtype)
    node = graph.broadcast_to(constant, shape) if shape else graph.elementwise("cast", [constant], dtype)
    return _trainable(Var.from_node(node))


def zeros(*shape, dtype="float32"):
    """A Var of zeros: ``jt.zeros(2, 3)`` or ``jt.zeros((2, 3), dtype="int32")``."""
    return full(_shape(shape), 0, dtype)


def ones(*shape, dtype="float32"):
    """A Var of ones: ``jt.ones(2, 3)``."""
    return full(_shape(shape), 1, dtype)


def empty(*shape, dtype="float32"):
    """PyTorch spelling; metajit fills with zeros so values are never garbage."""
    return zeros(*shape, dtype=dtype)


def _like(make):
    def like(x, dtype=None):
        return make(x.shape, dtype=dtype or x.dtype)
    like.__name__ = make.__name__ + "_like"
    like.__doc__ = f"`{make.__name__}` with the shape (and, unless given, dtype) of ``x``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)


def full_like(x, value, dtype=None):
    """`full` with the shape (and, unless given, dtype) of ``x``."""
    return full(x.shape, value, dtype or x.dtype)


def arange(start, end=None, step=1, dtype=None):
    """``[start, end)`` with ``step``, like ``numpy.arange``; int32 for ints, else float32."""
    if end is None:
        start, end = 0, start
    values = (start, end, step)
    if step == 0:
        raise MetajitValueError("arange: step must not be zero")
    if dtype is None:
        dtype = dtypes.DEFAULT_INT if all(isinstance(v, (int, np.integer)) for v in values) \
            else dtypes.DEFAULT_FLOAT
    dtype = dtypes.as_dtype(dtype)
    count = max(0, int(np.ceil((end - start) / step)))
    from .math_ops import binary, cast
    index = Var.from_node(graph.index_leaf((count,), 0, dtypes.int64 if dtype == dtypes.int64 else dtypes.int32))
    compute_dtype = dtype if dtypes.is_float(dtype) or dtype == dtypes.int64 else dtypes.int32
    result = binary("add", binary("mul", cast(index, compute_dtype), step), start)
    return _trainable(cast(result, dtype))


def linspace(start, end, steps, dtype="float32"):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    from .math_ops import binary, cast
    dtype = dtypes.as_dtype(dtype)
    compute = dtype if dtypes.is_float(dtype) else dtypes.DEFAULT_FLOAT
    index = cast(Var.from_node(graph.index_leaf((int(steps),), 0)), compute)
    delta = (end - start) / (steps - 1) if steps > 1 else 0.0
    return _trainable(cast(binary("add", binary("mul", index, delta), float(start)), dtype))


def eye(n, m=None, dtype="float32"):
    """The ``n`` x ``m`` (default square) matrix with ones on the diagonal, as ``torch.eye``;
    ``n`` may also be a shape ``(n, m)``, as Jittor's ``jt.init.eye``. Built from two index
    leaves and a comparison (no host data). Example: ``jt.eye(3)``, ``jt.eye(2, 4, dtype="int32")``."""
    if m is None and isinstance(n, (tuple, list)):
        if len(n) != 2:
            raise MetajitShapeError(f"eye: the shape must have two sizes (rows, columns), got {tuple(n)}")
        n, m = n
    m = n if m is None else m
    if not all(isinstance(size, (numbers.Integral, np.integer)) and size >= 0 for size in (n, m)):
        raise MetajitShapeError(f"eye: the sizes must be non-negative integers, got n={n!r}, m={m!r}")
    rows, columns = int(n), int(m)
    from .math_ops import binary, cast
    row_index = Var.from_node(graph.index_leaf((rows, columns), 0))
    column_index = Var.from_node(graph.index_leaf((rows, columns), 1))
    return _trainable(cast(binary("eq", row_index, column_index), dtypes.as_dtype(dtype)))


def _random(shape, dtype, sample):
    side_effects.note("it drew random numbers")
    dtype = dtypes.as_dtype(dtype)
    return Var.from_node(batching.random_node(  # inside vmap: per its randomness rule
        _shape(shape), lambda s: graph.array_leaf(np.ascontiguousarray(sample(s), dtype=dtype.numpy))))


def rand(*shape, dtype="float32"):
    """Uniform random numbers in ``[0, 1)``."""
    return _random(shape, dtype, lambda s: _generator.random(s))


def randn(*shape, dtype="float32"):
    """Standard normal random numbers."""
    return _random(shape, dtype, lambda s: _generator.standard_normal(s))


def randint(low, high=None, shape=(1,), dtype="int32"):
    """Random integers in ``[low, high)`` (``[0, low)`` when ``high`` is None)."""
    if high is None:
        low, high = 0, low
    return _random(shape, dtype, lambda s: _generator.integers(low, high, s))


def random(shape, type="uniform", dtype="float32"):
    """Jittor's ``jt.random(shape, dtype, type)``: ``"uniform"`` in [0, 1) or ``"normal"``."""
    if type not in ("uniform", "normal"):
        raise MetajitValueError(f"random: type must be 'uniform' or 'normal', got {type!r}")
    return rand(shape, dtype=dtype) if type == "uniform" else randn(shape, dtype=dtype)


rand_like = _like(rand)
randn_like = _like(randn)


def randint_like(x, low, high=None):
    """`randint` with the shape and dtype of ``x``."""
    return randint(low, high, x.shape, x.dtype)
