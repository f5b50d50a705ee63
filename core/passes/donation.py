"""Donated values: realised leaves whose buffers a realisation may write its outputs into.

An optimiser step replaces every parameter and state value (momentum) with a new one
computed from the old; without donation both live at once, a model's parameters and
state twice over at the peak of the step (PyTorch updates in place). The optimiser
passes the old nodes as ``donated`` to `metajit.passes.executor.realise`; a donated leaf
whose buffer nothing outside the realisation can still read becomes a free buffer
after its last reader step, and an output of its size class takes it over.

"Nothing outside can read it" is checked, not assumed: the node's reference count must
be exactly the references the realisation accounts for (the graph order, the inputs of
the nodes in it, the donation list), and its buffer must belong to it alone. A Var or
any other value still holding the old node (a lazy copy made before the step) keeps it.

A node whose buffer was taken over is invalidated: realising anything that still reads
it (differentiating the step's loss again) raises `MetajitValueError`, as PyTorch does
when a value saved for backward was modified in place.
"""
import collections
import sys

from . import graphwalk
from ..ir.graph import numel
from ..toolkit.allocator import size_class

DONATED = "donated"  # the op of an invalidated node

# references to a donated leaf that `positions` itself holds while it counts: its loop
# variable and getrefcount's argument (the caller's list and the order are counted apart)
_OWN_REFERENCES = 2


def positions(donated, order, handle, targets, walked=None):
    """The positions in ``order`` of the ``donated`` leaves whose buffers this realisation
    may reuse (see the module docstring), as a sorted tuple. None are when a value
    computed from them that is not among the ``targets`` is held elsewhere (the logits a
    training loop keeps for its accuracy): it may be computed again after the step.
    ``walked``: what `held_values` returned with its held values; when ``order`` is the
    order it walked (no value was added, no library op expanded since), its walk is not
    repeated."""
    if not donated:
        return ()
    if walked is not None and walked[0] is order:
        readers = walked[1]  # the held values it found are targets now
    else:
        readers = _readers(order)
        for _ in _held(donated, order, readers, {id(t) for t in targets}):
            return ()  # (`held_values` made them targets: only an unexpected holder is left)
    places = dict(zip(map(id, donated), graphwalk.positions_of(order, donated)))
    found = []
    for node in donated:
        place = places[id(node)]
        buffer = node.buffer
        if place < 0 or buffer is None or node.host_data is not None or buffer.handle is not handle:
            continue
        # the caller's list, the order, each reading input, and this function's own
        expected = 1 + 1 + readers[id(node)] + _OWN_REFERENCES
        if sys.getrefcount(node) != expected or not _owns(node, buffer):
            continue
        found.append(place)
    del node
    return tuple(sorted(found))


def held_values(donated, order, targets):
    """``(held, walked)``: the values of ``order`` computed from a ``donated`` leaf, other
    than the ``targets``, that something outside the graph holds (a Var: the logits a
    training loop keeps for its accuracy), and what the walk found, for `positions`. The
    executor computes and keeps the held values with the step: they could not be computed
    again once the leaf's memory is reused."""
    if graphwalk.native is not None:
        held, readers = graphwalk.native.held_values(order, donated, targets)
    else:
        readers = _readers(order)
        held = [node for node in _held(donated, order, readers, {id(t) for t in targets})]
    return held, (order, readers)


def _readers(order):
    """How many input slots of ``order``'s nodes hold each node (by id)."""
    return collections.Counter([id(source) for node in order for source in node.inputs])


def _held(donated, order, readers, targets):
    """`held_values` as a generator (its own references are what it subtracts), where the
    C walk (`graphwalk.native.held_values`) is not built. A DenseNet's training step has
    20000 nodes, nearly all computed from a parameter: the per-node tests stay in C
    (set operations, ``map``)."""
    dependent = {id(node) for node in donated}
    isdisjoint, getrefcount = dependent.isdisjoint, sys.getrefcount
    for node in order:
        if node.inputs and not isdisjoint(map(id, node.inputs)):
            dependent.add(id(node))
            # the order, each reading input, this loop's name and getrefcount's argument
            if getrefcount(node) != 1 + readers[id(node)] + 2 and id(node) not in targets:
                yield node


def _owns(node, buffer):
    """Whether ``buffer`` is ``node``'s alone and of its size class (an alias would see
    the new contents; another size could not serve an output of the node's size)."""
    capacity = getattr(buffer.raw, "capacity", None)
    # the node's attribute, the caller's and this function's names, getrefcount's argument
    return sys.getrefcount(buffer) == 4 and capacity == size_class(numel(node.shape) * node.dtype.itemsize)


def invalidate(nodes):
    """Mark ``nodes`` (donated leaves whose buffers were taken over) as no longer holding a value."""
    for node in nodes:
        node.buffer = None
        node.op, node.inputs, node.attrs = DONATED, (), ()
