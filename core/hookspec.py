"""Hook specifications every metajit backend plugin implements.

A backend is a module (or object) registered with pluggy under the backend's name,
found through the entry-point group ``metajit.backends``. Core calls
`metajit_backend_describe` and `metajit_backend_unavailable_reason` on all plugins to
list devices; for the device in use it resolves the plugin's remaining hooks once
into a `metajit.plugins.BackendHandle` and calls them directly (no pluggy dispatch on
the hot path). Hooks marked *required* must be implemented by every backend.

Buffers are opaque to core: whatever `metajit_backend_allocate` returns is passed
back to launch, copy and free hooks. A buffer's value is never changed after the kernel
that produced it has run, so backends may share or cache them freely.

Asynchronous devices (the contract every hook below follows):

* Launches and device-to-device copies may be queued and return at once; they run in
  the order they were issued (one stream). `metajit_backend_synchronize`,
  `metajit_backend_copy_to_host` and `metajit_backend_copy_from_host` are the points
  where the host waits.
* Within one realisation core hands an intermediate's buffer to a later launch's output
  once every launch reading it has been issued (stream-ordered reuse), and calls
  `metajit_backend_free` on buffers that queued kernels may still read. Frees must
  therefore be stream-ordered, and must never raise: they also run from finalisers,
  including at interpreter exit.
* A kernel that fails on the device may report the failure at a later synchronize or
  copy; the error should then be a `metajit.errors.MetajitDeviceError` naming the
  kernel that failed, when the backend can know it.
"""
import pluggy

hookspec = pluggy.HookspecMarker("metajit")
hookimpl = pluggy.HookimplMarker("metajit")


@hookspec
def metajit_backend_describe():
    """Describe this backend (required). Called when devices are listed or selected.

    :return: a `metajit.plugins.BackendDescription` with the backend's ``name`` (the
        name users pass to ``jt.set_device``), ``device_kind`` (``"cpu"``, ``"gpu"``,
        ``"accelerator"``, ``"interpreter"``), the ``dtypes`` it computes in, the
        element-wise ops it lowers natively (``native_ops``; empty means all, otherwise
        core rewrites the others with `metajit.toolkit.decompose` before codegen) and
        the library kernels it
        claims, by name or ``(name, dtypes)`` (e.g. ``(("matmul", ("float32",)),
        "conv2d")``; see `metajit.plugins.claims`).

    Example::

        @hookimpl
        def metajit_backend_describe():
            return BackendDescription(name="mydev", device_kind="accelerator",
                                      dtypes=("float32", "int32", "bool"))
    """


@hookspec
def metajit_backend_unavailable_reason():
    """Say why this backend cannot run here, or return None when it can (required).

    Called once per process when devices are listed or selected; the result is
    shown by ``jt.devices()``, e.g. ``"no NVIDIA driver found"`` or ``"g++ not
    found: install g++ or set CXX"``. Must not raise.
    """


@hookspec
def metajit_backend_codegen(kernels):
    """Generate source for a batch of kernels (required).

    Called once per realisation with every kernel not yet in this process's
    compiled-program cache.

    :param kernels: list of `metajit.ir.kernel.Kernel`.
    :return: list (same order) of `metajit.plugins.KernelSource`: the kernel, the
        source language and text, and the entry point name.
    """


@hookspec
def metajit_backend_compile(sources):
    """Compile a batch of generated sources into loadable programs (required).

    Called right after codegen with all its sources, so a backend can compile them in
    one compiler call or in parallel, and consult its disk cache.

    :param sources: list of `metajit.plugins.KernelSource`.
    :return: list (same order) of opaque program objects passed to `metajit_backend_launch`.
    :raises metajit.errors.MetajitCompileError: naming the source file and the
        compiler's first errors.
    """


@hookspec
def metajit_backend_launch(program, inputs, outputs, parameters):
    """Run one compiled kernel (required).

    :param program: from `metajit_backend_compile` or `metajit_backend_lower_library_kernel`.
    :param inputs: buffers for the kernel's input slots, in order.
    :param outputs: freshly allocated buffers for its output slots. Outputs of stores
        with a ``reduce_op`` must be filled with the reduction's identity
        (`metajit.ir.opset.reduce_identity`) before accumulating.
    :param parameters: Python scalars for the kernel's ``param`` slots (typed by
        ``kernel.parameters``); a program must accept any values.

    May return before the kernel finishes; `metajit_backend_synchronize` waits.
    """


