"""Symbolic integer index expressions used by `reindex`, `reindex_reduce` and kernels.

An expression is a tree of `IndexExpr` nodes over loop indices ``i0, i1, ...``,
integer constants and *extra loads* (``@e0(i0, i1)``: an integer read from an
extra input Var, for data-dependent gathers). Every backend renders these trees;
the reference backend evaluates them with numpy.

Semantics (backends must match): ``//`` and ``%`` are floor division and floor
modulo as in Python (they agree with C for non-negative operands; division by zero
gives 0); comparisons and logical operators give 0 or 1; ``/`` in the string form
means ``//``.

Example::

    >>> e = parse("i0*2+i1", ndim=2)
    >>> str(e)
    'i0*2+i1'
"""
import ast
import functools
import math
import re

import numpy as np

from ..errors import MetajitValueError

BINARY_OPS = ("add", "sub", "mul", "floordiv", "mod", "min", "max",
              "lt", "le", "gt", "ge", "eq", "ne", "and", "or")
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne", "and", "or")
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "/", "mod": "%", "lt": "<",
            "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "and": "&&", "or": "||"}
_PRECEDENCE = {"or": 1, "and": 2, "eq": 3, "ne": 3, "lt": 4, "le": 4, "gt": 4, "ge": 4,
               "add": 5, "sub": 5, "mul": 6, "floordiv": 6, "mod": 6}


class IndexExpr:
    """An immutable, hashable integer expression node.

    ``op`` is ``"loop"`` (args: axis), ``"const"`` (args: value), ``"extra"``
    (args: slot, *index expressions), ``"not"`` (args: operand) or one of
    `BINARY_OPS` (args: left, right). Build them with `loop`, `const`, `extra`
    and the arithmetic operators, which fold constants.
    """

    __slots__ = ("op", "args", "_hash")

    def __init__(self, op, args):
        self.op = op
        self.args = args
        self._hash = hash((op, args))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (self is other or isinstance(other, IndexExpr) and self._hash == other._hash
                and self.op == other.op and self.args == other.args)

    def __repr__(self):
        return f"IndexExpr({self})"

    def __str__(self):
        return _to_string(self, 0)

    def __add__(self, other):
        return binary("add", self, other)

    def __radd__(self, other):
        return binary("add", other, self)

    def __sub__(self, other):
        return binary("sub", self, other)

    def __rsub__(self, other):
        return binary("sub", other, self)

    def __mul__(self, other):
        return binary("mul", self, other)

    def __rmul__(self, other):
        return binary("mul", other, self)

    def __floordiv__(self, other):
        return binary("floordiv", self, other)

    def __mod__(self, other):
        return binary("mod", self, other)

    def __neg__(self):
        return binary("mul", self, -1)

    @property
    def is_const(self):
        """True for a constant."""
        return self.op == "const"


def loop(axis):
    """The loop index of ``axis`` (``i<axis>``)."""
    found = _loops.get(axis)
    if found is None:
        found = _loops[axis] = IndexExpr("loop", (axis,))
    return found


def const(value):
    """An integer constant."""
    found = _constants.get(value)
    if found is None:
        found = IndexExpr("const", (int(value),))
        if len(_constants) < _MEMO_SIZE and type(value) is int:
            _constants[value] = found
    return found


# Shared instances of the loops and of constants met so far: graph building makes them
# for every op (the objects are immutable, and fewer of them means less garbage collection).
_MEMO_SIZE = 1 << 16
_loops, _constants = {}, {}


def extra(slot, indices):
    """Integer read ``@e<slot>(indices...)`` from extra input ``slot``."""
    return IndexExpr("extra", (slot,) + tuple(_wrap(i) for i in indices))


def _wrap(value):
    if isinstance(value, IndexExpr):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return const(value)
    raise MetajitValueError(f"index expressions take integers, got {value!r}")


def _apply_int(op, a, b):
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "floordiv":
        return a // b if b else 0
    if op == "mod":
        return a % b if b else 0
    if op == "min":
        return min(a, b)
    if op == "max":
        return max(a, b)
    return int({"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b,
                "ne": a != b, "and": bool(a) and bool(b), "or": bool(a) or bool(b)}[op])


