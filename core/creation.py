"""Creating Vars: from data (``jt.array``), constants, ranges and random numbers.

Constant fills and ranges are meta-ops (constant / index leaves broadcast and
combined element-wise), so they fuse into their consumers; random numbers are
host-generated leaves, reproducible with `seed`. The factories also take PyTorch's
keyword arguments (`factory_arguments`) and make floats of the default dtype
(`set_default_dtype`).
"""
import functools
import numbers

import random as python_random

import numpy as np

from . import placement
from .ir import dtypes, graph
from .passes import batching, side_effects
from .errors import MetajitDtypeError, MetajitShapeError, MetajitValueError
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


def is_torch_tensor(value):
    """Whether ``value`` is a torch tensor (found by its methods: metajit never imports torch)."""
    return hasattr(value, "detach") and hasattr(value, "cpu") and not isinstance(value, np.ndarray)


def as_numpy(value):
    """A Var (computed now), a torch tensor (detached, on the host), an array or a scalar as
    a numpy array."""
    if isinstance(value, Var):
        return value.numpy()
    if is_torch_tensor(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def array(data, dtype=None):
    """A Var holding a copy of ``data``.

    Python floats become float32, ints int32, bools bool; numpy arrays keep their
    dtype. Example: ``jt.array([[1, 2], [3, 4]], dtype="float32")``.
    """
    return Var.from_node(array_node(data, dtype))


def get_default_dtype():
    """PyTorch's ``torch.get_default_dtype``: the float dtype factories give without a
    ``dtype`` (float32 unless `set_default_dtype` changed it)."""
    return dtypes.DEFAULT_FLOAT


def set_default_dtype(dtype):
    """PyTorch's ``torch.set_default_dtype``: the float dtype of factories given no ``dtype``
    (``zeros``, ``ones``, ``rand``, ``linspace``, ...), of Python floats in `array` / `tensor`,
    of layers' parameters, and of integer true division. Python floats combined with a Var
    still take its dtype. Example: ``jt.set_default_dtype(jt.float64); jt.zeros(2).dtype``
    is float64."""
    dtype = placement.as_dtype(dtype)
    if not dtypes.is_float(dtype):
        raise MetajitDtypeError(f"set_default_dtype takes a floating-point dtype, got {dtype}")
    dtypes.DEFAULT_FLOAT = dtype


def _float_unless(dtype):
    return dtypes.DEFAULT_FLOAT if dtype is None else dtype


def factory_arguments(name, value, device=None, requires_grad=None, layout=None, pin_memory=False, out=None,
                      memory_format=None):
    """``value``, just made by factory ``name``, after PyTorch's factory keyword arguments:
    ``device`` must be the device in use or ``"cpu"`` (`metajit.placement.check_device`, as
    ``Var.to``); ``requires_grad=True`` makes a tracked leaf (``requires_grad_()``) and
    ``False`` one without gradients, while leaving it out keeps Jittor's rule (float Vars
    track gradients); ``layout`` must be strided; ``pin_memory`` and ``memory_format`` change
    nothing (a Var has one layout and its host copy is what a transfer reads); ``out`` must
    be None (a factory makes a new Var: assign it)."""
    if out is not None:
        raise MetajitValueError(f"{name}: out= is not supported (a Var's value is not written in place); "
                                f"assign the result instead: x = jt.{name}(...)")
    if layout is not None and not str(layout).endswith("strided"):
        raise MetajitValueError(f"{name}: only the strided layout exists in metajit, got layout={layout}")
    if device is not None:
        placement.check_device(device)
    return value if requires_grad is None else value.requires_grad_(requires_grad)


def _factory(make):
    """``make`` also taking PyTorch's factory keyword arguments (`factory_arguments`)."""
    @functools.wraps(make)
    def factory(*args, device=None, requires_grad=None, layout=None, pin_memory=False, out=None,
                memory_format=None, **kwargs):
        return factory_arguments(make.__name__, make(*args, **kwargs), device, requires_grad, layout, pin_memory,
                                 out, memory_format)
    return factory


@_factory
def tensor(data, dtype=None):
    """PyTorch's ``torch.tensor``: a copy of ``data``, Python ints as int64 and floats of the
    default dtype (as torch; `array` keeps Jittor's int32), with torch's keyword arguments
    (`factory_arguments`). Example: ``jt.tensor([1.0, 2.0], requires_grad=True)``."""
    if dtype is None and isinstance(data, (int, list, tuple)):
        values = list(_flatten(data)) if isinstance(data, (list, tuple)) else [data]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            dtype = dtypes.int64
    return array(data, dtype)


def as_tensor(data, dtype=None, device=None):
    """PyTorch's ``torch.as_tensor``: `tensor` (a copy: a Var holds its own value)."""
    return tensor(data, dtype, device=device)


def _legacy_constructor(name, data_or_sizes, dtype):
    """What PyTorch's legacy constructors make: sizes give zeros of that shape (metajit has no
    uninitialised memory), one piece of data a Var of it, both of ``dtype``."""
    if all(isinstance(size, (numbers.Integral, np.integer)) and not isinstance(size, bool) for size in data_or_sizes):
        return empty(*data_or_sizes, dtype=dtype) if data_or_sizes else empty(0, dtype=dtype)
    if len(data_or_sizes) == 1 and type(data_or_sizes[0]).__name__ in ("Shape", "Size"):
        return empty(*data_or_sizes[0], dtype=dtype)
    if len(data_or_sizes) != 1:
        raise MetajitValueError(f"jt.{name} takes sizes (jt.{name}(2, 3)) or one piece of data "
                                f"(jt.{name}([1, 2])), got {data_or_sizes!r}")
    return array(data_or_sizes[0], dtype)


class _TensorType(type):
    """The type of `Tensor` and the typed legacy classes: Vars (of the class's dtype, if it
    has one) are instances, and their attributes are Var's."""

    def __instancecheck__(cls, instance):
        return isinstance(instance, Var) and (cls.dtype is None or instance.dtype == cls.dtype)

    def __subclasscheck__(cls, subclass):
        return cls.dtype is None and issubclass(subclass, Var)

    def __getattr__(cls, name):
        return getattr(Var, name)


class Tensor(metaclass=_TensorType):
    """PyTorch's ``torch.Tensor`` (``jt.Tensor``): ``isinstance(x, jt.Tensor)`` holds for every
    Var, ``jt.Tensor.add(x, y)`` is ``x.add(y)``, and the legacy constructor makes a Var of the
    default float dtype: ``jt.Tensor(2, 3)`` of that shape (zeros: metajit has no uninitialised
    memory), ``jt.Tensor([1, 2])`` of that data. Jittor's class is `Var`, whose constructor
    takes data (``jt.Var(2)`` is the scalar 2)."""

    dtype = None

    def __new__(cls, *data_or_sizes):
        return _legacy_constructor(cls.__name__, data_or_sizes, cls.dtype or dtypes.DEFAULT_FLOAT)


def _typed_tensor(name, dtype):
    """PyTorch's legacy class ``name`` (``torch.FloatTensor``...): its constructor makes Vars
    of ``dtype`` (see `Tensor`) and ``isinstance`` tests a Var's dtype."""
    return _TensorType(name, (), {
        "dtype": dtypes.as_dtype(dtype), "__module__": __name__,
        "__new__": lambda cls, *data_or_sizes: _legacy_constructor(name, data_or_sizes, cls.dtype),
        "__doc__": f"PyTorch's legacy ``torch.{name}``: ``jt.{name}(2, 3)`` (zeros) or ``jt.{name}(data)``, "
                   f"{dtype}; ``isinstance(x, jt.{name})`` when ``x`` is a {dtype} Var."})


FloatTensor = _typed_tensor("FloatTensor", "float32")
DoubleTensor = _typed_tensor("DoubleTensor", "float64")
HalfTensor = _typed_tensor("HalfTensor", "float16")
LongTensor = _typed_tensor("LongTensor", "int64")
IntTensor = _typed_tensor("IntTensor", "int32")
ShortTensor = _typed_tensor("ShortTensor", "int16")
CharTensor = _typed_tensor("CharTensor", "int8")
ByteTensor = _typed_tensor("ByteTensor", "uint8")
BoolTensor = _typed_tensor("BoolTensor", "bool")


def is_tensor(value):
    """PyTorch's ``torch.is_tensor``: whether ``value`` is a Var."""
    return isinstance(value, Var)


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


@_factory
def full(shape, value, dtype=None):
    """A Var of ``shape`` filled with ``value`` (dtype from the value unless given); PyTorch's
    keyword arguments as `factory_arguments`. Example: ``jt.full((2,), -1, device="cpu")``."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.scalar_dtype(value)
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape))
    constant = graph.constant_leaf(value, dtype)
    node = graph.broadcast_to(constant, shape) if shape else graph.elementwise("cast", [constant], dtype)
    return _trainable(Var.from_node(node))


@_factory
def zeros(*shape, dtype=None):
    """A Var of zeros (of the default float dtype unless given): ``jt.zeros(2, 3)`` or
    ``jt.zeros((2, 3), dtype="int32")``; PyTorch's keyword arguments as `factory_arguments`."""
    return full(_shape(shape), 0, _float_unless(dtype))


@_factory
def ones(*shape, dtype=None):
    """A Var of ones: ``jt.ones(2, 3)`` (see `zeros`)."""
    return full(_shape(shape), 1, _float_unless(dtype))


@_factory
def empty(*shape, dtype=None):
    """PyTorch spelling; metajit fills with zeros so values are never garbage."""
    return zeros(*shape, dtype=dtype)


def _like(make):
    def like(x, dtype=None):
        return make(x.shape, dtype=dtype or x.dtype)
    like.__name__ = make.__name__ + "_like"
    like.__doc__ = (f"`{make.__name__}` with the shape (and, unless given, dtype) of ``x``; PyTorch's "
                    f"keyword arguments as `factory_arguments`.")
    return _factory(like)


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)


