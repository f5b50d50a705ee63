"""Jittor's op-by-name spellings over metajit's ops: ``jt.reduce(x, "add", dims)``,
``reduce_add`` / ``reduce_multiply`` / ``reduce_maximum`` / ``reduce_minimum`` /
``reduce_logical_and`` / ``reduce_logical_or``, ``jt.arg_reduce(x, "max", dim, keepdims)``,
``jt.ternary(cond, x, y)``, and Jittor's argument order for ``jt.unary(x, op)`` /
``jt.binary(x, y, op)``.

Example::

    total = jt.reduce(x, "add", dims=(0, 1))
    index, value = jt.arg_reduce(x, "max", dim=1, keepdims=False)
"""
from . import reductions
from .errors import MetajitValueError
from .math_ops import binary as _binary, unary as _unary, where

_REDUCERS = {"add": reductions.sum, "sum": reductions.sum, "multiply": reductions.prod,
             "prod": reductions.prod, "maximum": reductions.max, "max": reductions.max,
             "minimum": reductions.min, "min": reductions.min, "logical_and": reductions.all,
             "all": reductions.all, "logical_or": reductions.any, "any": reductions.any,
             "mean": reductions.mean}
_BINARY_NAMES = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "floor_divide": "floor_div",
                 "mod": "mod", "pow": "pow", "maximum": "maximum", "minimum": "minimum", "equal": "eq",
                 "not_equal": "ne", "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
                 "logical_and": "logical_and", "logical_or": "logical_or", "logical_xor": "logical_xor",
                 "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor",
                 "left_shift": "left_shift", "right_shift": "right_shift"}


def reduce(x, op, dims=(), keepdims=False):
    """Jittor's ``jt.reduce``: reduce ``x`` over ``dims`` (all dims when empty) with ``op``:
    ``"add"``, ``"multiply"``, ``"maximum"``, ``"minimum"``, ``"logical_and"``,
    ``"logical_or"``, ``"mean"`` (or sum/prod/max/min/all/any).
    Example: ``jt.reduce(x, "maximum", 1)``."""
    if op not in _REDUCERS:
        raise MetajitValueError(f"reduce: unknown op {op!r}; use one of {', '.join(sorted(_REDUCERS))}")
    dims = None if dims in ((), []) else dims
    return _REDUCERS[op](x, dim=dims, keepdims=keepdims)


def _reducer(op):
    def reduce_with(x, dims=(), keepdims=False):
        return reduce(x, op, dims, keepdims)
    reduce_with.__name__ = f"reduce_{op}"
    reduce_with.__doc__ = (f"``jt.reduce(x, {op!r}, dims, keepdims)`` (Jittor's ``reduce_{op}``).\n\n"
                           f"Example: ``jt.reduce_{op}(x, dims=(0,))``.")
    return reduce_with


reduce_add = _reducer("add")
reduce_multiply = _reducer("multiply")
reduce_maximum = _reducer("maximum")
reduce_minimum = _reducer("minimum")
reduce_logical_and = _reducer("logical_and")
reduce_logical_or = _reducer("logical_or")


def arg_reduce(x, op, dim, keepdims):
    """Jittor's ``jt.arg_reduce``: ``(index, value)`` of the first maximum (``op="max"``)
    or minimum (``"min"``) along ``dim``. Example: ``index, value = jt.arg_reduce(x, "min", 0, False)``."""
    if op not in ("max", "min"):
        raise MetajitValueError(f"arg_reduce: op must be 'max' or 'min', got {op!r}")
    return (reductions.argmax if op == "max" else reductions.argmin)(x, dim, keepdims=keepdims)


def ternary(cond, x, y):
    """Jittor's ``jt.ternary``: ``x`` where ``cond`` is true, else ``y`` (``jt.where``).
    Example: ``jt.ternary(a > 0, a, 0.0)``."""
    return where(cond, x, y)


def unary(x, op):
    """Jittor's ``jt.unary(x, op)``: the element-wise op named ``op`` (``"exp"``, ``"abs"``, ...).
    Example: ``jt.unary(x, "sqrt")``."""
    return _unary(op, x)


def binary(x, y, op):
    """Jittor's ``jt.binary(x, y, op)``: ``op`` is ``"add"``, ``"subtract"``, ``"multiply"``,
    ``"divide"``, ``"maximum"``, ``"less"``... (metajit's short names work too).
    Example: ``jt.binary(a, b, "maximum")``."""
    return _binary(_BINARY_NAMES.get(op, op), x, y)
