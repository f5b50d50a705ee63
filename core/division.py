"""Division that rounds and remainders, as PyTorch's: ``div(rounding_mode=None | "trunc" |
"floor")``, ``floor_divide`` and ``//``, ``remainder`` and ``%``, ``fmod``.

The meta-ops ``floor_div`` and ``mod`` round down, as Python's ``//`` and ``%``, and give 0
for an integer divided by 0 (`metajit.ir.opset`). PyTorch raises there, and so do these
spellings: a zero divisor known on the host raises `MetajitZeroDivisionError` at once; one
computed on the device raises it at the realisation that computes the quotient (a deferred
check, `metajit.passes.checks`, as for out-of-range indices). Floats divided by zero give
inf or nan, as IEEE division. Example::

    jt.div(jt.array([7, -7]), 2, rounding_mode="trunc")   # [3, -3], int32
    jt.array([7, -7]) // 2                                 # [3, -4]
    jt.array([7]) // 0                                     # MetajitZeroDivisionError
"""
import numpy as np

from .errors import MetajitValueError, MetajitZeroDivisionError
from .ir import dtypes
from .math_ops import as_var, binary, trunc, where
from .passes import checks
from .reductions import any as reduce_any
from .var import Var

ROUNDING_MODES = (None, "trunc", "floor")


def divide(a, b, rounding_mode=None):
    """PyTorch's ``torch.div(a, b, rounding_mode=...)``: true division (``None``, integers
    give the default float), or the quotient rounded toward zero (``"trunc"``) or down
    (``"floor"``), which keeps integer operands integer.

    Example: ``jt.div(jt.array([-7]), 2, rounding_mode="floor")`` is ``[-4]``."""
    if rounding_mode is None:
        return binary("div", a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        return _truncated_divide(a, b)
    raise MetajitValueError(f"div: rounding_mode must be one of {ROUNDING_MODES}, got {rounding_mode!r}")


def floor_divide(a, b):
    """``a // b``, rounded down (``torch.floor_divide``, Python's ``//``); an integer divisor of
    0 raises `MetajitZeroDivisionError`. Example: ``jt.floor_divide(jt.array([-7]), 2)`` is ``[-4]``."""
    return _refusing_zero_divisor(binary("floor_div", a, b), b)


def remainder(a, b):
    """``a % b`` with the sign of ``b`` (``torch.remainder``, Python's ``%``); an integer divisor
    of 0 raises `MetajitZeroDivisionError`. Example: ``jt.remainder(jt.array([-7]), 3)`` is ``[2]``."""
    return _refusing_zero_divisor(binary("mod", a, b), b)


def fmod(a, b):
    """The remainder of ``a / b`` with the sign of ``a`` (C's ``fmod``, ``torch.fmod``;
    `remainder` / ``%`` take the sign of ``b``). Example: ``jt.fmod(jt.array([-7]), 3)`` is -1."""
    rest = remainder(a, b)
    other_sign = (rest != 0) & (binary("lt", rest, 0) != binary("lt", a, 0))
    return where(other_sign, binary("sub", rest, b), rest)


def _truncated_divide(a, b):
    quotient = floor_divide(a, b)
    if dtypes.is_float(quotient.dtype):
        return trunc(binary("div", a, b))
    # the floored quotient is one below the truncated one where the remainder has the
    # divisor's sign and not the dividend's
    rest = binary("mod", a, b)
    rounded_down = (rest != 0) & (binary("lt", rest, 0) != binary("lt", a, 0))
    return binary("add", quotient, rounded_down.cast(quotient.dtype))


def _refusing_zero_divisor(result, divisor):
    """``result``, an integer quotient or remainder by ``divisor``, after checking that no
    divisor is 0: now when its values are on the host, else at ``result``'s realisation."""
    if dtypes.is_float(result.dtype) or result.dtype == dtypes.bool_:
        return result
    node = divisor._node if isinstance(divisor, Var) else None
    if node is None or node.host_data is not None:
        host = node.host_data if node is not None else divisor
        if np.any(np.asarray(host) == 0):
            raise MetajitZeroDivisionError(_MESSAGE)
        return result
    checks.register(result._node, [reduce_any(binary("eq", as_var(divisor), 0))._node],
                    lambda zero: MetajitZeroDivisionError(_MESSAGE) if zero.item() else None)
    return result


_MESSAGE = ("integer division by zero: mask the zero divisors first (jt.where(b == 0, 1, b)), or divide floats "
            "for inf/nan")
