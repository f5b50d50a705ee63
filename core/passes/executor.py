"""Realisation: upload host leaves, fuse, compile in a batch, launch, free intermediates.

`realise` is the single place where the lazy graph turns into device work. It is
called by ``Var.sync``/``numpy``/``item`` and `metajit.sync_all`.
"""
import atexit
import threading
import time

import numpy as np

from .. import debug, garbage_collection, plugins
from . import checks, custom_ops, donation, fusion, graphwalk, side_effects
from ..errors import MetajitDeviceError, MetajitDtypeError
from ..ir.graph import numel
from ..ir.kernel import LibraryCall
from ..toolkit import analysis
from ..toolkit.allocator import begin_sequence, mark_written, size_class
from ..toolkit.decompose import decompose

_uploading = threading.Lock()

ARENA_ALIGNMENT = 64  # bytes: each intermediate's place in an arena suits every dtype


class DeviceBuffer:
    """A device allocation owned by one or more realised nodes; freed when the last one dies
    (not once the interpreter has begun to exit: the process's memory goes with it, and the
    backend's modules may already be torn down). A `part` of an arena holds the arena
    (``arena``) instead, which is freed once no part of it lives."""

    __slots__ = ("handle", "raw", "nbytes", "arena")
    live_count = 0
    exiting = False

    def __init__(self, handle, nbytes):
        self.handle = handle
        self.nbytes = nbytes
        self.arena = None
        self.raw = None  # stays None when the allocation fails: nothing to free then
        self.raw = handle.allocate(nbytes)
        mark_written(self.raw)
        DeviceBuffer.live_count += 1

    @classmethod
    def part(cls, arena, offset, nbytes):
        """A buffer for bytes ``[offset, offset + nbytes)`` of the `DeviceBuffer` ``arena``
        (the backend's ``buffer_view``), keeping the arena alive."""
        part = cls.__new__(cls)
        part.handle, part.nbytes, part.arena, part.raw = arena.handle, nbytes, arena, None
        part.raw = arena.handle.buffer_view(arena.raw, offset, nbytes)
        mark_written(part.raw)
        return part

    def __del__(self):
        if self.raw is not None and self.arena is None:
            counted = type(self)  # not the module global: it may be gone at interpreter exit
            counted.live_count -= 1
            if not counted.exiting:
                self.handle.free(self.raw)


@atexit.register
def _stop_freeing():
    DeviceBuffer.exiting = True


def upload(handle, array):
    """Copy a host numpy array into a new `DeviceBuffer` on ``handle``'s device."""
    array = np.ascontiguousarray(array)
    buffer = DeviceBuffer(handle, array.nbytes)
    handle.copy_from_host(buffer.raw, array)
    return buffer


def to_host(node, buffer=None):
    """The value of a realised node as a fresh numpy array (read from ``buffer`` where
    given: a value of a realisation still running)."""
    if node.host_data is not None:
        return node.host_data.copy()
    buffer = buffer or node.buffer
    array = np.empty(node.shape, dtype=node.dtype.numpy)
    buffer.handle.copy_to_host(buffer.raw, array)
    return array


def _check_dtypes(handle, found):
    for dtype in found:
        if dtype not in handle.dtypes:
            raise MetajitDtypeError(
                f"device {handle.name!r} does not support {dtype}; it supports "
                f"{', '.join(sorted(handle.dtypes))}: cast the Var or choose another device")


def _upload_leaf(handle, node):
    """Give the host leaf ``node`` its buffer on ``handle``'s device, once however many
    threads' graphs share it (a model's weights)."""
    with _uploading:
        if node.host_data is not None:
            node.buffer = upload(handle, node.host_data)
            node.host_data = None


def migrate(handle, node):
    """Move a node's buffer to ``handle``'s device through the host when it lives elsewhere."""
    if node.buffer is not None and node.buffer.handle is not handle:
        node.buffer = upload(handle, to_host(node))


