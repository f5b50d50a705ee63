"""Realisation: upload host leaves, fuse, compile in a batch, launch, free intermediates.

`realise` is the single place where the lazy graph turns into device work. It is
called by ``Var.sync``/``numpy``/``item`` and `metajit.sync_all`.
"""
import atexit
import time

import numpy as np

from .. import debug, plugins
from . import checks, custom_ops, donation, fusion, graphwalk
from ..errors import MetajitDeviceError, MetajitDtypeError
from ..ir.graph import numel
from ..ir.kernel import LibraryCall
from ..toolkit import analysis
from ..toolkit.allocator import begin_sequence, mark_written, size_class
from ..toolkit.decompose import decompose


class DeviceBuffer:
    """A device allocation owned by one or more realised nodes; freed when the last one dies
    (not once the interpreter has begun to exit: the process's memory goes with it, and the
    backend's modules may already be torn down)."""

    __slots__ = ("handle", "raw", "nbytes")
    live_count = 0
    exiting = False

    def __init__(self, handle, nbytes):
        self.handle = handle
        self.nbytes = nbytes
        self.raw = None  # stays None when the allocation fails: nothing to free then
        self.raw = handle.allocate(nbytes)
        mark_written(self.raw)
        DeviceBuffer.live_count += 1

    def __del__(self):
        if self.raw is not None:
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


def to_host(node):
    """The value of a realised node as a fresh numpy array."""
    if node.host_data is not None:
        return node.host_data.copy()
    array = np.empty(node.shape, dtype=node.dtype.numpy)
    node.buffer.handle.copy_to_host(node.buffer.raw, array)
    return array


def _check_dtypes(handle, found):
    for dtype in found:
        if dtype not in handle.dtypes:
            raise MetajitDtypeError(
                f"device {handle.name!r} does not support {dtype}; it supports "
                f"{', '.join(sorted(handle.dtypes))}: cast the Var or choose another device")


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


def _prepare(handle, template, order, donated=()):
    """The steps of ``template`` with their programs on ``handle`` (compiled in one batch),
    output sizes (rounded up to allocator size classes, so buffers are interchangeable
    within a class) and, per output, the position of the dead intermediate (or donated
    leaf, positions ``donated``) whose buffer it takes (None: a new one, see
    `_buffer_sources`): ``(program or None, inputs, outputs, parameters, sizes, sources)``;
    cached in the template per device and donated positions."""
    for outputs in template.outputs:
        _check_dtypes(handle, [dtype for _, dtype in outputs])
    programs = iter(compile_kernels(handle, [s[0] for s in template.steps if s[0] is not None]))
    sizes = [[size_class(size) for size, _ in step_sizes] for step_sizes in template.outputs]
    prepared = tuple((None if kernel is None else next(programs), inputs, outputs, parameters, step_sizes, sources)
                     for (kernel, inputs, outputs, parameters), step_sizes, sources
                     in zip(template.steps, sizes, _buffer_sources(template, order, sizes, donated)))
    template.prepared[_prepared_key(handle, donated)] = prepared
    return prepared


def _prepared_key(handle, donated):
    """A template's prepared steps are kept per device and positions of donated leaves."""
    return handle if not donated else (handle, donated)


def _buffer_sources(template, order, sizes, donated=()):
    """Per step, for each output the position of an intermediate whose buffer it reuses,
    or None for a new buffer. A buffer is free once the step holding its last reader has
    been queued (`_dead_after_each_step`): launches run in order, so that reader is done
    before the next writer starts (stream-ordered reuse). Sizes are size classes, so any
    free buffer of the output's class fits; without one, an intermediate takes the
    smallest free buffer of a larger class up to twice its size (a kept value never does).
    DenseNet's concatenations have a new size at every layer, and exact classes alone left
    most dead buffers unused. A donated leaf whose last reader is an element-wise kernel
    reading it in place (`analysis.reads_in_place`) gives its buffer to an output of that
    kernel itself: an optimiser's update writes over the old value."""
    position = graphwalk.positions(order)
    dead_after = _dead_after_each_step(template, order, donated)
    temporary = {position[id(n)] for n in template.intermediates(order)}
    free, result = {}, []
    size_of = {p: size_class(numel(order[p].shape) * order[p].dtype.itemsize) for p in donated}
    for (kernel, inputs, outputs, _), step_sizes, dead in zip(template.steps, sizes, dead_after):
        sources = []
        if kernel is not None:
            in_place = _in_place_donations(kernel, inputs(order), position, donated, dead, size_of)
            for node, size in zip(outputs(order), step_sizes):
                pool = free.get(size) or in_place.get(size)
                if not pool and position[id(node)] in temporary:  # the best fitting larger free buffer
                    size = min((c for c, owners in free.items() if owners and size < c <= 2 * size), default=size)
                    pool = free.get(size)
                sources.append(pool.pop() if pool else None)
                size_of[position[id(node)]] = size
        result.append(tuple(sources))
        for owner in dead:
            if owner not in sources:  # (taken in place by this very step)
                free.setdefault(size_of[owner], []).append(owner)
    return result