@hookspec
def metajit_backend_launch_sequence(launches, plan_key, seconds):
    """Run a realisation's kernels in order (optional; without it core calls
    `metajit_backend_launch` once per kernel).

    :param launches: a list of ``(program, inputs, outputs, parameters)``, each as
        `metajit_backend_launch` takes them; all outputs are already allocated, and a
        later launch's output may be the buffer an earlier launch read (stream-ordered
        reuse).
    :param plan_key: a hashable key of the plan: every sequence with this key has the
        same programs in the same order (buffers and parameter values may differ), so a
        backend may capture the sequence once and replay it with one launch (CUDA
        Graphs), updating buffer addresses and parameters.

    If it raises, core treats every output of the sequence as not computed, except that
    an exception carrying an integer ``metajit_completed`` attribute says the first that
    many launches finished: their outputs (whose buffers no finished launch reused) are
    kept, so a retry does not redo them, and every launch up to the interrupted one
    counts as started (a donated buffer it wrote into is lost); an optional
    ``metajit_unkept`` attribute lists finished launches whose outputs must not be kept
    (left in a layout of the backend's own for a reader that did not run). A backend
    should let Ctrl-C (a signal handler's exception) land between launches rather than
    after the whole sequence. A realisation run in segments (callbacks between launches)
    calls it per segment with ``(plan_key, first launch)``. A plugin whose
    implementation omits ``plan_key`` is called without it.

    :param seconds: None, or a list while `metajit.profile_scope` times the launches: run
        them as the sequence runs them (the same layouts between kernels, the same fused
        paths) but one at a time, waiting for each, and append each one's wall time. A
        plugin whose implementation omits ``seconds`` (or ``plan_key``) is profiled
        through `metajit_backend_launch`, one kernel at a time.

    Example::

        @hookimpl
        def metajit_backend_launch_sequence(launches, plan_key):
            for program, inputs, outputs, parameters in launches:
                program(inputs, outputs, parameters)
    """


@hookspec
def metajit_backend_synchronize():
    """Block until every launched kernel and copy has finished (required).

    Raises a `metajit.errors.MetajitDeviceError` for a failure of queued work (naming the
    kernel when known); the device must stay usable for later work."""


@hookspec
def metajit_backend_allocate(nbytes):
    """Allocate a device buffer of ``nbytes`` bytes (may be 0) and return it (required).

    The buffer must be aligned for every dtype the backend declares. Raise `MemoryError`
    (or a `metajit.errors.MetajitDeviceError` naming the size) when the device is full;
    `metajit.toolkit.allocator.CachingAllocator` returns its cached buffers and retries
    first.
    """


@hookspec
def metajit_backend_free(buffer):
    """Release a buffer from `metajit_backend_allocate` (required).

    Called when the last Var holding it dies; a caching allocator may keep it for reuse.
    Kernels queued earlier may still read the buffer: the free (and any reuse of the
    memory) must be ordered after them. Must never raise: it runs from finalisers, also
    at interpreter exit.
    """


@hookspec
def metajit_backend_buffer_view(buffer, offset, nbytes):
    """A buffer for bytes ``[offset, offset + nbytes)`` of ``buffer`` (optional).

    With it, core gives each realisation one arena from `metajit_backend_allocate` and
    places the intermediates that die within the realisation at planned offsets in it
    (values whose lifetimes do not overlap share bytes), instead of allocating them one
    by one; ``offset`` is a multiple of 64. The view is passed to launch and copy hooks
    like any buffer but is never freed: core keeps ``buffer`` alive while views of it
    live and frees it afterwards. Without this hook, intermediates get whole buffers
    reused by size class.

    Example (host buffers with a numpy ``array`` and an ``address``)::

        @hookimpl
        def metajit_backend_buffer_view(buffer, offset, nbytes):
            return HostBuffer.view(buffer, offset, nbytes)
    """


@hookspec
def metajit_backend_copy_from_host(buffer, array):
    """Copy the C-contiguous numpy ``array`` into device ``buffer`` (required).

    ``buffer`` holds at least ``array.nbytes`` bytes. Must be complete (or the array
    copied) before returning, since the caller may reuse the array.
    """


@hookspec
def metajit_backend_copy_to_host(buffer, array):
    """Copy ``array.nbytes`` bytes from device ``buffer`` into the numpy ``array`` (required).

    Returns once the data is in ``array``.
    """


@hookspec
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    """Copy ``nbytes`` bytes between two buffers of this backend (required)."""