def compile_kernels(handle, kernels):
    """Programs for ``kernels`` on ``handle``: cached, library-lowered, or compiled in one batch."""
    programs = handle.programs
    missing = []
    for kernel in kernels:
        if kernel in programs or kernel in missing:
            continue
        if isinstance(kernel, LibraryCall):
            lowered = handle.lower_library_kernel(kernel) if handle.lower_library_kernel else None
            if lowered is None:
                raise MetajitDeviceError(f"device {handle.name!r} claims library op {kernel.name!r} but "
                                         f"could not lower {kernel}")
            programs[kernel] = lowered
        else:
            missing.append(kernel)
    if missing:
        native_ops = handle.description.native_ops
        sources = handle.codegen([decompose(kernel, native_ops) for kernel in missing] if native_ops else missing)
        for kernel, source, program in zip(missing, sources, handle.compile(sources)):
            programs[kernel] = program
            handle.sources[kernel] = source
    return [programs[k] for k in kernels]


def launch_steps(handle, template, order, steps, arena_bytes, given=(), on_ready=(), found=()):
    """Give the outputs of the prepared ``steps`` their buffers and launch them (the part of
    a realisation after planning, also run by `metajit.passes.replay`). ``given``: positions
    of donated leaves; ``on_ready``: as `realise`'s; ``found``: the deferred index checks
    the launches decide. Returns ``{position of a donated leaf: the launch writing into
    its buffer}``.

    The intermediates' buffers stay in a table of this call: their nodes may be shared
    with other threads' graphs (a model's lazy bias), which must neither read this
    realisation's arena nor see a value before it is computed. The other outputs (the
    targets) get their buffers once the launches writing them have run (watched ones
    just before their callbacks). On an exception only the outputs the backend reports
    finished and intact get their buffers."""
    # every buffer and argument list first, then the launches back to back: the Python
    # between two kernels is then only the call itself (outputs take their place in the
    # arena or dead buffers as planned by `_buffer_plan`)
    sequence, produced, launched = [], [], []
    buffers = {node: node.buffer for node in template.leaves(order)}  # node -> its buffer here
    queued_with = {}  # id(node) -> the number of launches queued once it has its value
    taken = {}  # position of a donated leaf -> index of the launch writing into its buffer
    launches_done = False
    try:
        arena = DeviceBuffer(handle, arena_bytes) if arena_bytes else None
        for program, inputs, outputs, parameters, sizes, sources, offsets in steps:
            inputs, outputs = inputs(order), outputs(order)
            produced.append(outputs)
            if program is None:
                buffers[outputs[0]] = buffers[inputs[0]]
            else:
                output_buffers = []
                for node, size, source, offset in zip(outputs, sizes, sources, offsets):
                    if offset is not None:
                        buffer = DeviceBuffer.part(arena, offset, size)
                    elif source is None:
                        buffer = DeviceBuffer(handle, size)
                    else:
                        buffer = buffers[order[source]]
                        mark_written(buffer.raw)
                        if source in given:
                            taken[source] = len(launched)  # the launch that overwrites a donated leaf
                    buffers[node] = buffer
                    output_buffers.append(buffer.raw)
                sequence.append((program, [buffers[n].raw for n in inputs], output_buffers,
                                 tuple([n.attrs[0] for n in parameters(order)])))
                launched.append((outputs, sources, offsets, sizes))
            if on_ready:
                for node in outputs:
                    queued_with[id(node)] = len(sequence)
        seconds = [] if debug.is_timing() else None
        due = {}  # launches queued -> callbacks due then
        for watched, callback in on_ready:
            due.setdefault(max([queued_with.get(id(n), 0) for n in watched], default=0), []).append(
                _published_before(watched, buffers, callback))
        _launch_in_segments(handle, sequence, template.key, seconds, due)
        launches_done = True
        if found:
            checks.verify(found, lambda node: to_host(node, buffers.get(node)))
    except BaseException as error:
        # a failed allocation, launch or check, or Ctrl-C: only the outputs of launches the
        # backend reports finished (``metajit_completed``) whose buffers no finished launch
        # reused are kept, so a retry does not redo them; the rest is recomputed (the nodes
        # keep their inputs). Nothing is kept while index checks are pending, nor the
        # outputs of the launches the backend names in ``metajit_unkept`` (finished, but
        # left in a layout of its own for a reader that did not run).
        completed = 0 if found else getattr(error, "metajit_completed", 0)
        kept = _intact_outputs(launched[:completed], order, arena_bytes)
        for index in getattr(error, "metajit_unkept", ()):
            kept -= {id(node) for node in launched[index][0]} if index < len(launched) else set()
        for outputs in produced:
            for node in outputs:
                if id(node) in kept:
                    node.buffer = buffers[node]
                elif node.buffer is not None and node.buffer is buffers.get(node):
                    node.buffer = None  # given before a callback, but not kept
        # a donated leaf is lost once a launch that may have run (the one interrupted
        # included) wrote into its buffer; the others keep their values
        started = len(launched) if launches_done else getattr(error, "metajit_completed", -1) + 1
        donation.invalidate([order[p] for p, index in taken.items() if index < started])
        if found:
            checks.restore(found)
        raise
    for node in template.kept(order):
        node.buffer = buffers[node]
    if debug.is_recording():
        kernels = [kernel for kernel, *_ in template.steps if kernel is not None]
        for kernel, duration in zip(kernels, seconds or [None] * len(kernels)):
            debug.record(handle, kernel, duration)
    return taken


