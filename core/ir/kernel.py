"""Backend-neutral fused kernels: the plain data that core hands to every backend.

A `Kernel` is a loop domain (a shape), input buffers read through `ValueExpr`
``load`` nodes at `IndexExpr` positions, a tree of element-wise meta-ops, and one
or more `Store` s. A store with a ``reduce_op`` accumulates into its output (a
reduction, or a reindex_reduce scatter when its index is not a plain subset of the
loop indices); the output starts at the reduction's identity. A store only writes
where its ``condition`` holds (the overflow rule of reindex_reduce).

Kernels are immutable, hashable and printable; equal kernels compile to the same
program, which is what backend caches key on.
"""
import dataclasses
import weakref

from . import indexexpr
from .indexexpr import IndexExpr


_interned = weakref.WeakValueDictionary()  # key -> the one ValueExpr with it


class ValueExpr:
    """A node of a kernel's value tree.

    ``op`` is ``"load"`` (args: input slot, tuple of IndexExpr), ``"const"`` (args:
    a Python scalar baked into the code), ``"param"`` (args: parameter slot; a scalar
    whose value is passed at launch), ``"index"`` (args: one IndexExpr, its value as ``dtype``), or
    an element-wise meta-op from `metajit.ir.opset` (args: operand ValueExprs; ``cast``
    converts to ``dtype``).
    """

    __slots__ = ("op", "args", "dtype", "_key", "_hash", "__weakref__")

    def __new__(cls, op, args, dtype):
        # hash-consed: equal expressions are one object, so comparing two kernels (cache
        # lookups) stops at shared subexpressions instead of walking the DAG as a tree,
        # which is exponential in its depth when values are reused (an elimination chain)
        key = (op, str(dtype), (repr(args[0]),) if op == "const" else args)
        found = _interned.get(key)
        if found is not None:
            return found
        self = object.__new__(cls)
        self.op = op
        self.args = args
        self.dtype = dtype
        self._key = key
        self._hash = hash(key)
        _interned[key] = self
        return self

    def __reduce__(self):
        return ValueExpr, (self.op, self.args, self.dtype)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return self is other or (isinstance(other, ValueExpr) and self._hash == other._hash
                                 and self._key == other._key)

    def __str__(self):
        if self.op == "load":
            return f"in{self.args[0]}[{', '.join(map(str, self.args[1]))}]"
        if self.op == "const":
            return f"{self.args[0]!r}:{self.dtype}"
        if self.op == "param":
            return f"param{self.args[0]}:{self.dtype}"
        if self.op == "index":
            return f"({self.args[0]}):{self.dtype}"
        if self.op == "cast":
            return f"cast<{self.dtype}>({self.args[0]})"
        return f"{self.op}({', '.join(map(str, self.args))})"

    __repr__ = __str__


def load(slot, index, dtype):
    """Read input ``slot`` at the IndexExpr tuple ``index``."""
    return ValueExpr("load", (slot, tuple(index)), dtype)


def constant(value, dtype):
    """A scalar constant of ``dtype``."""
    return ValueExpr("const", (value,), dtype)


def parameter(slot, dtype):
    """Scalar parameter ``slot`` of ``dtype``; its value is an argument of each launch."""
    return ValueExpr("param", (slot,), dtype)


def index_value(expr, dtype):
    """The integer IndexExpr ``expr`` as a value of ``dtype`` (e.g. a bool condition)."""
    if expr.is_const:
        return constant(bool(expr.args[0]) if dtype == "bool" else expr.args[0], dtype)
    return ValueExpr("index", (expr,), dtype)


def apply(op, operands, dtype):
    """Element-wise meta-op ``op`` over ``operands`` giving ``dtype``."""
    return ValueExpr(op, tuple(operands), dtype)


class Store:
    """Write ``value`` to output ``slot`` at ``index``, where ``condition`` holds.

    With ``reduce_op`` (a `metajit.ir.opset.REDUCE_OPS` name) several loop iterations
    may hit one position and are combined; otherwise each position is written once.
    """

    __slots__ = ("slot", "index", "value", "reduce_op", "condition", "_key")

    def __init__(self, slot, index, value, reduce_op=None, condition=None):
        self.slot = slot
        self.index = tuple(index)
        self.value = value
        self.reduce_op = reduce_op
        self.condition = condition if condition is not None else indexexpr.const(1)
        self._key = (slot, self.index, value, reduce_op, self.condition)

    def __eq__(self, other):
        return isinstance(other, Store) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def reduced_axes(self, domain, output_shape):
        """Loop axes a plain reduction folds, or None when the store is a scatter.

        A plain reduction stores at a subset of the loop indices in increasing order, each
        spanning its whole output dim (constant 0 only at output dims of size 1, as keepdims
        leaves them); the axes not stored are the reduced ones.
        """
        kept = [e.args[0] for e in self.index if e.op == "loop"]
        plain = all((e.op == "loop" and domain[e.args[0]] == size)
                    or (e == indexexpr.const(0) and size == 1)
                    for e, size in zip(self.index, output_shape))
        if not plain or kept != sorted(set(kept)) or not self.condition.is_const:
            return None
        return tuple(a for a in range(len(domain)) if a not in kept)


