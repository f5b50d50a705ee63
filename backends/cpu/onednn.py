"""oneDNN (``libdnnl``, the GNU-OpenMP build from the ``onednn-cpu-gomp`` wheel) via ctypes:
the convolution library ops.

oneDNN runs its convolutions on the same libgomp thread pool as the fused kernels, so a
library call right after a fused kernel does not fight a second spinning pool.

The library is looked up, in order: ``METAJIT_ONEDNN_LIBRARY`` (a path, or ``0`` to
disable), ``lib/`` under the interpreter's prefixes and the user base (where the wheel
puts it), then the dynamic loader's search path. `library()` returns None when it is not
found; the convolutions then stay composed of meta-ops.
"""
import ctypes
import ctypes.util
import math
import os
import site
import struct
import sys
import threading

import numpy as np

from metajit.errors import MetajitDeviceError
from metajit.flags import flags
from metajit.toolkit.allocator import KeptCopies

from .allocator import aligned
from .convolution import FORWARD, RELU, RELU6, adds_residual, epilogue
from .native import launcher

_SONAMES = ("libdnnl.so.3", "libdnnl.so")
_UNLOADED = object()
_library = _UNLOADED
_threads = threading.local()  # the OpenMP thread count is a per-thread setting


def _candidates():
    configured = os.environ.get("METAJIT_ONEDNN_LIBRARY")
    if configured:
        yield configured
        return
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, site.getuserbase()])
    for prefix in prefixes:
        for soname in _SONAMES:
            yield os.path.join(prefix, "lib", soname)
    found = ctypes.util.find_library("dnnl")
    if found:
        yield found


def _check(status, what):
    """Raise `MetajitDeviceError` naming ``what`` when a oneDNN call returned a failure status."""
    if status != 0:
        raise MetajitDeviceError(f"oneDNN {what} failed with status {status}")


def library():
    """The loaded oneDNN 3.x library (ctypes handle), or None."""
    global _library
    if _library is _UNLOADED:
        _library = None
        if os.environ.get("METAJIT_ONEDNN_LIBRARY") != "0":
            for candidate in _candidates():
                if os.path.sep in candidate and not os.path.exists(candidate):
                    continue
                try:
                    loaded = ctypes.CDLL(candidate)
                    loaded.dnnl_convolution_forward_primitive_desc_create  # a 3.x C API
                    _library = loaded
                    break
                except (OSError, AttributeError):
                    continue
    return _library


def set_threads(count):
    """Give the calling thread's oneDNN OpenMP regions ``count`` threads (cheap when unchanged)."""
    if getattr(_threads, "count", None) != count:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(ctypes.c_int(count))
        _threads.count = count


# oneDNN enum values (oneDNN 3.x C API, dnnl_types.h)
_CPU_ENGINE, _IN_ORDER_STREAM, _F32, _DATA_TYPE_UNDEF = 1, 1, 3, 0
_TAG_ANY, _TAG_A, _TAG_ABCD, _TAG_ABCDE = 1, 2, 5, 6
_FORWARD_TRAINING, _FORWARD_INFERENCE, _CONVOLUTION_DIRECT = 64, 96, 1
_POOLING_MAX, _POOLING_AVERAGE_WITH_PADDING, _POOLING_AVERAGE_WITHOUT_PADDING = 0x1ff, 0x2ff, 0x3ff
_ELTWISE_RELU, _ELTWISE_CLIP = 0x20, 0x2e
_QUERY_IMPLEMENTATION = 8
# (query, index) of each argument's memory descriptor; a bias is the weights' second
_QUERY_MD = {"src": (129, 0), "diff_src": (130, 0), "weights": (131, 0), "bias": (131, 1),
             "diff_weights": (132, 0), "dst": (133, 0), "diff_dst": (134, 0)}
_ARGUMENT = {"src": 1, "dst": 17, "weights": 33, "bias": 41, "diff_src": 129, "diff_dst": 145,
             "diff_weights": 161}
_MULTIPLE_SOURCES = 1024  # DNNL_ARG_MULTIPLE_SRC
_Dims = ctypes.c_int64 * 12


def _argument(name):
    """oneDNN's argument index for ``name`` (``src_K``: the K-th source of a concat)."""
    return _ARGUMENT[name] if not name.startswith("src_") else _MULTIPLE_SOURCES + int(name[4:])