def _published_before(watched, buffers, callback):
    """``callback`` preceded by giving the ``watched`` nodes their buffers from ``buffers``."""
    def publish_then_call():
        for node in watched:
            if node in buffers:
                node.buffer = buffers[node]
        callback()
    return publish_then_call


def _prepare(handle, template, order, donated=()):
    """The steps of ``template`` with their programs on ``handle`` (compiled in one batch)
    and where each output's memory comes from (`_buffer_plan`), as ``(steps, arena
    bytes)``, each step ``(program or None, inputs, outputs, parameters, sizes, sources,
    offsets)``; cached in the template per device and donated positions."""
    for outputs in template.outputs:
        _check_dtypes(handle, [dtype for _, dtype in outputs])
    compiled = iter(compile_kernels(handle, [s[0] for s in template.steps if s[0] is not None]))
    programs = [None if kernel is None else next(compiled) for kernel, *_ in template.steps]
    sizes, sources, offsets, arena_bytes = _buffer_plan(
        template, order, donated, handle.buffer_view is not None,
        [getattr(program, "output_capacity", None) for program in programs])
    steps = tuple((program, inputs, outputs, parameters, *where) for program, (_, inputs, outputs, parameters), *where
                  in zip(programs, template.steps, sizes, sources, offsets))
    prepared = template.prepared[_prepared_key(handle, donated)] = (steps, arena_bytes)
    return prepared


def _prepared_key(handle, donated):
    """A template's prepared steps are kept per device and positions of donated leaves."""
    return handle if not donated else (handle, donated)