@_factory
def full_like(x, value, dtype=None):
    """`full` with the shape (and, unless given, dtype) of ``x``."""
    return full(x.shape, value, dtype or x.dtype)


@_factory
def arange(start, end=None, step=1, dtype=None):
    """``[start, end)`` with ``step``, like ``numpy.arange``; int32 for ints, else the default
    float dtype; PyTorch's keyword arguments as `factory_arguments`
    (``jt.arange(0, t, dtype=jt.long, device=idx.device)``)."""
    if end is None:
        start, end = 0, start
    values = (start, end, step)
    if step == 0:
        raise MetajitValueError("arange: step must not be zero")
    if dtype is None:
        dtype = dtypes.DEFAULT_INT if all(isinstance(v, (int, np.integer)) for v in values) \
            else dtypes.DEFAULT_FLOAT
    dtype = placement.as_dtype(dtype)
    count = max(0, int(np.ceil((end - start) / step)))
    from .math_ops import binary, cast
    index = Var.from_node(graph.index_leaf((count,), 0, dtypes.int64 if dtype == dtypes.int64 else dtypes.int32))
    compute_dtype = dtype if dtypes.is_float(dtype) or dtype == dtypes.int64 else dtypes.int32
    result = binary("add", binary("mul", cast(index, compute_dtype), step), start)
    return _trainable(cast(result, dtype))