class Kernel:
    """One fused loop nest: ``domain`` shape, typed ``inputs``/``outputs``, ``stores``.

    ``inputs`` and ``outputs`` are tuples of ``(dtype, shape)``; ``parameters`` the
    dtypes of the scalar parameters (user constants such as ``x * 0.5``), whose values
    come with each launch, so a kernel compiled once serves every value. Example (a
    fused ``relu(a*b) * 0.5`` over 4 elements)::

        kernel domain=(4,) inputs=[float32(4,), float32(4,)] outputs=[float32(4,)] parameters=[float32]
          out0[i0] = mul(maximum(mul(in0[i0], in1[i0]), 0.0:float32), param0:float32)
    """

    __slots__ = ("domain", "inputs", "outputs", "stores", "parameters", "_hash")

    def __init__(self, domain, inputs, outputs, stores, parameters=()):
        self.domain = tuple(domain)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.stores = tuple(stores)
        self.parameters = tuple(parameters)
        self._hash = hash(self._key())

    def _key(self):
        return (self.domain, self.inputs, self.outputs, self.stores, self.parameters)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (isinstance(other, Kernel) and self._hash == other._hash
                and self._key() == other._key())

    def __str__(self):
        def typed(entries):
            return "[" + ", ".join(f"{d}{tuple(s)}" for d, s in entries) + "]"
        lines = [f"kernel domain={self.domain} inputs={typed(self.inputs)} "
                 f"outputs={typed(self.outputs)}"]
        if self.parameters:
            lines[0] += " parameters=[" + ", ".join(map(str, self.parameters)) + "]"
        names = {}
        for shared in _shared_subexpressions([store.value for store in self.stores]):
            lines.append(f"  v{len(names)} = {_expression_text(shared, names)}")
            names[shared] = f"v{len(names)}"
        for store in self.stores:
            target = f"out{store.slot}[{', '.join(map(str, store.index))}]"
            assign = f" {store.reduce_op}= " if store.reduce_op else " = "
            guard = "" if store.condition == indexexpr.const(1) else f"if ({store.condition}) "
            lines.append(f"  {guard}{target}{assign}{_expression_text(store.value, names)}")
        return "\n".join(lines)

    __repr__ = __str__


_LEAF_OPS = ("load", "const", "param", "index")


def _shared_subexpressions(roots):
    """The operations reached more than once from ``roots`` (a DAG), operands first: a
    kernel's text names them once instead of repeating them (exponentially, in a chain
    that reuses values)."""
    seen, shared, order = set(), set(), []
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        expr, expanded = stack.pop()
        if expr.op in _LEAF_OPS:
            continue
        if expanded:
            order.append(expr)
            continue
        if expr in seen:
            shared.add(expr)
            continue
        seen.add(expr)
        stack.append((expr, True))
        stack.extend((operand, False) for operand in reversed(expr.args))
    return [expr for expr in order if expr in shared]


def _expression_text(expr, names):
    """``expr`` printed with the subexpressions in ``names`` by their names."""
    if expr in names:
        return names[expr]
    if expr.op in _LEAF_OPS:
        return str(expr)
    operands = [_expression_text(operand, names) for operand in expr.args]
    if expr.op == "cast":
        return f"cast<{expr.dtype}>({operands[0]})"
    return f"{expr.op}({', '.join(operands)})"


@dataclasses.dataclass(frozen=True)
class LibraryCall:
    """A step a backend runs with a library (BLAS, oneDNN, cuBLAS, cuDNN): op ``name``,
    hashable ``attrs``, and the ``(dtype, shape)`` of each input and output buffer (all
    dense, row-major). Example: ``LibraryCall("conv2d", ((1, 1), (0, 0), (1, 1), 1),
    ((float32, (8, 3, 32, 32)), (float32, (16, 3, 3, 3))), ((float32, (8, 16, 30, 30)),))``."""

    name: str
    attrs: tuple
    inputs: tuple
    outputs: tuple


__all__ = ["ValueExpr", "Store", "Kernel", "LibraryCall", "IndexExpr", "load", "constant", "parameter",
           "index_value", "apply"]