def _buffer_plan(template, order, donated=(), packs=True, capacities=None):
    """Where each step's outputs get their memory: per step, per output, its size in bytes,
    the position of a node whose buffer it takes (or None), and its offset in the
    realisation's arena (or None); and the arena's size (0: none). ``capacities``: per
    step, None or the bytes its program asks for each output placed in the arena (its
    ``output_capacity``: room for a padded layout it hands to its reader).

    With ``packs`` (the backend makes views of a buffer), every intermediate whose buffer
    dies within the realisation lives in one arena, at an offset planned from the
    lifetimes of all of them (`_arena_layout`): values that are never live at once share
    bytes, whatever their sizes (DenseNet's concatenations have a new size at every
    layer). Otherwise such intermediates take whole dead buffers: any of their size class,
    or else the smallest of a larger class up to twice their size.

    A buffer is dead once the step holding its last reader has been queued
    (`_dead_after_each_step`): launches run in order, so that reader is done before the
    next writer starts (stream-ordered reuse). Values kept after the realisation get a
    buffer of their own, or a dead donated leaf's of their size class. A donated leaf
    whose last reader is an element-wise kernel reading it in place
    (`analysis.reads_in_place`) gives its buffer to an output of that kernel itself: an
    optimiser's update writes over the old value."""
    position = graphwalk.positions(order)
    dead_after = _dead_after_each_step(template, order, donated)
    temporary = {position[id(n)] for n in template.intermediates(order)}
    packed = {p for dead in dead_after for p in dead} - set(donated) if packs else set()
    free, lifetimes = {}, {}
    sizes, sources, offsets = [], [], []
    size_of = {p: size_class(numel(order[p].shape) * order[p].dtype.itemsize) for p in donated}
    for step, ((kernel, inputs, outputs, _), step_bytes, dead) in enumerate(
            zip(template.steps, template.outputs, dead_after)):
        step_sizes, step_sources = [], []
        if kernel is not None:
            in_place = _in_place_donations(kernel, inputs(order), position, donated, dead, size_of)
            wanted = tuple(capacities[step] or ()) if capacities else ()
            wanted += (0,) * (len(step_bytes) - len(wanted))
            for node, (nbytes, _), capacity in zip(outputs(order), step_bytes, wanted):
                place = position[id(node)]
                if place in packed and nbytes:
                    lifetimes[place] = [step, step, -(-max(nbytes, capacity) // ARENA_ALIGNMENT) * ARENA_ALIGNMENT]
                    step_sizes.append(lifetimes[place][2])
                    step_sources.append(None)
                    continue
                size = size_class(nbytes)
                pool = free.get(size) or in_place.get(size)
                if not pool and place in temporary:  # the best fitting larger free buffer
                    size = min((c for c, owners in free.items() if owners and size < c <= 2 * size), default=size)
                    pool = free.get(size)
                step_sources.append(pool.pop() if pool else None)
                step_sizes.append(size)
                size_of[place] = size
        for owner in dead:
            if owner in lifetimes:
                lifetimes[owner][1] = step
            elif owner not in step_sources:  # (taken in place by this very step)
                free.setdefault(size_of[owner], []).append(owner)
        sizes.append(tuple(step_sizes))
        sources.append(tuple(step_sources))
    layout, arena_bytes = _arena_layout(lifetimes)
    for (_, _, outputs, _), step_sources in zip(template.steps, sources):
        offsets.append(tuple(layout.get(position[id(n)]) for n in outputs(order)) if step_sources else ())
    return sizes, sources, offsets, arena_bytes


def _arena_layout(lifetimes):
    """``({position: offset}, arena bytes)`` for values with ``lifetimes`` ({position: [first
    step, last step, bytes]}): two values whose step ranges overlap never share bytes.
    Greedy by size: the largest value first, each at the lowest offset where it fits
    between the values already placed that are live with it (close to the most bytes
    ever live at once on networks' memory profiles)."""
    count = len(lifetimes)
    placed = np.zeros((4, count), dtype=np.int64)  # first step, last step, offset, end
    layout, total = {}, 0
    for k, (place, (first, last, nbytes)) in enumerate(
            sorted(lifetimes.items(), key=lambda item: (-item[1][2], item[1][0]))):
        overlapping = (placed[0, :k] <= last) & (placed[1, :k] >= first)
        offset = 0
        if overlapping.any():
            starts, ends = placed[2, :k][overlapping], placed[3, :k][overlapping]
            rank = np.argsort(starts, kind="stable")
            starts, reached = starts[rank], np.maximum.accumulate(ends[rank])
            below = np.concatenate(([0], reached[:-1]))  # the end of everything placed below each start
            gaps = np.flatnonzero(starts - below >= nbytes)
            offset = int(below[gaps[0]]) if gaps.size else int(reached[-1])
        placed[:, k] = first, last, offset, offset + nbytes
        layout[place] = offset
        total = max(total, offset + nbytes)
    return layout, total


def _in_place_donations(kernel, inputs, position, donated, dead, size_of):
    """``{size class: [positions]}`` of the donated leaves dying with this step that its
    kernel reads in place (see `_buffer_plan`)."""
    found = {}
    if not donated or not dead:
        return found
    for node in {id(n): n for n in inputs}.values():
        place = position[id(node)]
        if place in donated and place in dead and all(
                analysis.reads_in_place(kernel, slot) for slot, other in enumerate(inputs) if other is node):
            found.setdefault(size_of[place], []).append(place)
    return found


def _dead_after_each_step(template, order, donated=()):
    """Per step, the positions of the intermediates whose buffers no later step reads. Only buffers this plan allocates can die: an alias step's
    output shares its input's buffer (possibly a realised leaf's), so a buffer dies with
    the last reader of any node sharing it, and only when the node that allocated it and
    every sharer are intermediates (never a target or a realised leaf)."""
    position = graphwalk.positions(order)
    intermediates = {position[id(n)] for n in template.intermediates(order)} | set(donated)
    owner = {}                 # position -> position of the node whose buffer it uses
    last_use = {}              # owner -> last step reading or writing the buffer
    sharers = {p: [p] for p in donated}  # owner allocated by this plan (or donated) -> positions using its buffer
    for step, (kernel, inputs, outputs, _) in enumerate(template.steps):
        read = [position[id(n)] for n in inputs(order)]
        for p in read:
            last_use[owner.get(p, p)] = step
        for p in (position[id(n)] for n in outputs(order)):
            owner[p] = owner.get(read[0], read[0]) if kernel is None else p
            last_use.setdefault(owner[p], step)
            if kernel is not None:
                sharers[p] = [p]
            elif owner[p] in sharers:
                sharers[owner[p]].append(p)
    dead = [[] for _ in template.steps]
    for buffer_owner, step in last_use.items():
        if buffer_owner in sharers and all(p in intermediates for p in sharers[buffer_owner]):
            dead[step].append(buffer_owner)
    return dead


def _launch_each(handle, sequence, seconds=None):
    """One ``launch`` per step; an exception reports how many finished (``metajit_completed``).
    With a ``seconds`` list (`debug.profile_scope`), each launch is synchronised and its wall
    time appended."""
    launch = handle.launch
    done = 0
    try:
        for program, input_buffers, output_buffers, parameters in sequence:
            started = time.perf_counter() if seconds is not None else 0.0
            launch(program, input_buffers, output_buffers, parameters)
            if seconds is not None:
                handle.synchronize()
                seconds.append(time.perf_counter() - started)
            done += 1
    except BaseException as error:
        if not hasattr(error, "metajit_completed"):
            error.metajit_completed = done
        raise


def _launch_in_segments(handle, sequence, plan_key, seconds, due):
    """Launch ``sequence``, calling the callbacks of ``due`` (launches queued -> callbacks)
    once that many launches are queued. Each segment between two such points is one
    ``launch_sequence`` call whose key is ``(plan_key, first launch)`` (the whole sequence
    keeps ``plan_key``); an exception reports the launches finished over all segments."""
    points = sorted(due)
    if not points or points[-1] < len(sequence):
        points.append(len(sequence))
    start = 0
    for point in points:
        if point > start:
            whole = start == 0 and point == len(sequence)
            segment = sequence if whole else sequence[start:point]
            try:
                key = plan_key if whole else (plan_key, start)
                if handle.launch_sequence is not None and seconds is None:
                    handle.launch_sequence(segment, key)
                elif handle.launch_sequence is not None and handle.times_sequences:
                    handle.launch_sequence(segment, key, seconds)
                else:
                    _launch_each(handle, segment, seconds)
            except BaseException as error:
                error.metajit_completed = start + getattr(error, "metajit_completed", 0)
                raise
            start = point
        try:
            for callback in due.get(point, ()):
                callback()
        except BaseException as error:
            error.metajit_completed = point
            raise


def launch_sequence(handle, sequence, plan_key):
    """Launch ``sequence`` (``(program, input raws, output raws, parameters)`` each) as one
    realisation's launches, under ``plan_key`` (the backend may keep what it derived from
    an earlier sequence of that key)."""
    _launch_in_segments(handle, sequence, plan_key, None, {})


def _intact_outputs(finished, order, arena_bytes):
    """Ids of the outputs of the ``finished`` launches (``(outputs, buffer sources, arena
    offsets, sizes)`` each) whose memory no later finished launch wrote into (took the
    buffer, or wrote over arena bytes it held)."""
    overwritten = {id(order[source]) for _, sources, _, _ in finished for source in sources if source is not None}
    written = np.zeros(-(-arena_bytes // ARENA_ALIGNMENT), dtype=bool)  # arena bytes written later, by block
    intact = set()
    for outputs, _, offsets, sizes in reversed(finished):
        blocks = [None if offset is None else slice(offset // ARENA_ALIGNMENT, -(-(offset + size) // ARENA_ALIGNMENT))
                  for offset, size in zip(offsets, sizes)]
        for node, block in zip(outputs, blocks):
            if (id(node) not in overwritten) if block is None else not written[block].any():
                intact.add(id(node))
        for block in blocks:
            if block is not None:
                written[block] = True
    return intact


def _host_leaves_last(targets):
    """``targets`` with the host leaves (values only uploaded) after the computed ones."""
    return [n for n in targets if n.host_data is None] + [n for n in targets if n.host_data is not None]


_STORED_RESULTS = ("library", "reduce", "reindex_reduce")  # fusion always stores these
_VIEWS = ("reindex", "broadcast_to")  # reads of their first input's elements


def _held_results(order, targets):
    """The values in ``order`` that a live Var still refers to and that are computed from a
    stored result (a library op or a reduction, which fusion always writes out): made
    targets, they keep their values, so reading one later costs nothing. A forward hook
    reading ``output.mean().item()`` after each ``relu(linear(x))`` otherwise computed
    every product above it again, since the stored product itself is no Var's. A held view
    (a slice, transpose or broadcast) keeps the value it reads instead: reading it again
    costs no more than a copy would, and a broadcast's copy can be far larger."""
    held = graphwalk.held_results(order, targets, _STORED_RESULTS)
    if not held:
        return held
    chosen, kept = {id(node) for node in targets}, {}
    for node in held:
        while node.op in _VIEWS and node.inputs[0].buffer is None:
            node = node.inputs[0]
        if id(node) not in chosen:
            kept.setdefault(id(node), node)
    return list(kept.values())


def realise(nodes, on_ready=(), donated=(), capture=None):
    """Compute every node in ``nodes`` that has no value yet, on the current device.

    ``on_ready`` holds ``(watched nodes, callback)`` pairs, the watched nodes among
    ``nodes``: each callback is called once, as soon as all its watched nodes have their
    values — between the launches, right after the one writing the last of them is queued
    and before the next (at once for values that exist already) — so that work needing
    only those values (a collective) starts while the later kernels run::

        realise([loss, gradient], [([gradient], lambda: print("gradient ready"))])

    ``donated``: a list of realised leaves the caller no longer needs (an optimiser's old
    parameters), whose buffers the outputs may take over where nothing else can read
    them (`metajit.passes.donation`); pass a list no other name refers to.

    ``capture``: a list to which the realisation appends what `metajit.passes.replay`
    launches again, ``(handle, template, graph order, prepared steps, arena bytes)``, or
    the reason it cannot be replayed (a string).
    """
    side_effects.note("a value was read while it ran (sync, numpy, item, print or an op whose "
                      "output shape depends on values)")
    pending = [n for n in nodes if n.buffer is None]
    opaque = False  # whether an opaque node (a custom operator's Python body) ran for these nodes
    if pending and custom_ops.has_unrealised():
        runs = custom_ops.groups_run()
        custom_ops.run_opaque(pending, realise)
        opaque = custom_ops.groups_run() != runs
        pending = [n for n in pending if n.buffer is None]
    if not pending:
        for _, callback in on_ready:
            callback()
        if capture is not None:
            capture.append("a custom operator with a Python body ran" if opaque else (None, None, [], (), 0))
        return
    handle = plugins.current()
    # one walk of the graph serves the checks, donation and the plan unless they add targets
    pending = _host_leaves_last(pending)
    order = graphwalk.realised_order(pending)
    found = checks.due(pending, order)  # deferred checks this realisation decides (device-side indices)
    if found:
        for _, check_nodes, _ in found:
            pending += [n for n in check_nodes if n.buffer is None and n.host_data is None]
        pending = _host_leaves_last(pending)
        order = graphwalk.realised_order(pending)
    if capture is None and not donated:
        held = _held_results(order, pending)
        if held:
            pending += held
            order = None
    walked = None
    if donated:  # values kept from the step's graph are computed with it (donation.held_values)
        held, walked = donation.held_values(donated, order, pending)
        if held:
            pending += held
            order = None
    begin_sequence()
    description = handle.description
    template, order = fusion.plan_template(pending, description.library_kernels, description.fusion_costs, order)
    garbage_collection.fit_graph(len(order))
    uploads = template.uploads(order)
    _check_dtypes(handle, [node.dtype for node in uploads])
    given = donation.positions(donated, order, handle, pending, walked) if donated else ()
    steps, arena_bytes = template.prepared.get(_prepared_key(handle, given)) or _prepare(handle, template, order, given)
    for node in uploads:
        _upload_leaf(handle, node)
    for node in template.leaves(order):
        if node.buffer is None:  # the plan was made while another thread uploaded a leaf it shares
            _check_dtypes(handle, [node.dtype])
            _upload_leaf(handle, node)
        elif node.buffer.handle is not handle:
            migrate(handle, node)
    taken = launch_steps(handle, template, order, steps, arena_bytes, given, on_ready, found)
    if capture is not None:
        capture.append("a custom operator with a Python body ran" if opaque else
                       "an index check was pending" if found else (handle, template, order, steps, arena_bytes))
    if taken:
        donation.invalidate([order[p] for p in taken])
    for node in pending:
        if not node.needs_inputs_for_grad:
            node.inputs = ()