@hookspec
def metajit_backend_lower_library_kernel(kernel):
    """Return a program running a library kernel (BLAS, oneDNN, cuBLAS, cuDNN...)
    (optional; required when the description claims ``library_kernels``).

    Called once per new `metajit.ir.kernel.LibraryCall` (name, attrs, input/output dtypes
    and shapes; dense row-major buffers) of an op the backend claims for those dtypes;
    the program is launched like a compiled one. Core recognises the patterns itself:
    a ``matmul`` call's attrs are a `metajit.toolkit.analysis.MatmulAttrs`, the
    convolutions' ``(stride, padding, dilation, groups[, input shape])`` (see
    `metajit.nn.conv`). Returning None is an error for a claimed call.

    A program that needs scratch memory (a cuDNN workspace, oneDNN scratchpad) may
    allocate it once from the backend's own allocator and keep it; it is launched like
    any other program, in stream order.
    """


@hookspec
def metajit_backend_compile_code(call):
    """Compile a user's inline-source operator (``jt.code``) and return its program, or
    None when this backend has no source language for it (optional).

    :param call: a `metajit.toolkit.inline_source.CodeCall`: the user's header and body
        per language (``call.source("cpu")`` gives ``(header, body)`` or None), input and
        output dtypes and ranks, ``data`` names and extra compiler options. Shapes and
        data values are not part of it: they are run-time arguments, so one program
        serves every call with new values. `metajit.toolkit.inline_source` expands the
        macros and renders a C++ entry point; a backend compiles it with its own
        toolchain into its disk cache.

    The program's ``run(inputs, input_shapes, outputs, output_shapes, data)`` takes the
    device buffers, their shapes (outputs at their maximum sizes), and the data values
    in ``call.data_names`` order; it returns the outputs' shapes (smaller where the code
    called ``set_shape``). Core calls it at most once per operator, after the inputs are
    computed, and runs an operator whose device lacks this hook (or returns None) on
    the ``cpu`` backend when the call has a ``cpu`` source (its values then move as any
    Var used on another device does). A compile failure raises `MetajitCompileError`
    naming the user's lines (`inline_source.compile_error_message`).

    Example::

        @hookimpl
        def metajit_backend_compile_code(call):
            return code_op.compile_code(call)  # None without a source for this device
    """


@hookspec
def metajit_backend_memory_info():
    """The device's memory use as a dict of byte counts (optional): at least
    ``allocated_bytes`` (held by live values), ``cached_bytes`` (freed, kept for reuse) and
    ``peak_bytes``; a device may add its own (``device_free_bytes``...). Shown by
    ``jt.display_memory_info()`` and returned by ``jt.memory_info()``.

    Example::

        @hookimpl
        def metajit_backend_memory_info():
            return {"allocated_bytes": a.allocated_bytes, "cached_bytes": a.cached_bytes,
                    "peak_bytes": a.peak_bytes}
    """



@hookspec
def metajit_backend_empty_cache():
    """Return the memory the device keeps for reuse (freed buffers its caching allocator
    holds) to the system or driver (optional). Called by ``jt.gc()`` after every queued
    launch has finished, so nothing queued still reads a cached buffer.

    Example::

        @hookimpl
        def metajit_backend_empty_cache():
            allocator.empty_cache()
    """


@hookspec
def metajit_backend_collectives(rank, size, broadcast):
    """A collective library working on this device's buffers (optional; NCCL on cuda).
    Called once per process, on every rank at the same point, when the first collective
    (``jt.mpi_all_reduce``..., data-parallel gradient averaging) runs on this device under
    MPI; without this hook collectives copy values to the host and run through MPI.

    :param rank: this process's rank; ``size`` the number of processes.
    :param broadcast: ``broadcast(value)`` returns rank 0's picklable ``value`` on every
        rank (for the library's setup, e.g. NCCL's unique id).
    :returns: an object whose methods queue a collective on the device in order with the
        kernels (``source`` and ``destination`` are buffers from
        `metajit_backend_allocate`, ``count`` elements of the dtype named ``dtype``):
        ``all_reduce(source, destination, count, dtype, op)`` with ``op`` one of
        ``"add"``, ``"max"``, ``"min"``; ``reduce(source, destination, count, dtype, root)``
        (the sum on rank ``root``; other ranks' ``destination`` is left as it is);
        ``broadcast(source, destination, count, dtype, root)``. Raise
        `metajit.errors.MetajitDtypeError` for a dtype the library cannot reduce, and
        `metajit.errors.MetajitDeviceError` when the library cannot be used (not installed).
        A mean is a sum that core then scales.

    Example::

        @hookimpl
        def metajit_backend_collectives(rank, size, broadcast):
            unique_id = broadcast(nccl.unique_id() if rank == 0 else None)
            return nccl.Communicator(nccl, rank, size, unique_id, int(device.stream))
    """
