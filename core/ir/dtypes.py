"""The dtypes metajit supports and numpy-compatible type promotion.

A dtype is a `DType`: a ``str`` subclass holding the canonical name, so
``x.dtype == "float32"``, ``x.dtype == jt.float32`` and ``x.dtype == np.float32``
are all true for a float32 Var.
"""
import functools

import numpy as np

from ..errors import MetajitDtypeError


_NUMPY = {}  # name -> numpy.dtype, filled on first use (hot: every constant and buffer asks)
_CONVERTER = []  # the front end's (value, dtype) -> Var, see `set_converter`


class DType(str):
    """A metajit dtype; compares equal to its name, numpy dtypes and numpy scalar types.

    Example: ``jt.float32 == "float32" == np.dtype("float32")``.
    """

    __slots__ = ()

    @property
    def numpy(self):
        """The matching ``numpy.dtype``."""
        found = _NUMPY.get(self)
        if found is None:
            found = _NUMPY[str(self)] = np.dtype(str(self))
        return found

    @property
    def itemsize(self):
        """Bytes per element."""
        return self.numpy.itemsize

    def __eq__(self, other):
        if other is self:
            return True
        if type(other) is DType or isinstance(other, str):
            return str.__eq__(self, other)
        try:
            return np.dtype(other) == np.dtype(str(self))
        except TypeError:
            return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __call__(self, value):
        """``jt.float32(x)`` (Jittor's spelling): ``x`` as a Var of this dtype, a cast of a
        Var or a new Var from numpy data, a list or a scalar. The front end supplies the
        conversion (`set_converter`); this layer knows no Vars."""
        if not _CONVERTER:
            raise TypeError(f"{self} is not callable before metajit's front end is imported")
        return _CONVERTER[0](value, self)

    __hash__ = str.__hash__

    def __repr__(self):
        return str(self)


def set_converter(function):
    """Install ``function(value, dtype) -> Var``, what calling a `DType` does."""
    _CONVERTER[:] = [function]


bool_ = DType("bool")
int8 = DType("int8")
int16 = DType("int16")
int32 = DType("int32")
int64 = DType("int64")
uint8 = DType("uint8")
float16 = DType("float16")
float32 = DType("float32")
float64 = DType("float64")

ALL_DTYPES = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
FLOAT_DTYPES = (float16, float32, float64)
INTEGER_DTYPES = (uint8, int8, int16, int32, int64)
_BY_NAME = {str(d): d for d in ALL_DTYPES}
_ALIASES = {"float": float32, "int": int32, "bool_": bool_, "half": float16, "double": float64,
            "long": int64, "short": int16}

_CONVERTED = {}  # numpy dtypes and types already converted by as_dtype

DEFAULT_FLOAT = float32
DEFAULT_INT = int32


def as_dtype(value):
    """Convert a name, numpy dtype, numpy/Python type or `DType` to a `DType`.

    Example: ``as_dtype("float") == float32``; ``as_dtype(np.int64) == int64``.
    Raises `MetajitDtypeError` naming the supported dtypes for anything else.
    """
    if type(value) is DType:
        return value
    try:
        found = _CONVERTED.get(value)
    except TypeError:
        found = None
    if found is not None:
        return found
    if isinstance(value, str) and value in _ALIASES:
        return _ALIASES[value]
    if value is float:
        return DEFAULT_FLOAT
    if value is int:
        return DEFAULT_INT
    if value is bool:
        return bool_
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name not in _BY_NAME:
        raise MetajitDtypeError(
            f"unsupported dtype {value!r}; metajit supports {', '.join(_BY_NAME)}")
    try:
        _CONVERTED[value] = _BY_NAME[name]
    except TypeError:
        pass
    return _BY_NAME[name]


_FLOAT_SET, _INTEGER_SET = frozenset(FLOAT_DTYPES), frozenset(INTEGER_DTYPES)  # hits by identity


def is_float(dtype):
    """True for float16/32/64."""
    return dtype in _FLOAT_SET


def is_integer(dtype):
    """True for signed and unsigned integer dtypes (not bool)."""
    return dtype in _INTEGER_SET


@functools.lru_cache(maxsize=None)
def promote(*dtypes):
    """Common dtype of arrays: numpy's rule within integers and within floats, but an
    integer or bool array mixed with a float array takes the float dtype, as in
    PyTorch, JAX and Jittor (numpy would widen int32 + float32 to float64).

    Example: ``promote(int8, uint8) == int16``; ``promote(int32, float32) == float32``.
    """
    floats = [d for d in dtypes if is_float(d)]
    chosen = floats if floats else dtypes
    return as_dtype(np.result_type(*(d.numpy for d in chosen)))


def promote_with_scalar(dtype, scalar):
    """Promote an array dtype with a Python scalar, treating the scalar as weakly typed.

    Python scalars never widen an array (``int8 + 1 -> int8``, ``float16 * 0.5 ->
    float16``), except that a float scalar with an integer or bool array gives the
    default float (float32), as in numpy 2 / PyTorch with metajit's default float.
    """
    if isinstance(scalar, bool):
        return dtype
    if isinstance(scalar, int):
        return DEFAULT_INT if dtype == bool_ else dtype
    if isinstance(scalar, float):
        return dtype if is_float(dtype) else DEFAULT_FLOAT
    raise MetajitDtypeError(f"cannot combine a Var with a {type(scalar).__name__} ({scalar!r})")


def scalar_dtype(value):
    """The dtype metajit gives a bare Python scalar: bool, int32 or float32."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return DEFAULT_INT if isinstance(value, int) else as_dtype(type(value))
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT if isinstance(value, float) else as_dtype(type(value))
    raise MetajitDtypeError(f"expected a number, got {type(value).__name__} ({value!r})")


def finfo(dtype):
    """Machine limits of a float dtype (``jt.finfo(jt.float16).max``), as ``numpy.finfo``."""
    return np.finfo(as_dtype(dtype).numpy)


def iinfo(dtype):
    """Limits of an integer dtype (``jt.iinfo(jt.int8).min``), as ``numpy.iinfo``."""
    return np.iinfo(as_dtype(dtype).numpy)
