"""Rewrite a kernel's element-wise ops that a backend does not lower natively into ops it
does, so a backend declaring ``native_ops`` (an accelerator without a comparison unit,
a dialect without ``tan``) still runs every kernel.

Each rule is exact under `metajit.ir.opset.SEMANTICS` (the same values, nan propagation and
integer wrap-around as the op itself) or, for ``tan``, ``log1p`` and ``expm1``, within the
rounding of the ops it uses (Goldberg's and Kahan's corrections keep ``log1p(1e-10)`` and
``expm1(1e-10)`` accurate). A rule's result is decomposed again where it uses ops the backend lacks. Example::

    decompose(kernel, native_ops=("add", "mul", "lt", "eq", "select", ...))

An op with no route to the native set raises `MetajitCodegenError` naming the op.
"""
from metajit.ir import dtypes, opset
from metajit.ir import kernel as K
from metajit.errors import MetajitCodegenError


def _const(value, dtype):
    return K.constant(value, dtype)


def _bool(op, a, b):
    return K.apply(op, (a, b), dtypes.bool_)


def _nonzero(x):
    return _bool("ne", x, _const(False if x.dtype == dtypes.bool_ else 0, x.dtype))


def _extremum(compare):
    def rule(a, b, dtype):
        keep_first = K.apply("logical_or", (_bool(compare, a, b), _bool("ne", a, a)), dtypes.bool_)
        return K.apply("select", (keep_first, a, b), dtype)
    return rule


def _swapped(op):
    return lambda a, b, dtype: _bool(op, b, a)


def _apply(op, *operands):
    return K.apply(op, operands, operands[-1].dtype)


def _log1p(x, dtype):
    """Goldberg: with ``u = 1 + x``, ``log(u) * x / (u - 1)`` cancels the rounding of ``u``."""
    u = _apply("add", _const(1, dtype), x)
    corrected = _apply("mul", _apply("log", u), _apply("div", x, _apply("sub", u, _const(1, dtype))))
    exact_at_infinity = _apply("select", _bool("eq", u, _const(float("inf"), dtype)), u, corrected)
    return _apply("select", _bool("eq", u, _const(1, dtype)), x, exact_at_infinity)


def _expm1(x, dtype):
    """Kahan: with ``u = exp(x)``, ``(u - 1) * x / log(u)`` cancels the rounding of ``u``."""
    u = _apply("exp", x)
    u_minus_one = _apply("sub", u, _const(1, dtype))
    corrected = _apply("mul", u_minus_one, _apply("div", x, _apply("log", u)))
    at_infinity = _apply("select", _bool("eq", u, _const(float("inf"), dtype)), u, corrected)
    saturated = _apply("select", _bool("eq", u_minus_one, _const(-1, dtype)), _const(-1, dtype), at_infinity)
    return _apply("select", _bool("eq", u, _const(1, dtype)), x, saturated)


RULES = {
    "sub": lambda a, b, dtype: K.apply("add", (a, K.apply("neg", (b,), dtype)), dtype),
    "neg": lambda x, dtype: K.apply("mul", (x, _const(-1, dtype)), dtype),
    "gt": _swapped("lt"),
    "ge": _swapped("le"),
    "le": lambda a, b, dtype: K.apply("logical_or", (_bool("lt", a, b), _bool("eq", a, b)), dtype),
    "ne": lambda a, b, dtype: K.apply("logical_not", (_bool("eq", a, b),), dtype),
    "maximum": _extremum("gt"),
    "minimum": _extremum("lt"),
    "ceil": lambda x, dtype: K.apply("neg", (K.apply("floor", (K.apply("neg", (x,), dtype),), dtype),), dtype),
    "sigmoid": lambda x, dtype: K.apply("div", (_const(1, dtype), K.apply(
        "add", (_const(1, dtype), K.apply("exp", (K.apply("neg", (x,), dtype),), dtype)), dtype)), dtype),
    "log1p": _log1p,
    "expm1": _expm1,
    "tan": lambda x, dtype: K.apply("div", (K.apply("sin", (x,), dtype), K.apply("cos", (x,), dtype)), dtype),
    "abs": lambda x, dtype: K.apply("select", (_bool("lt", x, _const(0, dtype)), K.apply("neg", (x,), dtype), x),
                                    dtype),
    "logical_not": lambda x, dtype: _bool("eq", x, _const(False if x.dtype == dtypes.bool_ else 0, x.dtype)),
    "logical_and": lambda a, b, dtype: K.apply("select", (_nonzero(a), _nonzero(b), _const(False, dtype)), dtype),
    "logical_or": lambda a, b, dtype: K.apply("select", (_nonzero(a), _const(True, dtype), _nonzero(b)), dtype),
    "logical_xor": lambda a, b, dtype: _bool("ne", _nonzero(a), _nonzero(b)),
    "bitwise_not": lambda x, dtype: (K.apply("logical_not", (x,), dtype) if dtype == dtypes.bool_
                                     else K.apply("bitwise_xor", (x, _const(-1, dtype)), dtype)),
}


def decompose(kernel, native_ops):
    """``kernel`` with every element-wise op outside ``native_ops`` rewritten by `RULES`
    (``kernel`` itself when nothing changes; an empty ``native_ops`` means all)."""
    if not native_ops:
        return kernel
    native = frozenset(native_ops)
    memo = {}

    def rewrite(expr, trail=()):
        key = expr
        if key in memo:
            return memo[key]
        if expr.op in ("load", "const", "param", "index"):
            result = expr
        else:
            operands = tuple(rewrite(a, trail) for a in expr.args)
            result = K.ValueExpr(expr.op, operands, expr.dtype) if operands != expr.args else expr
            if expr.op not in native and expr.op in opset.ELEMENTWISE:
                rule = RULES.get(expr.op)
                if rule is None or expr.op in trail:
                    raise MetajitCodegenError(
                        f"the device lowers neither element-wise op {expr.op!r} nor the ops core "
                        f"decomposes it into; add {expr.op!r} to its native_ops (it has "
                        f"{', '.join(sorted(native))})")
                result = rewrite(rule(*operands, expr.dtype), trail + (expr.op,))
        memo[key] = result
        return result

    stores = [K.Store(s.slot, s.index, rewrite(s.value), s.reduce_op, s.condition) for s in kernel.stores]
    if all(new.value is old.value for new, old in zip(stores, kernel.stores)):
        return kernel
    return K.Kernel(kernel.domain, kernel.inputs, kernel.outputs, stores, kernel.parameters)
