"""The element-wise and reduce meta-operators: names, arity and dtype rules.

These names are the contract between core and every backend: a kernel's value
tree applies exactly these operators, with the semantics documented here and in
docs/architecture.md. Inputs of an element-wise op share one shape and (except
``select``'s condition) one dtype; the front end inserts broadcasts and casts.
"""
from . import dtypes
from ..errors import MetajitDtypeError

FLOAT_UNARY = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
               "cosh", "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf",
               "floor", "ceil", "round")
NUMERIC_UNARY = ("neg", "abs")
UNARY = FLOAT_UNARY + NUMERIC_UNARY + ("logical_not", "bitwise_not", "cast")

ARITHMETIC_BINARY = ("add", "sub", "mul", "div", "floor_div", "mod", "pow", "maximum", "minimum")
COMPARISON_BINARY = ("eq", "ne", "lt", "le", "gt", "ge")
LOGICAL_BINARY = ("logical_and", "logical_or", "logical_xor")
BITWISE_BINARY = ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")
BINARY = ARITHMETIC_BINARY + COMPARISON_BINARY + LOGICAL_BINARY + BITWISE_BINARY
TERNARY = ("select",)
ELEMENTWISE = UNARY + BINARY + TERNARY

REDUCE_OPS = ("sum", "prod", "max", "min", "any", "all")
# reindex_reduce accepts the same reductions; "add"/"multiply"/"maximum"/"minimum" are
# Jittor's spellings and are normalised to these.
REDUCE_ALIASES = {"add": "sum", "multiply": "prod", "mul": "prod", "maximum": "max",
                  "minimum": "min", "logical_or": "any", "logical_and": "all"}

SEMANTICS = """\
div                 true division, float dtypes only
floor_div, mod      floor semantics (Python); integer division or modulo by zero gives 0
pow                 float: C pow; integer: repeated multiplication, negative exponent gives 0
maximum, minimum    propagate nan
round               half to even
cast                float->int truncates toward zero; nan/inf/out-of-range is unspecified
shifts              integer dtypes; shift counts outside [0, bits) are unspecified
sum/prod of ints    wrap around on overflow (two's complement)
"""


def result_dtype(op, input_dtypes, target_dtype=None):
    """The output dtype of element-wise ``op``; raises `MetajitDtypeError` for a bad dtype.

    Example: ``result_dtype("lt", [float32, float32]) == bool``.
    """
    if op == "cast":
        return target_dtype
    if op == "select":
        return input_dtypes[1]
    dtype = input_dtypes[0]
    if op in FLOAT_UNARY or op == "div":
        _require(op, dtype, dtypes.is_float(dtype), "a float dtype")
    elif op in NUMERIC_UNARY or op in ARITHMETIC_BINARY:
        _require(op, dtype, dtype != dtypes.bool_, "a numeric dtype, not bool")
    elif op in ("bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor"):
        _require(op, dtype, not dtypes.is_float(dtype), "an integer or bool dtype")
    elif op in ("left_shift", "right_shift"):
        _require(op, dtype, dtypes.is_integer(dtype), "an integer dtype")
    if op in COMPARISON_BINARY or op in LOGICAL_BINARY or op == "logical_not":
        return dtypes.bool_
    return dtype


def _require(op, dtype, ok, what):
    if not ok:
        raise MetajitDtypeError(f"{op} needs {what}, got {dtype}")


def normalise_reduce_op(op):
    """Map Jittor spellings (``"add"``, ``"maximum"``...) to a `REDUCE_OPS` name."""
    name = REDUCE_ALIASES.get(op, op)
    if name not in REDUCE_OPS:
        raise MetajitDtypeError(
            f"unknown reduce op {op!r}; use one of {', '.join(REDUCE_OPS + tuple(REDUCE_ALIASES))}")
    return name


def reduce_identity(op, dtype):
    """The value a ``op`` reduction starts from (what an empty reduction returns)."""
    import numpy as np
    if op == "sum":
        return 0
    if op == "prod":
        return 1
    if op == "any":
        return False
    if op == "all":
        return True
    if dtypes.is_float(dtype):
        return -np.inf if op == "max" else np.inf
    if dtype == dtypes.bool_:
        return op == "min"
    info = np.iinfo(dtype.numpy)
    return int(info.min) if op == "max" else int(info.max)
