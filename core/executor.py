"""Realisation: upload host leaves, fuse, compile in a batch, launch, free intermediates.

`realise` is the single place where the lazy graph turns into device work. It is
called by ``Var.sync``/``numpy``/``item`` and `metajit.sync_all`.
"""
import numpy as np

from . import debug, fusion, plugins
from .errors import MetajitDeviceError, MetajitDtypeError
from .library_ops import LibraryCall


class DeviceBuffer:
    """A device allocation owned by one or more realised nodes; freed when the last one dies."""

    __slots__ = ("handle", "raw", "nbytes")
    live_count = 0

    def __init__(self, handle, nbytes):
        self.handle = handle
        self.nbytes = nbytes
        self.raw = None  # stays None when the allocation fails: nothing to free then
        self.raw = handle.allocate(nbytes)
        DeviceBuffer.live_count += 1

    def __del__(self):
        if self.raw is not None:
            DeviceBuffer.live_count -= 1
            self.handle.free(self.raw)


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


def _migrate(handle, node):
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
        lowered = handle.lower_library_kernel(kernel) if handle.lower_library_kernel else None
        if lowered is not None:
            programs[kernel] = lowered
        elif isinstance(kernel, LibraryCall):
            raise MetajitDeviceError(f"device {handle.name!r} claims library op {kernel.name!r} but "
                                     f"could not lower {kernel}")
        else:
            missing.append(kernel)
    if missing:
        sources = handle.codegen(missing)
        for kernel, source, program in zip(missing, sources, handle.compile(sources)):
            programs[kernel] = program
            handle.sources[kernel] = source
    return [programs[k] for k in kernels]


def _prepare(handle, template):
    """The steps of ``template`` with their programs on ``handle`` (compiled in one batch)
    and output sizes: ``(program or None, inputs, outputs, parameters, sizes)`` pickers;
    cached in the template per device."""
    for outputs in template.outputs:
        _check_dtypes(handle, [dtype for _, dtype in outputs])
    programs = iter(compile_kernels(handle, [s[0] for s in template.steps if s[0] is not None]))
    prepared = tuple((None if kernel is None else next(programs), inputs, outputs, parameters,
                      [size for size, _ in sizes])
                     for (kernel, inputs, outputs, parameters), sizes in zip(template.steps, template.outputs))
    template.prepared[handle] = prepared
    return prepared


def realise(nodes):
    """Compute every node in ``nodes`` that has no value yet, on the current device."""
    pending = [n for n in nodes if n.buffer is None]
    if not pending:
        return
    handle = plugins.current()
    pending = [n for n in pending if n.host_data is None] + [n for n in pending if n.host_data is not None]
    template, order = fusion.plan_template(pending, handle.description.library_kernels)
    uploads = template.uploads(order)
    _check_dtypes(handle, [node.dtype for node in uploads])
    steps = template.prepared.get(handle) or _prepare(handle, template)
    for node in uploads:
        node.buffer = upload(handle, node.host_data)
        node.host_data = None
    for node in template.leaves(order):
        if node.buffer.handle is not handle:
            _migrate(handle, node)
    # every buffer and argument list first, then the launches back to back: the Python
    # between two kernels is then only the call itself (nothing is freed before the end,
    # so allocating up front does not raise the peak)
    sequence, produced = [], []
    try:
        for program, inputs, outputs, parameters, sizes in steps:
            inputs, outputs = inputs(order), outputs(order)
            produced.append(outputs)
            if program is None:
                outputs[0].buffer = inputs[0].buffer
                continue
            output_buffers = []
            for node, size in zip(outputs, sizes):
                buffer = node.buffer = DeviceBuffer(handle, size)
                output_buffers.append(buffer.raw)
            sequence.append((program, [n.buffer.raw for n in inputs], output_buffers,
                             tuple([n.attrs[0] for n in parameters(order)])))
        if handle.launch_sequence is not None:
            handle.launch_sequence(sequence)
        else:
            launch = handle.launch
            for program, input_buffers, output_buffers, parameters in sequence:
                launch(program, input_buffers, output_buffers, parameters)
    except BaseException:
        # a failed allocation or launch: nothing of this plan counts as computed (what did
        # run is recomputed next time; the nodes keep their inputs until the end)
        for outputs in produced:
            for node in outputs:
                node.buffer = None
        raise
    if debug.is_recording():
        for kernel, *_ in template.steps:
            if kernel is not None:
                debug.record(handle, kernel)
    for node in template.intermediates(order):
        node.buffer = None
    for node in pending:
        if not node.needs_inputs_for_grad:
            node.inputs = ()
