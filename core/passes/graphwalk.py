"""Walks over the lazy graph that every realisation and every ``jt.grad`` makes: the
topological order behind some targets and the structure entries the plan cache and the
backward cache are keyed by.

They run once per step over every node of the step (a training step of a small MLP
has ~160), so they are also written in C (``_graphwalk.c``, built by ``pip install``
as an optional extension); without it the Python versions here run, with identical
results. ``METAJIT_PURE_PYTHON=1`` forces the Python versions.
"""
import os

from ..ir.graph import Node

try:
    if os.environ.get("METAJIT_PURE_PYTHON") == "1":
        raise ImportError("METAJIT_PURE_PYTHON=1")
    from . import _graphwalk as native
    native.set_node_type(Node)
except ImportError:
    native = None

_STOP_AT_REALISED, _STOP_AT_NO_GRAD = 0, 1


def _is_realised(node):
    return node.is_realised


def _python_order(targets, is_boundary):
    order, visited, finishing = [], set(), []
    for target in targets:
        if id(target) in visited:
            continue
        stack = [target]
        while stack:
            node = stack.pop()
            if node is None:  # every input of the node on top of `finishing` is placed
                order.append(finishing.pop())
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append(None)
            finishing.append(node)
            if is_boundary(node):
                continue
            for source in reversed(node.inputs):
                if id(source) not in visited:
                    stack.append(source)
    return order


def realised_order(targets):
    """Nodes reachable from ``targets`` (inputs first), not descending below realised ones."""
    if native is not None:
        return native.topological_order(targets, _STOP_AT_REALISED, None)
    return _python_order(targets, _is_realised)


def gradient_order(root, stop_ids=frozenset()):
    """Nodes gradients can flow through from ``root`` (inputs first): not descending below
    nodes without ``requires_grad``, gradient boundaries, or nodes whose id is in ``stop_ids``."""
    if native is not None:
        return native.topological_order([root], _STOP_AT_NO_GRAD, stop_ids)
    return _python_order([root], lambda n: not n.requires_grad or n.grad_boundary or id(n) in stop_ids)


def positions(order):
    """Each node's position in ``order``, by id."""
    return {id(n): k for k, n in enumerate(order)}


def positions_of(order, nodes):
    """The position in ``order`` of each of a few ``nodes`` (-1 for one not in it), as a
    list: one scan, no map of the whole order (a training step's has 20000 nodes)."""
    if native is not None:
        return native.positions_of(order, nodes)
    position = positions(order)
    return [position.get(id(n), -1) for n in nodes]


def held_results(order, targets, stored_ops):
    """The unrealised nodes of ``order``, other than ``targets``, that a live Var refers to
    (its ``holder``) and that are computed from an unrealised node whose op is in
    ``stored_ops`` (such nodes included), in order."""
    if native is not None:
        return native.held_results(order, targets, tuple(stored_ops))
    chosen = {id(node) for node in targets}
    downstream = set()  # ids of the unrealised nodes computed from a stored op
    held = []
    for node in order:
        if node.buffer is not None:
            continue
        if node.op not in stored_ops:
            for source in node.inputs:
                if id(source) in downstream:
                    break
            else:
                continue
        downstream.add(id(node))
        holder = getattr(node, "holder", None)  # (unset on a node made without __init__)
        var = holder() if holder is not None and id(node) not in chosen else None
        if var is not None and var._node is node:
            held.append(node)
    return held


def plan_entries(order, targets):
    """``(entries, target positions)`` describing the unrealised graph ``order`` for the plan
    cache: realised nodes by (on host?, shape, dtype), constants by dtype (never value),
    others by op, attrs, shape, dtype and input positions."""
    if native is not None:
        return native.plan_structure(order, targets)
    position = positions(order)
    entries = []
    for node in order:
        if node.is_realised:
            entries.append((node.buffer is None, node.shape, node.dtype))
        elif node.op == "constant":
            entries.append(("constant", node.dtype))
        else:
            entries.append((node.op, node.attrs, node.shape, node.dtype,
                            tuple([position[id(i)] for i in node.inputs])))
    return tuple(entries), tuple([position[id(t)] for t in targets])


class PlanKey:
    """The plan cache's key for a graph: ``structure`` (bytes from the C walk: kinds, ops
    and dtypes by number, shapes, input positions; `plan_entries`' tuple without it) and
    ``attrs`` (the nodes' non-empty attrs, in order) with ``extra`` (target positions and
    whatever else the caller keys by). Hashed once, from ``structure`` and ``extra``;
    compared bytes first, then attrs (index expressions are never hashed)."""

    __slots__ = ("structure", "attrs", "extra", "_hash")

    def __init__(self, structure, attrs, extra):
        self.structure, self.attrs, self.extra = structure, attrs, extra
        self._hash = hash((structure, extra))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (isinstance(other, PlanKey) and self._hash == other._hash and self.structure == other.structure
                and self.extra == other.extra and self.attrs == other.attrs)


def plan_key(order, targets, extra=()):
    """The `PlanKey` of the unrealised graph ``order`` with ``targets`` (what `plan_entries`
    describes), ``extra`` appended to its target positions."""
    if native is not None:
        structure, attrs, where = native.plan_key(order, targets)
        return PlanKey(structure, attrs, (where,) + tuple(extra))
    entries, where = plan_entries(order, targets)
    return PlanKey(entries, (), (where,) + tuple(extra))


def gradient_entries(order, targets):
    """``(entries, target positions or -1)`` describing what the gradient rules see of
    ``order``: op, attrs (not constant values), shape, dtype, ``requires_grad``,
    ``grad_boundary``, and input positions where gradients pass (else the input count)."""
    if native is not None:
        return native.grad_structure(order, targets)
    position = positions(order)
    entries = []
    for node in order:
        descends = node.needs_inputs_for_grad
        entries.append((node.op, None if node.op == "constant" else node.attrs, node.shape, node.dtype,
                        node.requires_grad, node.grad_boundary,
                        tuple(position[id(i)] for i in node.inputs) if descends else len(node.inputs)))
    return tuple(entries), tuple(position.get(id(t), -1) for t in targets)