def _in_place_donations(kernel, inputs, position, donated, dead, size_of):
    """``{size class: [positions]}`` of the donated leaves dying with this step that its
    kernel reads in place (see `_buffer_sources`)."""
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
                if handle.launch_sequence is not None and seconds is None:
                    handle.launch_sequence(segment, plan_key if whole else (plan_key, start))
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


def _intact_outputs(finished, order):
    """Ids of the outputs of the ``finished`` launches (``(outputs, buffer sources)`` pairs)
    whose buffers no finished launch took over."""
    overwritten = {id(order[source]) for _, sources in finished for source in sources if source is not None}
    return {id(node) for outputs, _ in finished for node in outputs if id(node) not in overwritten}


def realise(nodes, on_ready=(), donated=()):
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
    """
    pending = [n for n in nodes if n.buffer is None]
    if pending and custom_ops.has_unrealised():
        custom_ops.run_opaque(pending, realise)
        pending = [n for n in pending if n.buffer is None]
    if not pending:
        for _, callback in on_ready:
            callback()
        return
    handle = plugins.current()
    found = checks.due(pending)  # deferred checks this realisation decides (device-side indices)
    for _, check_nodes, _ in found:
        pending += [n for n in check_nodes if n.buffer is None and n.host_data is None]
    pending = [n for n in pending if n.host_data is None] + [n for n in pending if n.host_data is not None]
    walked = None
    if donated:  # values kept from the step's graph are computed with it (donation.held_values)
        held, walked = donation.held_values(donated, graphwalk.realised_order(pending), pending)
        pending += held
    begin_sequence()
    description = handle.description
    template, order = fusion.plan_template(pending, description.library_kernels, description.fusion_costs)
    uploads = template.uploads(order)
    _check_dtypes(handle, [node.dtype for node in uploads])
    given = donation.positions(donated, order, graphwalk.positions(order), handle, pending, walked) if donated else ()
    steps = template.prepared.get(_prepared_key(handle, given)) or _prepare(handle, template, order, given)
    for node in uploads:
        node.buffer = upload(handle, node.host_data)
        node.host_data = None
    for node in template.leaves(order):
        if node.buffer.handle is not handle:
            migrate(handle, node)
    # every buffer and argument list first, then the launches back to back: the Python
    # between two kernels is then only the call itself (outputs take dead intermediates'
    # buffers as planned by `_buffer_sources`)
    sequence, produced, launched = [], [], []
    queued_with = {}  # id(node) -> the number of launches queued once it has its value
    taken = {}  # position of a donated leaf -> index of the launch writing into its buffer
    launches_done = False
    try:
        for program, inputs, outputs, parameters, sizes, sources in steps:
            inputs, outputs = inputs(order), outputs(order)
            produced.append(outputs)
            if program is None:
                outputs[0].buffer = inputs[0].buffer
            else:
                output_buffers = []
                for node, size, source in zip(outputs, sizes, sources):
                    if source is None:
                        buffer = node.buffer = DeviceBuffer(handle, size)
                    else:
                        buffer = node.buffer = order[source].buffer
                        mark_written(buffer.raw)
                        if source in given:
                            taken[source] = len(launched)  # the launch that overwrites a donated leaf
                    output_buffers.append(buffer.raw)
                sequence.append((program, [n.buffer.raw for n in inputs], output_buffers,
                                 tuple([n.attrs[0] for n in parameters(order)])))
                launched.append((outputs, sources))
            if on_ready:
                for node in outputs:
                    queued_with[id(node)] = len(sequence)
        seconds = [] if debug.is_timing() else None
        due = {}  # launches queued -> callbacks due then
        for watched, callback in on_ready:
            due.setdefault(max([queued_with.get(id(n), 0) for n in watched], default=0), []).append(callback)
        _launch_in_segments(handle, sequence, template.key, seconds, due)
        launches_done = True
        if found:
            checks.verify(found, to_host)
    except BaseException as error:
        # a failed allocation, launch or check, or Ctrl-C: only the outputs of launches the
        # backend reports finished (``metajit_completed``) whose buffers no finished launch
        # reused are kept, so a retry does not redo them; the rest is recomputed (the nodes
        # keep their inputs). Nothing is kept while index checks are pending.
        completed = 0 if found else getattr(error, "metajit_completed", 0)
        kept = _intact_outputs(launched[:completed], order)
        for outputs in produced:
            for node in outputs:
                if id(node) not in kept:
                    node.buffer = None
        # a donated leaf is lost once a launch that may have run (the one interrupted
        # included) wrote into its buffer; the others keep their values
        started = len(launched) if launches_done else getattr(error, "metajit_completed", -1) + 1
        donation.invalidate([order[p] for p, index in taken.items() if index < started])
        if found:
            checks.restore(found)
        raise
    if debug.is_recording():
        kernels = [kernel for kernel, *_ in template.steps if kernel is not None]
        for kernel, duration in zip(kernels, seconds or [None] * len(kernels)):
            debug.record(handle, kernel, duration)
    for node in template.intermediates(order):
        node.buffer = None
    if taken:
        donation.invalidate([order[p] for p in taken])
    for node in pending:
        if not node.needs_inputs_for_grad:
            node.inputs = ()