class _ExecArgument(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class _Engine:
    """The CPU engine, created on first use, and an in-order stream per thread (a stream
    is not for concurrent use)."""

    instance = None
    creating = threading.Lock()

    def __init__(self):
        lib = library()
        lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
        lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        self.engine = ctypes.c_void_p()
        _check(lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU_ENGINE, ctypes.c_size_t(0)), "engine")
        self.local = threading.local()

    @property
    def stream(self):
        """This thread's in-order stream."""
        stream = getattr(self.local, "stream", None)
        if stream is None:
            stream = self.local.stream = ctypes.c_void_p()
            _check(library().dnnl_stream_create(ctypes.byref(stream), self.engine, ctypes.c_uint(_IN_ORDER_STREAM)),
                   "stream")
        return stream

    @classmethod
    def get(cls):
        """The one engine: two threads' first convolutions must not make two (a primitive
        run on another engine's stream fails with "invalid arguments")."""
        if cls.instance is None:
            with cls.creating:
                if cls.instance is None:
                    cls.instance = cls()
        return cls.instance


_post_op_attributes_made = {}
_making_post_ops = threading.Lock()
# activation code (`convolution.epilogue`) -> (eltwise algorithm, alpha, beta): ReLU, and
# ReLU6 as a clip to [0, 6]
_ACTIVATION_POST_OPS = {RELU: (_ELTWISE_RELU, 0.0, 0.0), RELU6: (_ELTWISE_CLIP, 0.0, 6.0)}


def _post_op_attributes(activation, residual=False):
    """Primitive attributes with the post-ops: a sum (the output memory's contents, the
    residual copied there first, added) when ``residual``, then the eltwise of
    ``activation`` (`RELU`, `RELU6`, 0: none); made once each, since a primitive
    descriptor copies the attributes it is created with."""
    key = (activation, residual)
    with _making_post_ops:
        if key not in _post_op_attributes_made:
            lib = library()
            post_ops, attributes = ctypes.c_void_p(), ctypes.c_void_p()
            _check(lib.dnnl_post_ops_create(ctypes.byref(post_ops)), "post-ops")
            if residual:
                _check(lib.dnnl_post_ops_append_sum(post_ops, ctypes.c_float(1.0), ctypes.c_int32(0),
                                                    _DATA_TYPE_UNDEF), "sum post-op")
            if activation:
                algorithm, alpha, beta = _ACTIVATION_POST_OPS[activation]
                _check(lib.dnnl_post_ops_append_eltwise(post_ops, algorithm, ctypes.c_float(alpha),
                                                        ctypes.c_float(beta)), "activation post-op")
            _check(lib.dnnl_primitive_attr_create(ctypes.byref(attributes)), "primitive attributes")
            _check(lib.dnnl_primitive_attr_set_post_ops(attributes, post_ops), "post-ops attribute")
            _check(lib.dnnl_post_ops_destroy(post_ops), "post-ops release")
            _post_op_attributes_made[key] = attributes
    return _post_op_attributes_made[key]


def _memory_desc(shape, tag):
    handle = ctypes.c_void_p()
    _check(library().dnnl_memory_desc_create_with_tag(ctypes.byref(handle), len(shape), _Dims(*shape), _F32,
                                                      tag), f"memory descriptor {shape}")
    return handle


def _reorder(source, source_slot, target, target_slot):
    """An `_Execution` of the reorder from memory descriptor ``source`` (address slot
    ``source_slot``) to ``target`` (``target_slot``)."""
    made = ctypes.c_void_p()
    engine = _Engine.get().engine
    _check(library().dnnl_reorder_primitive_desc_create(ctypes.byref(made), source, engine, target, engine, None),
           "reorder")
    return _Execution(made, {"src": (source, source_slot), "dst": (target, target_slot)})


class _Execution:
    """One primitive with its argument memories, run in order by a `ConvolutionProgram`.

    ``step`` is its part of a native launch's parameters (`_launch.c`'s PrimitiveStep and
    its Bindings); ``bound``, the address each memory holds, is shared by both ways of
    running it (the C launcher's and `run`'s), under the program's locks."""

    def __init__(self, primitive_desc, arguments):
        lib, engine = library(), _Engine.get()
        self.primitive = ctypes.c_void_p()
        _check(lib.dnnl_primitive_create(ctypes.byref(self.primitive), primitive_desc), "primitive")
        self.memories = {}
        for argument, (desc, _) in arguments.items():
            memory = ctypes.c_void_p()
            _check(lib.dnnl_memory_create(ctypes.byref(memory), desc, engine.engine, None), "memory")
            self.memories[argument] = memory
        self.bindings = [(self.memories[a].value, source) for a, (_, source) in arguments.items()]
        self.arguments = (_ExecArgument * len(arguments))(
            *[_ExecArgument(_argument(a), self.memories[a]) for a in arguments])
        self.count = len(arguments)
        self.set_handle, self.execute = lib.dnnl_memory_set_data_handle, lib.dnnl_primitive_execute
        self.set_handle.argtypes = (ctypes.c_void_p, ctypes.c_void_p)  # plain ints in, no wrapper per call
        self.bound = (ctypes.c_void_p * len(self.bindings))()  # rebound when the address changes
        self.step = struct.pack(f"=5q{2 * len(self.bindings)}q", self.primitive.value,
                                ctypes.addressof(self.arguments), self.count, len(self.bindings),
                                ctypes.addressof(self.bound), *[v for binding in self.bindings for v in binding])

    def run(self, addresses, stream):
        """Bind this call's buffers (``addresses`` by slot) and queue the primitive on ``stream``
        (the program's lock held: the memories are the program's)."""
        bound = self.bound
        for k, (memory, source) in enumerate(self.bindings):
            address = addresses[source]
            if bound[k] != address:
                self.set_handle(memory, address)
                bound[k] = address
        status = self.execute(self.primitive, stream, self.count, self.arguments)
        if status:
            _check(status, "execute")


