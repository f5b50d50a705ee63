"""Deferred checks of values only the device knows, such as index Vars computed by kernels:
PyTorch's device-side asserts, for every backend.

The front end registers a check on the node it guards (a gather through a computed index)
with the small nodes that decide it (an "any index out of range" flag and the offending
values). The next realisation that computes the guarded node also computes those nodes,
reads them back (a few bytes) and raises the check's error before any value of that
realisation can be used; the check stays registered, so a retry raises again.
``jt.flags.check_indices = 0`` stops the front end registering them (for speed).

Example (what `metajit.indexing` does)::

    register(result_node, [flag_node, value_node],
             lambda flag, value: f"index {value} is out of range" if flag else None)
"""
import sys
import threading

from ..errors import MetajitError, MetajitIndexError
from . import graphwalk

PRUNE_ABOVE = 16  # entries kept before unreachable ones are dropped (each may hold a graph)


class _Registry(threading.local):
    """The checks registered in this thread and not yet run."""

    def __init__(self):
        self.entries = []  # (guarded node, nodes to read, describe)


_registry = _Registry()


def register(guarded, nodes, describe):
    """Run ``describe(*values of nodes)`` with the realisation that first computes
    ``guarded``: None when all is well, else a message (raised as `MetajitIndexError`) or
    the `MetajitError` to raise."""
    entries = _registry.entries
    entries.append((guarded, tuple(nodes), describe))
    if len(entries) > PRUNE_ABOVE:
        # forget checks whose guarded node is computed or unreachable (held by this entry only)
        entries[:] = [e for e in entries if not e[0].is_realised and sys.getrefcount(e[0]) > 2]


def due(targets, order=None):
    """The registered checks whose guarded node a realisation of ``targets`` computes,
    taken out of the registry; their nodes must be realised with the targets. ``order``:
    the targets' `graphwalk.realised_order` when the caller has it."""
    entries = _registry.entries
    if not entries:
        return []
    if order is None:
        order = graphwalk.realised_order(targets)
    computed = graphwalk.positions_of(order, [e[0] for e in entries])
    found = [e for e, place in zip(entries, computed) if place >= 0]
    if found:
        entries[:] = [e for e, place in zip(entries, computed) if place < 0]
    return found


def restore(found):
    """Put checks taken by `due` back (their realisation did not finish)."""
    _registry.entries.extend(found)


def verify(found, read):
    """Raise the error of the first failing check of ``found`` (``read(node)`` gives a
    realised node's value); failing checks go back to the registry."""
    for guarded, nodes, describe in found:
        failure = describe(*[read(node) for node in nodes])
        if failure is not None:
            raise failure if isinstance(failure, MetajitError) else MetajitIndexError(failure)