def binary(op, left, right):
    """Build ``left <op> right``, folding constants and trivial identities."""
    left, right = _wrap(left), _wrap(right)
    if left.is_const and right.is_const:
        return const(_apply_int(op, left.args[0], right.args[0]))
    if op == "add":
        if left.is_const and left.args[0] == 0:
            return right
        if right.is_const and right.args[0] == 0:
            return left
    elif op == "sub" and right.is_const and right.args[0] == 0:
        return left
    elif op == "mul":
        for a, b in ((left, right), (right, left)):
            if a.is_const and a.args[0] == 1:
                return b
            if a.is_const and a.args[0] == 0:
                return a
    elif op in ("floordiv", "mod") and right.is_const and right.args[0] == 1:
        return left if op == "floordiv" else const(0)
    elif op == "and":
        for a, b in ((left, right), (right, left)):
            if a.is_const:
                return b if a.args[0] else const(0)
    elif op == "or":
        for a, b in ((left, right), (right, left)):
            if a.is_const:
                return const(1) if a.args[0] else b
    return IndexExpr(op, (left, right))


def logical_not(operand):
    """``!operand`` (0 or 1)."""
    operand = _wrap(operand)
    if operand.is_const:
        return const(not operand.args[0])
    return IndexExpr("not", (operand,))


def all_of(conditions):
    """Logical and of a sequence of conditions; ``const(1)`` when empty."""
    result = const(1)
    for condition in conditions:
        result = binary("and", result, condition)
    return result


def any_of(conditions):
    """Logical or of a sequence of conditions; ``const(0)`` when empty."""
    result = const(0)
    for condition in conditions:
        result = binary("or", result, condition)
    return result


def _to_string(expr, parent_precedence):
    op = expr.op
    if op == "loop":
        return f"i{expr.args[0]}"
    if op == "const":
        return str(expr.args[0])
    if op == "extra":
        return f"@e{expr.args[0]}(" + ",".join(_to_string(a, 0) for a in expr.args[1:]) + ")"
    if op == "not":
        return "!" + _to_string(expr.args[0], 9)
    if op in ("min", "max"):
        return f"{op}({_to_string(expr.args[0], 0)},{_to_string(expr.args[1], 0)})"
    precedence = _PRECEDENCE[op]
    text = (_to_string(expr.args[0], precedence) + _SYMBOLS[op]
            + _to_string(expr.args[1], precedence + 1))
    return f"({text})" if precedence < parent_precedence else text


def substitute(expr, loops, extra_slots=None):
    """Replace ``i<k>`` by ``loops[k]`` and extra slot ``s`` by ``extra_slots[s]``."""
    memo = {}

    def visit(node):
        found = memo.get(node)
        if found is not None:
            return found
        op = node.op
        if op == "loop":
            result = loops[node.args[0]]
        elif op == "const":
            result = node
        elif op == "extra":
            slot = node.args[0] if extra_slots is None else extra_slots[node.args[0]]
            result = extra(slot, [visit(a) for a in node.args[1:]])
        elif op == "not":
            result = logical_not(visit(node.args[0]))
        else:
            result = binary(op, visit(node.args[0]), visit(node.args[1]))
        memo[node] = result
        return result

    return visit(expr)


def loop_axes(expr):
    """The set of loop axes an expression reads."""
    found = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node.op == "loop":
            found.add(node.args[0])
        elif node.op != "const":
            stack.extend(a for a in node.args if isinstance(a, IndexExpr))
    return found