class _NativeRuns:
    """How a program's executions run as one native launch (`_launch.c`'s
    ``run_primitives``): the entry points, the program's mutex, and the packed parameters
    of each list of executions it runs (made once per list)."""

    def __init__(self):
        lib = library()
        self.runner = launcher.primitive_runner()
        self.lock = ctypes.create_string_buffer(launcher.LOCK_BYTES)
        launcher.init_lock(ctypes.addressof(self.lock))
        self.header = [ctypes.cast(f, ctypes.c_void_p).value
                       for f in (lib.dnnl_memory_set_data_handle, lib.dnnl_primitive_execute, lib.dnnl_stream_wait)]
        self.header.append(ctypes.addressof(self.lock))
        self.packed = {}  # tuple of execution ids -> parameters

    def parameters(self, executions):
        """The packed parameters running ``executions`` in order."""
        key = tuple(map(id, executions))
        entry = self.packed.get(key)
        if entry is None:  # the executions are kept with the parameters, so their ids stay theirs
            entry = self.packed[key] = (struct.pack("=5q", *self.header, len(executions))
                                        + b"".join(e.step for e in executions), tuple(executions))
        return entry[0]

    def launch(self, executions, addresses):
        """A native launch of ``executions`` on ``addresses`` (by slot), on this thread's stream."""
        return (self.runner, addresses, (_Engine.get().stream.value,), self.parameters(executions))


