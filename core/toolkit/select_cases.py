"""Splitting an element-wise kernel into cases where its selects choose by outer loop indices.

A concat is a tree of ``select``s on the output position along the joined axis, each
leaf a reindexed input; rendered as one loop body, every element loads every input and
keeps one (a DenseNet block's concat of 32 feature maps loads 32 values per element).
When a select's condition depends only on loop indices outside the innermost loop (and
on parameters), it is the same for a whole innermost run: the renderer can test it once
per run and run a body in which the select is resolved, reading one input.

`split_by_invariant_selects` finds such selects and returns the decision tree: a
`Branch` tests a condition and goes on in one of two subtrees; a `Case` holds the stores
with every tested select replaced by the branch taken. Only selects with loads on both
sides are split on (a select between a load and a constant, as an out-of-range guard,
costs nothing to keep), and no tree with more than ``max_cases`` cases is built.

Example: for ``out[i0, i1] = select(i0 < p0, in0[i0, i1], in1[i0 - 32, i1])`` with the
inner loop over ``i1``::

    tree = split_by_invariant_selects(kernel.stores, inner_axis=1)
    # Branch(condition=lt(i0, p0), if_true=Case([... in0 ...]), if_false=Case([... in1 ...]))
"""
import dataclasses

from metajit.ir import indexexpr
from metajit.ir.kernel import Store, ValueExpr
from metajit.toolkit.analysis import has_extra
from metajit.toolkit.codegen import LEAF_OPS

MAX_CASES = 64


@dataclasses.dataclass(frozen=True)
class Case:
    """The stores of one leaf of the decision tree, their selects resolved."""

    stores: tuple


@dataclasses.dataclass(frozen=True)
class Branch:
    """Test ``condition`` (a bool-valued ValueExpr of outer indices) once per inner run."""

    condition: ValueExpr
    if_true: object
    if_false: object


class _TooManyCases(Exception):
    pass


def split_by_invariant_selects(stores, inner_axis, max_cases=MAX_CASES):
    """The decision tree (`Branch`/`Case`) for ``stores``, or None when no select can be
    resolved outside the loop over ``inner_axis`` or the tree would pass ``max_cases``."""
    stores = tuple(stores)
    analysis = _Analysis(inner_axis)
    counter = [0]
    try:
        tree = _build(stores, {}, analysis, counter, max_cases)
    except _TooManyCases:
        return None
    return tree if isinstance(tree, Branch) else None


def _build(stores, assumptions, analysis, counter, max_cases):
    resolved = tuple(_with_value(store, _resolve(store.value, assumptions, {})) for store in stores)
    condition = analysis.next_condition([store.value for store in resolved])
    if condition is None:
        counter[0] += 1
        if counter[0] > max_cases:
            raise _TooManyCases()
        return Case(resolved)
    return Branch(condition,
                  _build(resolved, {**assumptions, condition: True}, analysis, counter, max_cases),
                  _build(resolved, {**assumptions, condition: False}, analysis, counter, max_cases))


def _with_value(store, value):
    if value is store.value:
        return store
    return Store(store.slot, store.index, value, store.reduce_op, store.condition)


def _resolve(expr, assumptions, memo):
    """``expr`` with each select whose condition is in ``assumptions`` replaced by the side taken."""
    if expr.op in LEAF_OPS:
        return expr
    found = memo.get(expr)
    if found is not None:
        return found
    if expr.op == "select" and expr.args[0] in assumptions:
        result = _resolve(expr.args[1] if assumptions[expr.args[0]] else expr.args[2], assumptions, memo)
    else:
        args = tuple(_resolve(arg, assumptions, memo) for arg in expr.args)
        result = expr if all(a is b for a, b in zip(args, expr.args)) else ValueExpr(expr.op, args, expr.dtype)
    memo[expr] = result
    return result


class _Analysis:
    """Which values are the same for a whole inner run, and which hold loads (memoised)."""

    def __init__(self, inner_axis):
        self.inner_axis = inner_axis
        self.invariant = {}
        self.loads = {}

    def is_invariant(self, expr):
        found = self.invariant.get(expr)
        if found is None:
            op = expr.op
            if op in ("const", "param"):
                found = True
            elif op == "index":
                index = expr.args[0]
                found = self.inner_axis not in indexexpr.loop_axes(index) and not has_extra(index)
            elif op == "load":
                found = False
            else:
                found = all(self.is_invariant(arg) for arg in expr.args)
            self.invariant[expr] = found
        return found

    def has_load(self, expr):
        found = self.loads.get(expr)
        if found is None:
            found = expr.op == "load" or (expr.op not in LEAF_OPS and any(self.has_load(arg) for arg in expr.args))
            self.loads[expr] = found
        return found

    def next_condition(self, values):
        """The condition of the first select (depth first) worth splitting on, or None."""
        seen, stack = set(), list(reversed(values))
        while stack:
            expr = stack.pop()
            if expr in seen or expr.op in LEAF_OPS:
                continue
            seen.add(expr)
            if (expr.op == "select" and self.is_invariant(expr.args[0]) and self.has_load(expr.args[1])
                    and self.has_load(expr.args[2])):
                return expr.args[0]
            stack.extend(reversed(expr.args))
        return None