def bounds(expr, domain):
    """Inclusive ``(low, high)`` interval of ``expr`` over loops ``0 <= i<k> < domain[k]``;
    an entry of ``domain`` may instead be an inclusive ``(low, high)`` pair (a tile).

    Unknown bounds are ``-inf`` / ``inf`` (extra loads are unbounded).
    """
    op = expr.op
    if op == "const":
        return expr.args[0], expr.args[0]
    if op == "loop":
        extent = domain[expr.args[0]]
        return extent if isinstance(extent, tuple) else (0, max(extent - 1, 0))
    if op == "extra":
        return -math.inf, math.inf
    if op in COMPARISONS or op == "not":
        return 0, 1
    (a_lo, a_hi), (b_lo, b_hi) = bounds(expr.args[0], domain), bounds(expr.args[1], domain)
    if op == "add":
        return a_lo + b_lo, a_hi + b_hi
    if op == "sub":
        return a_lo - b_hi, a_hi - b_lo
    if op == "min":
        return min(a_lo, b_lo), min(a_hi, b_hi)
    if op == "max":
        return max(a_lo, b_lo), max(a_hi, b_hi)
    if op == "mul":
        products = [_safe_mul(x, y) for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
        return min(products), max(products)
    if b_lo == b_hi and b_lo > 0 and math.isfinite(b_lo):
        divisor = b_lo
        if op == "floordiv":
            return _floor_div(a_lo, divisor), _floor_div(a_hi, divisor)
        if 0 <= a_lo and a_hi < divisor:
            return a_lo, a_hi
        return 0, divisor - 1
    return -math.inf, math.inf


def _safe_mul(x, y):
    if x == 0 or y == 0:
        return 0
    return x * y


def _floor_div(value, divisor):
    return value if math.isinf(value) else value // divisor


def _terms(expr):
    """Split a sum into its terms (sub becomes add of ``-1 *``)."""
    if expr.op == "add":
        return _terms(expr.args[0]) + _terms(expr.args[1])
    if expr.op == "sub":
        return _terms(expr.args[0]) + [binary("mul", expr.args[1], -1)]
    return [expr]


def _coefficient(term):
    """``(factor, constant)`` with ``term == factor * constant``."""
    if term.is_const:
        return const(1), term.args[0]
    if term.op == "mul" and term.args[1].is_const:
        return term.args[0], term.args[1].args[0]
    if term.op == "mul" and term.args[0].is_const:
        return term.args[1], term.args[0].args[0]
    return term, 1


def linear_form(expr):
    """``({axis: coefficient}, constant)`` when ``expr`` is affine in the loop indices, else None.

    Example: ``linear_form(parse("3 - i1*2", 2)) == ({1: -2}, 3)``.
    """
    coefficients, constant = {}, 0
    for term in _terms(expr):
        factor, scale = _coefficient(term)
        if factor.is_const:
            constant += scale * factor.args[0]
        elif factor.op == "loop":
            axis = factor.args[0]
            coefficients[axis] = coefficients.get(axis, 0) + scale
        else:
            return None
    return {a: c for a, c in coefficients.items() if c}, constant


def simplify(expr, domain):
    """Simplify floor division and modulo by constants using the loop bounds in ``domain``.

    ``(i0*4 + i1) // 4`` becomes ``i0`` and ``(i0*4 + i1) % 4`` becomes ``i1`` when
    ``0 <= i1 < 4``: what reshapes of reshapes need to stay cheap.
    """
    op = expr.op
    if op == "loop":
        return const(0) if domain[expr.args[0]] == 1 else expr
    if op == "const":
        return expr
    if op == "extra":
        return extra(expr.args[0], [simplify(a, domain) for a in expr.args[1:]])
    if op == "not":
        return logical_not(simplify(expr.args[0], domain))
    left, right = simplify(expr.args[0], domain), simplify(expr.args[1], domain)
    if op in ("floordiv", "mod") and right.is_const and right.args[0] > 0:
        divisor = right.args[0]
        quotient, remainder = const(0), const(0)
        for term in _terms(left):
            factor, constant = _coefficient(term)
            if constant % divisor == 0:
                quotient = binary("add", quotient, binary("mul", factor, constant // divisor))
            else:
                remainder = binary("add", remainder, term)
        low, high = bounds(remainder, domain)
        if 0 <= low and high < divisor:
            return quotient if op == "floordiv" else remainder
        blocked = _split_by_block(left, op, divisor, domain)
        if blocked is not None:
            return blocked
        if quotient.is_const and quotient.args[0] == 0:
            return binary(op, remainder, right)
        if op == "mod":
            return binary("mod", remainder, right)
    if op in ("add", "sub"):
        return _merge_quotient_and_remainder(binary(op, left, right))
    return binary(op, left, right)


def _split_by_block(value, op, divisor, domain):
    """``value // divisor`` or ``value % divisor`` when ``value = block * q + r`` with
    ``block`` dividing ``divisor`` and ``0 <= r < block``: ``q // (divisor / block)`` and
    ``block * (q % (divisor / block)) + r`` (floor division; ``q`` is an integer). A
    channel shuffle's flat index ``((i1 + 58) * 784 + i2 * 28 + i3) // 1568`` becomes
    ``(i1 + 58) // 2``, which leaves the innermost loop contiguous. None when no term's
    coefficient is such a block."""
    forms = [_coefficient(term) for term in _terms(value)]
    blocks = sorted({abs(scale) for _, scale in forms if 1 < abs(scale) < divisor and divisor % abs(scale) == 0},
                    reverse=True)
    for block in blocks:
        multiple, rest = const(0), const(0)
        for factor, scale in forms:
            if scale % block == 0:
                multiple = binary("add", multiple, binary("mul", factor, scale // block))
            else:
                rest = binary("add", rest, binary("mul", factor, scale))
        low, high = bounds(rest, domain)
        if 0 <= low and high < block:
            count = divisor // block
            if op == "floordiv":
                return simplify(binary("floordiv", multiple, count), domain)
            return binary("add", binary("mul", simplify(binary("mod", multiple, count), domain), block), rest)
    return None


def _merge_quotient_and_remainder(expr):
    """``(x // k) * k * c + (x % k) * c`` -> ``x * c`` inside a sum (true for floor and for
    truncating division alike): the scatter back through a pooling window's
    ``i // 2 * 2 + i % 2`` reads ``i`` again, contiguously."""
    terms = _terms(expr)
    forms = [_coefficient(term) for term in terms]
    for i, (quotient, scale) in enumerate(forms):
        if quotient.op != "floordiv" or not quotient.args[1].is_const or quotient.args[1].args[0] <= 0:
            continue
        divisor = quotient.args[1].args[0]
        for j, (remainder, remainder_scale) in enumerate(forms):
            if j != i and remainder.op == "mod" and remainder.args == quotient.args \
                    and scale == remainder_scale * divisor:
                rest = [t for k, t in enumerate(terms) if k not in (i, j)]
                merged = binary("mul", quotient.args[0], remainder_scale)
                for term in rest:
                    merged = binary("add", merged, term)
                return _merge_quotient_and_remainder(merged)
    return expr


@functools.lru_cache(maxsize=4096)
def reshape_exprs(source_shape, shape):
    """Index expressions reading ``source_shape`` row-major as ``shape`` (over ``shape``'s loops);
    a tuple, memoised since every reshape and its gradient asks again."""
    flat = const(0)
    stride = 1
    for axis in reversed(range(len(shape))):
        if shape[axis] != 1:
            flat = flat + loop(axis) * stride
        stride *= shape[axis]
    exprs, stride = [], 1
    for axis in reversed(range(len(source_shape))):
        size = source_shape[axis]
        position = flat // stride if axis == 0 else (flat // stride) % size
        exprs.append(const(0) if size == 1 else position)
        stride *= size
    return tuple(simplify(e, shape) for e in exprs[::-1])


def evaluate(expr, loops, load_extra=None):
    """Evaluate with numpy: ``loops[k]`` are integer arrays (broadcastable) for ``i<k>``.

    ``load_extra(slot, index_arrays)`` reads extra inputs. Returns an int64 array
    (or Python int for constants).
    """
    memo = {}

    def visit(node):
        found = memo.get(node)
        if found is not None:
            return found
        op = node.op
        if op == "loop":
            result = loops[node.args[0]]
        elif op == "const":
            result = np.int64(node.args[0])
        elif op == "extra":
            result = load_extra(node.args[0], [visit(a) for a in node.args[1:]])
        elif op == "not":
            result = np.logical_not(visit(node.args[0])).astype(np.int64)
        else:
            a, b = visit(node.args[0]), visit(node.args[1])
            result = _NUMPY_BINARY[op](np.asarray(a, np.int64), np.asarray(b, np.int64))
        memo[node] = result
        return result

    return visit(expr)


def _numpy_floordiv(a, b):
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.floor_divide(a, safe))


def _numpy_mod(a, b):
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.mod(a, safe))


_NUMPY_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "floordiv": _numpy_floordiv,
    "mod": _numpy_mod, "min": np.minimum, "max": np.maximum,
    "lt": lambda a, b: (a < b).astype(np.int64), "le": lambda a, b: (a <= b).astype(np.int64),
    "gt": lambda a, b: (a > b).astype(np.int64), "ge": lambda a, b: (a >= b).astype(np.int64),
    "eq": lambda a, b: (a == b).astype(np.int64), "ne": lambda a, b: (a != b).astype(np.int64),
    "and": lambda a, b: ((a != 0) & (b != 0)).astype(np.int64),
    "or": lambda a, b: ((a != 0) | (b != 0)).astype(np.int64),
}

_AST_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.FloorDiv: "floordiv",
               ast.Div: "floordiv", ast.Mod: "mod"}
_AST_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
                ast.NotEq: "ne"}


