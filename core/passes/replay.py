"""Launch a captured realisation again on new values (`metajit.compile`'s replays).

A realisation's plan names its nodes by their positions in the graph order
(`fusion.PlanTemplate`), so the launches of one captured graph run again on other values
of its leaves without building, walking or planning the graph: `Replay` keeps its own
copy of the order, whose bound leaves take the buffers of each call's values, and hands
back the outputs' buffers as new realised nodes.
"""
import threading

from ..ir.graph import Node
from ..toolkit.allocator import begin_sequence
from . import executor, graphwalk


class Replay:
    """The launches of one captured realisation, replayed with new leaf values.

    ``captured``: what `executor.realise` appended to its ``capture`` list (not a reason
    string); ``targets``: the nodes that realisation was asked for (the call's outputs);
    ``bound``: ``{id(leaf node): slot}`` of the leaves whose values each `run` gives. Every
    other leaf is a constant: its value at capture is kept and read by every replay.
    """

    def __init__(self, captured, targets, bound):
        self.handle, self.template, order, self.steps, self.arena_bytes = captured
        position = graphwalk.positions(order)
        leaves = {id(n) for n in self.template.leaves(order)} if self.template is not None else set()
        self.bound = [(p, bound[id(n)]) for p, n in enumerate(order) if id(n) in leaves and id(n) in bound]
        self.constants = {p for p, n in enumerate(order) if id(n) in leaves and id(n) not in bound}
        self.order = [_copy(n, n.buffer if p in self.constants else None) for p, n in enumerate(order)]
        self.cleared = [p for p in range(len(order)) if p not in self.constants]
        self.outputs = []  # per target: ("position", p), ("slot", s) or ("constant", node)
        for node in targets:
            if id(node) in position:
                self.outputs.append(("position", position[id(node)]))
            elif id(node) in bound:
                self.outputs.append(("slot", bound[id(node)]))
            else:
                self.outputs.append(("constant", _copy(node, node.buffer)))
        self.lock = threading.Lock()  # the copy of the order holds one call's buffers at a time

    def run(self, values):
        """Launch again with ``values`` (realised nodes on the device, one per slot) and
        return the outputs as new realised nodes, in the order of ``targets``."""
        order = self.order if self.lock.acquire(blocking=False) else None
        locked = order is not None
        if not locked:  # another thread replays this graph now: a copy of its own
            order = [n if p in self.constants else _copy(n, None) for p, n in enumerate(self.order)]
        try:
            for p, slot in self.bound:
                node = order[p]
                node.buffer = values[slot].buffer
                if node.buffer.handle is not self.handle:
                    executor.migrate(self.handle, node)
            if self.steps:
                begin_sequence()
                executor.launch_steps(self.handle, self.template, order, self.steps, self.arena_bytes)
            results = []
            for kind, where in self.outputs:
                if kind == "position":
                    buffer = order[where].buffer
                    reference = order[where]
                elif kind == "slot":
                    reference = values[where]
                    buffer = reference.buffer
                else:
                    reference, buffer = where, where.buffer
                results.append(_copy(reference, buffer))
            return results
        finally:
            for p in self.cleared:
                order[p].buffer = None
            if locked:
                self.lock.release()


def _copy(node, buffer):
    """A node of ``node``'s op, attributes, shape and dtype without inputs, holding ``buffer``."""
    copy = Node(node.op, (), node.attrs, node.shape, node.dtype)
    copy.buffer = buffer
    return copy
