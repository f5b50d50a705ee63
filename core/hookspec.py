"""Hook specifications every metajit backend plugin implements.

A backend is a module (or object) registered with pluggy under the backend's name,
found through the entry-point group ``metajit.backends``. Core calls
`metajit_backend_describe` and `metajit_backend_unavailable_reason` on all plugins to
list devices; for the device in use it resolves the plugin's remaining hooks once
into a `metajit.plugins.BackendHandle` and calls them directly (no pluggy dispatch on
the hot path). Hooks marked *required* must be implemented by every backend.

Buffers are opaque to core: whatever `metajit_backend_allocate` returns is passed
back to launch, copy and free hooks. A buffer is never written after the kernel
that produced it has run, so backends may share or cache them freely.
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
        element-wise ops it lowers natively (all, by default) and the library kernels it
        offers (e.g. ``("matmul",)``).

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

    :param kernels: list of `metajit.kernel.Kernel`.
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
        (`metajit.opset.reduce_identity`) before accumulating.
    :param parameters: Python scalars for the kernel's ``param`` slots (typed by
        ``kernel.parameters``); a program must accept any values.

    May return before the kernel finishes; `metajit_backend_synchronize` waits.
    """


@hookspec
def metajit_backend_launch_sequence(launches):
    """Run several kernels in order (optional; without it core calls
    `metajit_backend_launch` once per kernel).

    :param launches: a list of ``(program, inputs, outputs, parameters)``, each as
        `metajit_backend_launch` takes them; all outputs are already allocated.

    If it raises, any of the launches may or may not have run: core treats every output
    of the sequence as not computed.
    """


@hookspec
def metajit_backend_synchronize():
    """Block until every launched kernel and copy has finished (required)."""


@hookspec
def metajit_backend_allocate(nbytes):
    """Allocate a device buffer of ``nbytes`` bytes (may be 0) and return it (required).

    The buffer must be aligned for every dtype the backend declares.
    """


@hookspec
def metajit_backend_free(buffer):
    """Release a buffer from `metajit_backend_allocate` (required).

    Called when the last Var holding it dies; a caching allocator may keep it for reuse.
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
    """Offer a library implementation (BLAS, oneDNN, cuBLAS...) for ``kernel`` (optional).

    Called before codegen for each new kernel. Return a program for
    `metajit_backend_launch`, or None to let codegen handle the kernel.

    ``kernel`` is a `metajit.library_ops.LibraryCall` (name, attrs, input/output
    dtypes and shapes; dense row-major buffers) for each library op whose name the
    backend lists in ``library_kernels``; a program must be returned for those.
    """