def parse(text, ndim, num_extras=0, names=None):
    """Parse a Jittor-style C expression into an `IndexExpr`.

    ``ndim`` loop indices ``i0..i<ndim-1>`` are in scope, plus ``@e<k>(...)`` for
    ``k < num_extras`` and the integer constants in ``names`` (e.g. ``xshape0``,
    ``XDIM``). Operators: ``+ - * / // % < <= > >= == != && || !``, ``min``, ``max``,
    parentheses. A malformed expression raises `MetajitValueError` naming it.

    Example: ``parse("i1*2+i2-1", ndim=3)``.
    """
    if isinstance(text, IndexExpr):
        return text
    if isinstance(text, (int, np.integer)):
        return const(text)
    if not isinstance(text, str):
        raise MetajitValueError(f"index expression must be a string, int or IndexExpr, got {text!r}")
    names = names or {}
    key = (text, ndim, num_extras, tuple(names.items()))
    parsed = _parsed.get(key)
    if parsed is None:
        if len(_parsed) >= PARSE_CACHE_SIZE:
            _parsed.clear()
        parsed = _parsed[key] = _parse_text(text, ndim, num_extras, names)
    return parsed


PARSE_CACHE_SIZE = 4096
_parsed = {}  # (text, ndim, extras, names) -> IndexExpr: pooling layers parse the same windows every step