class ReorderedPrimitive:
    """A oneDNN primitive run on metajit's dense NCHW / OIHW buffers: it computes in the
    layouts oneDNN prefers on this CPU (blocked channels), with reorder primitives
    converting its operands into parts of ``workspace`` (a
    `metajit.toolkit.allocator.Workspace` every program of the thread shares) before it,
    and its output back after it. A subclass sets ``call``, ``workspace``, ``user_desc``
    (dense descriptors by kind: ``x``, ``w``, ``y``, ``b``) and ``primitive_desc``, then
    calls `_plan_executions`.

    Between two such programs an intermediate may stay in oneDNN's layout (`chaining`):
    ``source_reorder`` / ``output_reorder`` are the reorders of the source and the output
    (``(reorder, slot, scratch slot, layout descriptor)``, None when none is needed).
    """

    def __init__(self, call, workspace):
        self.call = call
        self.workspace = workspace
        self.lock = threading.Lock()  # the primitives' memory objects are rebound at each call
        self._mode_plans = {}  # (chained inputs, output chained) -> `_mode_plan`
        self.native = _NativeRuns() if launcher is not None else None

    def _plan_executions(self, inputs, output_role):
        """Reorders in, the convolution, a reorder out; sources are address slots
        (0..n-1 inputs, n the output, n+1.. parts of the thread's shared workspace)."""
        lib = library()
        kind_of = {"src": "x", "diff_src": "x", "weights": "w", "diff_weights": "w", "dst": "y", "diff_dst": "y",
                   "bias": "b"}
        self.scratch_offsets = []
        self.scratch_bytes = 0
        self.weights = None
        self.source_reorder = self.output_reorder = None  # (reorder, slot, scratch slot, oneDNN-layout desc)
        self.output_layout_bytes = None  # the output's size in oneDNN's layout, when that is not NCHW
        slots = len(inputs) + 1
        before, after = [], []
        arguments = {}
        for position, role in enumerate(inputs + (output_role,)):
            if role == "residual":  # not an argument: copied into the output memory (a sum post-op)
                continue
            wanted = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(self.primitive_desc, *_QUERY_MD[role]))
            user = self.user_desc[kind_of[role]]
            if lib.dnnl_memory_desc_equal(wanted, user):
                arguments[role] = (wanted, position)
                continue
            self.scratch_offsets.append(self.scratch_bytes)
            self.scratch_bytes += aligned(lib.dnnl_memory_desc_get_size(wanted))
            scratch = slots + len(self.scratch_offsets) - 1
            arguments[role] = (wanted, scratch)
            is_output = role == output_role
            reorder = _reorder(wanted, scratch, user, position) if is_output else _reorder(user, position, wanted,
                                                                                             scratch)
            (after if is_output else before).append(reorder)
            if role in ("src", "dst"):
                chained = (reorder, position, scratch, wanted)
                if is_output:
                    self.output_layout_bytes = lib.dnnl_memory_desc_get_size(wanted)
                    # room for oneDNN's layout (padded channel blocks) when chained in the arena
                    self.output_capacity = (max(self.output_layout_bytes, lib.dnnl_memory_desc_get_size(user)),)
                self.output_reorder, self.source_reorder = (
                    (chained, self.source_reorder) if is_output else (self.output_reorder, chained))
            if role == "weights":  # inference keeps weights in oneDNN's layout (see KeptCopies)
                self.weights = KeptCopies(lib.dnnl_memory_desc_get_size(wanted), self.workspace.allocator,
                                          guard=self.lock)
                self.weight_reorder, self.weight_slots = before[-1], (position, scratch)
        self.residual_copies = None
        if "residual" in inputs:
            before.append(self._residual_copy(inputs.index("residual"), *arguments[output_role]))
            self.residual_copies = (inputs.index("residual"), before[-1],
                                    self._residual_copy(inputs.index("residual"), *arguments[output_role], chained=True))
            before.append(self.residual_copies[2])
        self.executions = before + [_Execution(self.primitive_desc, arguments)] + after

    def _residual_copy(self, position, output_desc, output_slot, chained=False):
        """The reorder copying the residual (input ``position``: NCHW, or the output's
        oneDNN layout when ``chained``) into the output memory before a sum post-op."""
        return _reorder(output_desc if chained else self.user_desc["y"], position, output_desc, output_slot)

    def input_layout(self, position):
        """The oneDNN-layout descriptor in which input ``position`` may come chained (the
        source's layout, or the output's for a residual), or None."""
        if position == 0:
            return None if self.source_reorder is None else self.source_reorder[3]
        if self.residual_copies is not None and position == self.residual_copies[0]:
            return self.output_reorder[3] if self.output_reorder is not None else None
        return None

    @property
    def implementation(self):
        """oneDNN's name for the convolution implementation it chose (e.g. ``brgconv:avx2``)."""
        info = ctypes.c_char_p()
        library().dnnl_primitive_desc_query(self.primitive_desc, _QUERY_IMPLEMENTATION, 0, ctypes.byref(info))
        return info.value.decode()

    def chains_into(self, reader, position, capacity):
        """Whether this program can write its output in oneDNN's layout for ``reader``
        (another program reading it as input ``position``) instead of the dense NCHW
        layout: both convert it between the same blocked layout and NCHW, and that layout
        fits the output's ``capacity`` bytes (no padded channel blocks beyond it)."""
        wanted = reader.input_layout(position)
        if self.output_reorder is None or wanted is None:
            return False
        return (self.output_layout_bytes <= capacity
                and library().dnnl_memory_desc_equal(self.output_reorder[3], wanted) == 1)

    def __call__(self, inputs, outputs, parameters, source_chained=(), output_chained=False):
        """Run the primitive on ``inputs`` into ``outputs``; ``source_chained``: the
        positions of the inputs that come in oneDNN's layout (`input_layout`),
        ``output_chained``: the output is to be in it (`chains_into`); their reorders
        are skipped."""
        set_threads(flags.num_threads)
        addresses, runs, runs_with_weights_kept = self._launch_plan(inputs, outputs, source_chained, output_chained)
        with self.lock:
            kept = self._use_kept_weights(inputs, addresses) if self.weights is not None else None
            if kept:
                runs = runs_with_weights_kept
            try:
                self._run(runs, addresses)
            except BaseException:
                if kept is False:  # the copy was to be derived by this run
                    self.weights.forget(inputs[self.weight_slots[0]])
                raise

    def native_calls(self, inputs, outputs, source_chained=(), output_chained=False):
        """`__call__` as launches for the C launcher (`native`), to run in a sequence with
        other launches; None when it must run as a call: without the launcher, when the
        thread's workspace would have to grow (an earlier launch of the sequence may use
        it), or when this call is to derive the weights' kept copy (under the program's
        lock, so that no other thread reads it half made). A kept copy the launch reads
        stays pinned until the sequence unpins it (`KeptCopies.pin`); without one (training:
        the weights change at every step) the launch derives them into its scratch."""
        if self.native is None:
            return None
        plan = self._launch_plan(inputs, outputs, source_chained, output_chained, grow=False)
        if plan is None:
            return None
        addresses, runs, runs_with_weights_kept = plan
        if self.weights is not None:
            source = inputs[self.weight_slots[0]]
            with self.lock:
                kept = self.weights.pin(source)
                # nothing may refuse the launch once derives_in_scratch has noted the sighting
                if kept is None and not self.weights.derives_in_scratch(source):
                    return None
            if kept is not None:
                addresses[self.weight_slots[1]] = kept.address
                runs = runs_with_weights_kept
        set_threads(flags.num_threads)
        return [self.native.launch(runs, addresses)]

    def _launch_plan(self, inputs, outputs, source_chained, output_chained, grow=True):
        """This call's addresses by slot (inputs, output, workspace parts; a chained value
        in place of its scratch), the executions of its mode, and those to run when the
        weights' kept copy is current (`_mode_plan`); None when the thread's workspace is
        too small and not to ``grow``."""
        addresses = [b.address for b in inputs]
        addresses.append(outputs[0].address)
        if self.scratch_offsets:
            base = self.workspace.reserve(self.scratch_bytes, grow)
            if base is None:
                return None
            addresses += [base.address + offset for offset in self.scratch_offsets]
        mode = (source_chained, output_chained)
        redirects, runs, runs_with_weights_kept = (self._mode_plans.get(mode)
                                                   or self._mode_plan(source_chained, output_chained))
        for scratch, slot in redirects:
            addresses[scratch] = addresses[slot]
        return addresses, runs, runs_with_weights_kept

    def _run(self, executions, addresses):
        """Run ``executions`` in order on ``addresses`` (by slot) and wait for them (this
        program's lock held); in one native launch where the C launcher is built."""
        if self.native is not None:
            launcher.run([self.native.launch(executions, addresses)], flags.num_threads)
            return
        stream = _Engine.get().stream
        for execution in executions:
            execution.run(addresses, stream)
        _check(library().dnnl_stream_wait(stream), "stream wait")

    def _mode_plan(self, source_chained, output_chained):
        """For one mode of `__call__`: the address slots a chained input or output takes the
        place of (``(scratch slot, its slot)``), the executions to run, and those to run
        when the weights' kept copy is current (its reorder skipped); kept per mode."""
        redirects, skipped = [], []
        for chained, reorder in ((0 in source_chained, self.source_reorder), (output_chained, self.output_reorder)):
            if chained:
                execution, slot, scratch, _ = reorder
                redirects.append((scratch, slot))
                skipped.append(execution)
        if self.residual_copies is not None:  # the residual's copy from NCHW, or from oneDNN's layout
            position, plain, blocked = self.residual_copies
            skipped.append(plain if position in source_chained else blocked)
        runs = [e for e in self.executions if all(e is not s for s in skipped)]
        weight_reorder = self.weight_reorder if self.weights is not None else None
        plan = (redirects, runs, [e for e in runs if e is not weight_reorder])
        self._mode_plans[(source_chained, output_chained)] = plan
        return plan


