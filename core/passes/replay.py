"""Launch a captured realisation again on new values (`metajit.compile`'s replays).

A realisation's plan names its nodes by their positions in the graph order
(`fusion.PlanTemplate`), so the launches of one captured graph run again on other values
of its leaves without building, walking or planning the graph: `Replay` keeps its own
copy of the order, whose bound leaves take the buffers of each call's values, and hands
back the outputs' buffers as new realised nodes.

Where every intermediate lives in the realisation's arena (backends that make views of a
buffer), the replay keeps that arena and the launch list built once (`_Prebuilt`): a call
then fills in the buffers of its values and outputs and launches. Elsewhere, while another
thread replays the same graph, or while profiling, it runs `executor.launch_steps` on its
copy of the order.
"""
import threading

from .. import debug
from ..ir.graph import Node
from ..toolkit.allocator import begin_sequence, mark_written
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
        self.lock = threading.Lock()  # the copy of the order (and the prebuilt launches) serve one call at a time
        self.prebuilt = None if not self.steps else _Prebuilt.of(self)

    def run(self, values):
        """Launch again with ``values`` (realised nodes, one per slot; moved to this
        replay's device when elsewhere) and return the outputs as new realised nodes, in
        the order of ``targets``."""
        for node in values:  # (as a realisation moves its leaves to its device)
            if node.buffer.handle is not self.handle:
                executor.migrate(self.handle, node)
        if not self.lock.acquire(blocking=False):  # another thread replays this graph now
            return self._run_steps([n if p in self.constants else _copy(n, None) for p, n in enumerate(self.order)],
                                   values)
        try:
            if self.prebuilt is not None and not debug.is_timing() and not debug.is_recording():
                return self.prebuilt.run(values)
            return self._run_steps(self.order, values)
        finally:
            self.lock.release()

    def _run_steps(self, order, values):
        try:
            for p, slot in self.bound:
                order[p].buffer = values[slot].buffer
            if self.steps:
                begin_sequence()
                executor.launch_steps(self.handle, self.template, order, self.steps, self.arena_bytes)
            return [_copy(*self._output(order, values, kind, where)) for kind, where in self.outputs]
        finally:
            for p in self.cleared:
                order[p].buffer = None

    def _output(self, order, values, kind, where):
        """``(node it describes, buffer)`` of one output."""
        if kind == "position":
            return order[where], order[where].buffer
        if kind == "slot":
            return values[where], values[where].buffer
        return where, where.buffer


class _Prebuilt:
    """A replay's launches built once: its intermediates at fixed places in an arena it
    keeps, and the places where each call's values and new outputs go (``holes``)."""

    @classmethod
    def of(cls, replay):
        """The prebuilt launches of ``replay``, or None where its plan gives an output or an
        intermediate memory other than its own buffer or a place in the arena."""
        prebuilt = cls()
        order, handle = replay.order, replay.handle
        position = graphwalk.positions(order)
        arena = executor.DeviceBuffer(handle, replay.arena_bytes) if replay.arena_bytes else None
        prebuilt.parts = []  # the arena's parts, kept alive
        root = {}  # position -> position whose buffer it shares (alias steps)
        fixed = {p: order[p].buffer.raw for p in replay.constants}
        prebuilt.fresh = {}  # position -> bytes: a new buffer each call (outputs)
        per_call = {p for p, _ in replay.bound}
        prebuilt.sequence, prebuilt.holes, prebuilt.written = [], [], []
        for program, inputs, outputs, parameters, sizes, sources, offsets in replay.steps:
            ins = [root.get(position[id(n)], position[id(n)]) for n in inputs(order)]
            outs = [position[id(n)] for n in outputs(order)]
            if program is None:
                root[outs[0]] = ins[0]
                continue
            for p, size, source, offset in zip(outs, sizes, sources, offsets):
                if offset is not None:
                    part = executor.DeviceBuffer.part(arena, offset, size)
                    prebuilt.parts.append(part)
                    fixed[p] = part.raw
                elif source is None:
                    prebuilt.fresh[p] = size
                    per_call.add(p)
                else:
                    return None
            launch = (program, [fixed.get(p) for p in ins], [fixed.get(p) for p in outs],
                      tuple([n.attrs[0] for n in parameters(order)]))
            for raws, positions in ((launch[1], ins), (launch[2], outs)):
                prebuilt.holes += [(raws, k, p) for k, p in enumerate(positions) if p in per_call]
                if any(p not in fixed and p not in per_call for p in positions):
                    return None
            prebuilt.written += [fixed[p] for p in outs if p in fixed]
            prebuilt.sequence.append(launch)
        prebuilt.replay, prebuilt.root = replay, root
        return prebuilt

    def run(self, values):
        """`Replay.run` on the prebuilt launches (the replay's lock held)."""
        replay = self.replay
        handle = replay.handle
        buffers = {p: executor.DeviceBuffer(handle, size) for p, size in self.fresh.items()}
        for p, slot in replay.bound:
            buffers[p] = values[slot].buffer
        try:
            for raws, k, p in self.holes:
                raws[k] = buffers[p].raw
            begin_sequence()
            for raw in self.written:
                mark_written(raw)
            for p in self.fresh:
                mark_written(buffers[p].raw)
            executor.launch_sequence(handle, self.sequence, replay.template.key)
        finally:
            for raws, k, _ in self.holes:
                raws[k] = None
        results = []
        for kind, where in replay.outputs:
            if kind == "position":  # (an alias of another position: that one's buffer, its own shape)
                owner = self.root.get(where, where)
                buffer = buffers[owner] if owner in buffers else replay.order[owner].buffer
                results.append(_copy(replay.order[where], buffer))
            else:
                results.append(_copy(*replay._output(replay.order, values, kind, where)))
        return results


def _copy(node, buffer):
    """A node of ``node``'s op, attributes, shape and dtype without inputs, holding ``buffer``."""
    copy = Node(node.op, (), node.attrs, node.shape, node.dtype)
    copy.buffer = buffer
    return copy