def _parse_text(text, ndim, num_extras, names):
    source = re.sub(r"@e(\d+)\s*\(", r"__extra(\1,", text)
    source = source.replace("&&", " and ").replace("||", " or ")
    source = re.sub(r"!(?!=)", " not ", source)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        raise MetajitValueError(f"cannot parse index expression {text!r}") from None

    def fail(reason):
        raise MetajitValueError(f"bad index expression {text!r}: {reason}")

    def visit(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, bool)):
            return const(node.value)
        if isinstance(node, ast.Name):
            match = re.fullmatch(r"i(\d+)", node.id)
            if match:
                axis = int(match.group(1))
                if axis >= ndim:
                    fail(f"loop index {node.id} out of range: there are {ndim} loop indices "
                         f"(i0..i{ndim - 1})" if ndim else "there are no loop indices")
                return loop(axis)
            if node.id in names:
                return const(names[node.id])
            fail(f"unknown name {node.id!r}")
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_BINARY:
            return binary(_AST_BINARY[type(node.op)], visit(node.left), visit(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return binary("mul", visit(node.operand), -1)
            if isinstance(node.op, ast.UAdd):
                return visit(node.operand)
            if isinstance(node.op, ast.Not):
                return logical_not(visit(node.operand))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            result = visit(node.values[0])
            for value in node.values[1:]:
                result = binary(op, result, visit(value))
            return result
        if isinstance(node, ast.Compare):
            result, left = const(1), visit(node.left)
            for operator, comparator in zip(node.ops, node.comparators):
                if type(operator) not in _AST_COMPARE:
                    fail("unsupported comparison")
                right = visit(comparator)
                result = binary("and", result, binary(_AST_COMPARE[type(operator)], left, right))
                left = right
            return result
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [visit(a) for a in node.args]
            if node.func.id == "__extra":
                slot = args[0].args[0]
                if slot >= num_extras:
                    fail(f"@e{slot} refers to a missing extra input ({num_extras} given)")
                return extra(slot, args[1:])
            if node.func.id in ("min", "max") and len(args) == 2:
                return binary(node.func.id, *args)
        fail(f"unsupported syntax {ast.unparse(node)!r}")

    return visit(tree.body)