class ConvolutionProgram(ReorderedPrimitive):
    """A 2-d convolution library op (``conv2d``, ``conv2d_bias``, ``conv2d_bias_relu``,
    ``conv2d_bias_relu6``, ``conv2d_backward_data``, ``conv2d_backward_weights``) as oneDNN
    primitives (the activations as eltwise post-ops); an unchanged weight stays in
    oneDNN's layout between calls (`KeptCopies`).
    """

    ROLES = {"conv2d": (("src", "weights"), "dst"),
             "conv2d_bias": (("src", "weights", "bias"), "dst"),
             "conv2d_bias_relu": (("src", "weights", "bias"), "dst"),
             "conv2d_bias_relu6": (("src", "weights", "bias"), "dst"),
             "conv2d_bias_add": (("src", "weights", "bias", "residual"), "dst"),
             "conv2d_bias_add_relu": (("src", "weights", "bias", "residual"), "dst"),
             "conv2d_backward_data": (("diff_dst", "weights"), "diff_src"),
             "conv2d_backward_weights": (("src", "diff_dst"), "diff_weights")}

    def __init__(self, call, workspace):
        super().__init__(call, workspace)
        stride, padding, dilation, groups = call.attrs[:4]
        inputs, output_role = self.ROLES[call.name]
        shapes = dict(zip(inputs, (shape for _, shape in call.inputs)))
        shapes[output_role] = call.outputs[0][1]
        x_shape = shapes.get("src") or shapes["diff_src"]
        w_shape = shapes.get("weights") or shapes["diff_weights"]
        y_shape = shapes.get("dst") or shapes["diff_dst"]
        if groups > 1:
            w_shape = (groups, w_shape[0] // groups) + tuple(w_shape[1:])
        plain = {"x": (x_shape, _TAG_ABCD), "w": (w_shape, _TAG_ABCDE if groups > 1 else _TAG_ABCD),
                 "y": (y_shape, _TAG_ABCD), "b": ((y_shape[1],), _TAG_A)}
        any_desc = {name: _memory_desc(shape, _TAG_ANY) for name, (shape, _) in plain.items()}
        self.user_desc = {name: _memory_desc(shape, tag) for name, (shape, tag) in plain.items()}
        padding_right = [(y_shape[2 + a] - 1) * stride[a] + (w_shape[-2 + a] - 1) * dilation[a] + 1
                         - x_shape[2 + a] - padding[a] for a in range(2)]
        geometry = (_Dims(*stride), _Dims(*(d - 1 for d in dilation)), _Dims(*padding), _Dims(*padding_right))
        lib, engine = library(), _Engine.get().engine
        forward = ctypes.c_void_p()
        bias = self.user_desc["b"] if "bias" in inputs else None
        activation = epilogue(call)[1]
        residual = adds_residual(call)
        attributes = _post_op_attributes(activation, residual) if activation or residual else None
        _check(lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(forward), engine, _FORWARD_TRAINING, _CONVOLUTION_DIRECT, any_desc["x"], any_desc["w"],
            bias, any_desc["y"], *geometry, attributes), f"convolution {x_shape} * {w_shape}")
        self.forward_desc = forward  # the backward descriptors refer to it
        if call.name in FORWARD:
            self.primitive_desc = forward
        elif call.name == "conv2d_backward_data":
            self.primitive_desc = ctypes.c_void_p()
            _check(lib.dnnl_convolution_backward_data_primitive_desc_create(
                ctypes.byref(self.primitive_desc), engine, _CONVOLUTION_DIRECT, any_desc["x"], any_desc["w"],
                any_desc["y"], *geometry, forward, None), "convolution backward data")
        else:
            self.primitive_desc = ctypes.c_void_p()
            _check(lib.dnnl_convolution_backward_weights_primitive_desc_create(
                ctypes.byref(self.primitive_desc), engine, _CONVOLUTION_DIRECT, any_desc["x"], any_desc["w"],
                None, any_desc["y"], *geometry, forward, None), "convolution backward weights")
        self._plan_executions(inputs, output_role)
        # oneDNN's JIT post-ops compute ReLU and clip as a maximum with 0: NaN and -inf come
        # out 0 (its reference implementation keeps NaN)
        self.clamps_output = bool(activation) and self.implementation.split(":")[0].startswith(("jit", "brg"))

    def _use_kept_weights(self, inputs, addresses):
        """Point the weight slot at the kept oneDNN-layout copy, if any; returns whether
        the copy is current (its reorder skipped), None when no copy is kept."""
        position, slot = self.weight_slots
        kept = self.weights.lookup(inputs[position])
        if kept is None:
            return None
        buffer, current = kept
        addresses[slot] = buffer.address
        return current