@_factory
def linspace(start, end, steps, dtype=None):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (of the default float
    dtype unless given)."""
    from .math_ops import binary, cast
    dtype = placement.as_dtype(_float_unless(dtype))
    compute = dtype if dtypes.is_float(dtype) else dtypes.DEFAULT_FLOAT
    index = cast(Var.from_node(graph.index_leaf((int(steps),), 0)), compute)
    delta = (end - start) / (steps - 1) if steps > 1 else 0.0
    return _trainable(cast(binary("add", binary("mul", index, delta), float(start)), dtype))


@_factory
def eye(n, m=None, dtype=None):
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
    return _trainable(cast(binary("eq", row_index, column_index), placement.as_dtype(_float_unless(dtype))))


def _random(shape, dtype, sample):
    side_effects.note("it drew random numbers")
    dtype = placement.as_dtype(_float_unless(dtype))
    return Var.from_node(batching.random_node(  # inside vmap: per its randomness rule
        _shape(shape), lambda s: graph.array_leaf(np.ascontiguousarray(sample(s), dtype=dtype.numpy))))


@_factory
def rand(*shape, dtype=None):
    """Uniform random numbers in ``[0, 1)`` (of the default float dtype unless given)."""
    return _random(shape, dtype, lambda s: _generator.random(s))


@_factory
def randn(*shape, dtype=None):
    """Standard normal random numbers (of the default float dtype unless given)."""
    return _random(shape, dtype, lambda s: _generator.standard_normal(s))


@_factory
def randint(low, high=None, shape=(1,), dtype="int32", *, size=None):
    """Random integers in ``[low, high)`` (``[0, low)`` when ``high`` is None), Jittor's
    ``randint(low, high, shape)``; also PyTorch's ``randint(high, size)`` and ``size=``.
    Example: ``jt.randint(0, 10, (3,))``, ``jt.randint(10, size=(3,))``."""
    if isinstance(high, (tuple, list)):
        low, high, shape = 0, low, high
    if size is not None:
        shape = size
    if high is None:
        low, high = 0, low
    return _random(shape, dtype, lambda s: _generator.integers(low, high, s))


def random(shape, type="uniform", dtype=None):
    """Jittor's ``jt.random(shape, dtype, type)``: ``"uniform"`` in [0, 1) or ``"normal"``."""
    if type not in ("uniform", "normal"):
        raise MetajitValueError(f"random: type must be 'uniform' or 'normal', got {type!r}")
    return rand(shape, dtype=dtype) if type == "uniform" else randn(shape, dtype=dtype)


rand_like = _like(rand)
randn_like = _like(randn)


@_factory
def randint_like(x, low, high=None, dtype=None):
    """`randint` with the shape (and, unless given, dtype) of ``x``."""
    return randint(low, high, x.shape, dtype or x.dtype)