class PoolingProgram(ReorderedPrimitive):
    """The ``max_pool2d`` and ``avg_pool2d`` library ops as oneDNN pooling primitives
    (inference): one in the blocked layout oneDNN's convolutions give the same tensor, for
    a pooling chained with them (`chaining`: GoogLeNet's and Inception's poolings sit
    between convolutions), and one on the dense NCHW buffers themselves, for a pooling
    that is not (no reorders). The attrs start ``(kernel, stride, padding, dilation,
    ceil_mode)``; an average's end with ``count_include_pad``."""

    ROLES = {"max_pool2d": (("src",), "dst"), "avg_pool2d": (("src",), "dst")}

    def __init__(self, call, workspace):
        super().__init__(call, workspace)
        x_shape, y_shape = call.inputs[0][1], call.outputs[0][1]
        self.user_desc = {"x": _memory_desc(x_shape, _TAG_ABCD), "y": _memory_desc(y_shape, _TAG_ABCD)}
        with _layouts_lock:  # the cached layout descriptor is freed when the cache is trimmed
            self.primitive_desc = self._pooling(_convolution_layout(x_shape), _memory_desc(y_shape, _TAG_ANY))
        self._plan_executions(("src",), "dst")
        self.dense = _Execution(self._pooling(self.user_desc["x"], self.user_desc["y"]),
                                {"src": (self.user_desc["x"], 0), "dst": (self.user_desc["y"], 1)})
        self.dense_bytes = [4 * math.prod(x_shape), 4 * math.prod(y_shape)]
        lib = library()
        self.layout_bytes = [lib.dnnl_memory_desc_get_size(ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(
            self.primitive_desc, *_QUERY_MD[role]))) for role in ("src", "dst")]

    def _pooling(self, source, output):
        """This call's pooling primitive descriptor (maximum, or average with or without the
        padding counted) from memory descriptor ``source`` to ``output``."""
        kernel, stride, padding, dilation = self.call.attrs[:4]
        x_shape, y_shape = self.call.inputs[0][1], self.call.outputs[0][1]
        padding_right = [(y_shape[2 + a] - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1
                         - x_shape[2 + a] - padding[a] for a in range(2)]
        if self.call.name == "max_pool2d":
            algorithm = _POOLING_MAX
        else:
            algorithm = _POOLING_AVERAGE_WITH_PADDING if self.call.attrs[5] else _POOLING_AVERAGE_WITHOUT_PADDING
        made = ctypes.c_void_p()
        _check(library().dnnl_pooling_forward_primitive_desc_create(
            ctypes.byref(made), _Engine.get().engine, _FORWARD_INFERENCE, algorithm, source, output,
            _Dims(*stride), _Dims(*kernel), _Dims(*(d - 1 for d in dilation)), _Dims(*padding),
            _Dims(*padding_right), None), f"{self.call.name} {x_shape} -> {y_shape}")
        return made

    def __call__(self, inputs, outputs, parameters, source_chained=(), output_chained=False, source_clamped=False):
        """Pool; ``source_clamped``: the source is known to hold no NaN and no -inf (a ReLU's
        output: `chaining.clamped_sources`), so a maximum need not look for them."""
        super().__call__(inputs, outputs, parameters, source_chained, output_chained)
        if self.call.name != "max_pool2d" or source_clamped:  # an average's sums carry NaNs as torch's
            return
        source = _floats(inputs[0], self.layout_bytes[0] if source_chained else self.dense_bytes[0])
        with np.errstate(invalid="ignore"):
            lowest = source.min() if source.size else 0.0  # nan if a nan is there
        if not lowest > -np.inf:  # a nan, or a window that may hold only -inf
            self._mend_non_finite(source, outputs[0], source_chained, output_chained)

    def native_calls(self, inputs, outputs, source_chained=(), output_chained=False, source_clamped=False):
        """`ReorderedPrimitive.native_calls`; None for a maximum whose source may hold NaN
        or -inf (its output is mended after the pooling, in Python)."""
        if self.call.name == "max_pool2d" and not source_clamped:
            return None
        return super().native_calls(inputs, outputs, source_chained, output_chained)

    def _launch_plan(self, inputs, outputs, source_chained, output_chained, grow=True):
        if source_chained or output_chained:
            return super()._launch_plan(inputs, outputs, source_chained, output_chained, grow)
        runs = (self.dense,)
        return [inputs[0].address, outputs[0].address], runs, runs

    def _mend_non_finite(self, source, output, source_chained, output_chained):
        """oneDNN's maximum passes over NaNs and starts from the lowest finite float; torch's
        (and the composition's) is NaN where a window holds one and -inf where all it holds
        is -inf. Pool a map of the windows' values the same way (2 at a NaN, -1 at -inf, 1
        elsewhere) and write NaN where it comes out 2, -inf where -1."""
        marks = np.where(np.isnan(source), np.float32(2), np.where(source == -np.inf, np.float32(-1), np.float32(1)))
        pooled = np.empty(self.layout_bytes[1] if output_chained else self.dense_bytes[1], dtype=np.uint8)
        super().__call__([_Address(marks)], [_Address(pooled)], (), source_chained, output_chained)
        result, found = _floats(output, pooled.nbytes), pooled.view(np.float32)
        result[found == 2] = np.nan
        result[found == -1] = -np.inf


class ConcatProgram(ReorderedPrimitive):
    """The ``concat`` library op (inference: outputs of convolutions and poolings joined
    along channels, as GoogLeNet's, Inception's and SqueezeNet's modules end) as oneDNN's
    concat primitive: on the NCHW buffers, or in the blocked layout of oneDNN's
    convolutions when chained with them (`chaining`), where every part is a whole number
    of channel blocks; parts that come in NCHW are reordered into it first, and the output
    reordered to NCHW unless it is handed on chained."""

    ROLES = {"concat": None}

    def __init__(self, call, workspace):
        super().__init__(call, workspace)
        lib = library()
        shapes, y_shape = [shape for _, shape in call.inputs], call.outputs[0][1]
        count = len(shapes)
        dense = [_memory_desc(shape, _TAG_ABCD) for shape in shapes]
        dense_y = _memory_desc(y_shape, _TAG_ABCD)
        self.dense = _Execution(self._concat(dense_y, dense), {
            **{f"src_{k}": (desc, k) for k, desc in enumerate(dense)}, "dst": (dense_y, count)})
        self.source_reorder = self.output_reorder = self.residual_copies = self.weights = None
        self.output_layout_bytes = None
        with _layouts_lock:  # copied at once: the next lookup may trim the cache, freeing the last one
            blocked = [_copied_desc(_convolution_layout(shape)) for shape in shapes + [y_shape]]
        if all(lib.dnnl_memory_desc_get_size(desc) == 4 * math.prod(shape)
               for desc, shape in zip(blocked, shapes + [y_shape])):
            self._plan_blocked(blocked[:-1], blocked[-1], dense, dense_y)

    def _plan_blocked(self, blocked, blocked_y, dense, dense_y):
        """The blocked concat: slots 0..n-1 the parts, n the output, then scratch for each
        part (its NCHW value reordered) and for the output."""
        lib = library()
        count = len(blocked)
        self.part_layouts = blocked
        sizes = [lib.dnnl_memory_desc_get_size(desc) for desc in blocked + [blocked_y]]
        self.scratch_offsets, self.scratch_bytes = [], 0
        for size in sizes:
            self.scratch_offsets.append(self.scratch_bytes)
            self.scratch_bytes += aligned(size)
        scratch = [count + 1 + k for k in range(count + 1)]
        self.part_reorders = [_reorder(dense[k], k, blocked[k], scratch[k]) for k in range(count)]
        self.blocked = _Execution(self._concat(blocked_y, blocked), {
            **{f"src_{k}": (desc, scratch[k]) for k, desc in enumerate(blocked)}, "dst": (blocked_y, scratch[-1])})
        self.output_reorder = (_reorder(blocked_y, scratch[-1], dense_y, count), count, scratch[-1], blocked_y)
        self.output_layout_bytes = sizes[-1]

    def _concat(self, output, parts):
        """A concat primitive descriptor joining memory descriptors ``parts`` into ``output``."""
        made = ctypes.c_void_p()
        descs = (ctypes.c_void_p * len(parts))(*[d.value for d in parts])
        _check(library().dnnl_concat_primitive_desc_create(ctypes.byref(made), _Engine.get().engine, output,
                                                           len(parts), 1, descs, None),
               f"concat {[shape for _, shape in self.call.inputs]}")
        return made

    def input_layout(self, position):
        """The blocked layout part ``position`` may come in (None: NCHW only)."""
        return None if self.output_reorder is None else self.part_layouts[position]

    def _launch_plan(self, inputs, outputs, source_chained, output_chained, grow=True):
        addresses = [b.address for b in inputs]
        addresses.append(outputs[0].address)
        if not source_chained and not output_chained:
            runs = (self.dense,)
            return addresses, runs, runs
        base = self.workspace.reserve(self.scratch_bytes, grow)
        if base is None:
            return None
        addresses += [base.address + offset for offset in self.scratch_offsets]
        count = len(inputs)
        runs = []
        for k, reorder in enumerate(self.part_reorders):
            if k in source_chained:
                addresses[count + 1 + k] = addresses[k]
            else:
                runs.append(reorder)
        runs.append(self.blocked)
        if output_chained:
            addresses[-1] = addresses[count]
        else:
            runs.append(self.output_reorder[0])
        return addresses, runs, runs


def _copied_desc(desc):
    """A copy of memory descriptor ``desc`` that the caller owns (a cached one may be freed)."""
    made = ctypes.c_void_p()
    _check(library().dnnl_memory_desc_clone(ctypes.byref(made), desc), "memory descriptor copy")
    return made


class _Address:
    """A numpy array passed where a program takes a buffer (only its ``address`` is read)."""

    def __init__(self, array):
        self.array, self.address = array, array.ctypes.data


def _floats(buffer, nbytes):
    """The first ``nbytes`` of a host buffer as float32 values."""
    return buffer.array[:nbytes].view(np.float32)


_convolution_layouts = {}
_layouts_lock = threading.Lock()


def _convolution_layout(shape):
    """The memory descriptor of the layout oneDNN's convolutions write an NCHW ``shape``
    in on this CPU (asked of a 1x1 convolution producing it; kept per shape). Call it, and
    use what it returns, with ``_layouts_lock`` held."""
    if shape not in _convolution_layouts:
        lib, engine = library(), _Engine.get().engine
        if len(_convolution_layouts) >= 256:  # a pooling primitive copies the descriptor it is made with
            for made, _ in _convolution_layouts.values():
                lib.dnnl_primitive_desc_destroy(made)
            _convolution_layouts.clear()
        channels = shape[1]
        convolution = ctypes.c_void_p()
        none = _Dims(0, 0)
        _check(lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(convolution), engine, _FORWARD_TRAINING, _CONVOLUTION_DIRECT,
            _memory_desc(shape, _TAG_ANY), _memory_desc((channels, channels, 1, 1), _TAG_ANY), None,
            _memory_desc(shape, _TAG_ANY), _Dims(1, 1), none, none, none, None), f"layout of {shape}")
        # the descriptor belongs to the primitive descriptor: both are kept
        _convolution_layouts[shape] = (convolution, ctypes.c_void_p(
            lib.dnnl_primitive_desc_query_md(convolution, *_QUERY_MD["dst"])))
    return _convolution_layouts[shape][1]
