"""The ``cpu`` backend: fused kernels as C++17 + OpenMP, compiled by the system compiler.

Parts: `renderer` (Kernel -> C++), `compiler` (batch compile, disk cache, loading),
`allocator` (aligned host buffers in the toolkit's caching allocator), `library` (matmul through BLAS), `onednn`
(oneDNN GEMM and the convolution library ops), `winograd` (wide 3x3 convolutions as Winograd F(4x4, 3x3)),
`grouped_conv` (grouped convolutions with 4 channels per group).
"""
import ctypes
import os
import threading
import time

import numpy as np

from metajit.flags import flags
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, FusionCosts, KernelSource
from metajit.toolkit import analysis, axis_merge, codegen, disk_cache
from metajit.toolkit.allocator import Workspace, recorded_answers, unpin_kept_copies
from metajit.toolkit.host_compiler import missing_compiler_reason

from . import chaining, code_op, grouped_conv, kept_batches, onednn, winograd
from .allocator import HostBuffer, host_allocator
from .compiler import SYMBOL_PREFIX, Compiler
from .library import MatmulProgram
from .native import launcher as native_launcher
from .renderer import CpuRenderer

NAME = "cpu"
# libgomp threads otherwise spin for a long time after each parallel region and starve
# the BLAS threads of the next library kernel; must be set before a kernel library loads.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
_allocator = host_allocator()
_workspace = Workspace(_allocator)  # library programs' scratch, one per thread
_compiler = None
_making_compiler = threading.Lock()


def compiler():
    """The process-wide `Compiler`, created on first compile (never at import)."""
    global _compiler
    if _compiler is None:
        with _making_compiler:
            if _compiler is None:
                _compiler = Compiler()
    return _compiler


def allocator():
    """The process-wide `metajit.toolkit.allocator.CachingAllocator` of host buffers."""
    return _allocator


class CompiledKernel:
    """A loaded C++ kernel: calls it with buffer addresses, packed parameters, thread count.

    Addresses and parameters are packed by `metajit.toolkit.codegen.HostArguments` into byte
    strings the C function reads as ``void* const*`` / ``const void*`` (cheaper than
    building ctypes arrays).
    ``address`` is the function's address, for `native_launcher`."""

    __slots__ = ("function", "address", "source", "pack_inputs", "pack_outputs", "pack_parameters")

    def __init__(self, function, source):
        self.function = function
        self.address = ctypes.cast(function, ctypes.c_void_p).value
        self.source = source
        arguments = codegen.HostArguments(source.kernel)
        self.pack_inputs, self.pack_outputs, self.pack_parameters = (
            arguments.inputs, arguments.outputs, arguments.parameters)

    def __call__(self, inputs, outputs, parameters):
        self.function(self.pack_inputs(*[b.address for b in inputs] or [0]),
                      self.pack_outputs(*[b.address for b in outputs]),
                      self.pack_parameters(*parameters or [0]), flags.num_threads)


@hookimpl
def metajit_backend_describe():
    claims = (("matmul", ("float32", "float64")),) + (
        tuple((role, ("float32",)) for role in (*onednn.ConvolutionProgram.ROLES, *onednn.PoolingProgram.ROLES,
                                                *onednn.ConcatProgram.ROLES))
        if onednn.library() is not None else ())
    library = "oneDNN" if onednn.library() is not None else "numpy BLAS (oneDNN not found)"
    return BackendDescription(name=NAME, device_kind="cpu", library_kernels=claims,
                              fusion_costs=FusionCosts(shared_reduction_loops=True),
                              summary=f"C++17 + OpenMP kernels compiled by the system compiler; {library}",
                              notice=disk_cache.fallback_notice(disk_cache.cache_root(NAME)))


@hookimpl
def metajit_backend_unavailable_reason():
    return missing_compiler_reason()


@hookimpl
def metajit_backend_codegen(kernels):
    kernel_compiler = compiler()
    sources = []
    for kernel in kernels:
        # a scatter through floor divisions (upsampling gradients) runs as a reduction: no atomics;
        # contiguous axes merge so a 7x7 map is one SIMD loop of 49
        rendered = analysis.as_reduction(kernel) or axis_merge.merge_contiguous_axes(kernel)
        text, symbol = codegen.render_named(CpuRenderer, rendered,
                                            kernel_compiler.toolchain.cache_key, SYMBOL_PREFIX)
        sources.append(KernelSource(kernel, "c++17-openmp", text, symbol))
    return sources


@hookimpl
def metajit_backend_compile(sources):
    kernel_compiler = compiler()
    functions = kernel_compiler.load_functions([(kernel_compiler.key_of(s.entry_name), s.text)
                                                for s in sources])
    return [CompiledKernel(function, source) for function, source in zip(functions, sources)]


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    program(inputs, outputs, parameters)


@hookimpl
def metajit_backend_launch_sequence(launches, plan_key, seconds):
    # a segment's key is (plan key, first launch): a later segment may read what it writes
    if seconds is not None:
        _run_timed(launches, plan_key, seconds)
        return
    signature = kept_batches.signature_of(native_launcher, launches, _workspace)
    kept = None
    try:
        kept = kept_batches.find(plan_key, signature, launches) if signature is not None else None
        if kept is not None:
            if onednn.library() is not None:
                onednn.set_threads(flags.num_threads)
            _run_kept(kept, launches)
            return
        modes, clamped = _sequence_modes(launches, plan_key)
        try:
            built = _run_sequence(launches, modes, clamped, keep=signature is not None)
        except BaseException as error:
            error.metajit_unkept = chaining.unkept_outputs(getattr(error, "metajit_completed", 0), modes)
            raise
        try:  # every launch has run: an interruption from here on leaves them finished
            if built is not None and kept_batches.workspace_unmoved(signature, _workspace):
                kept_batches.offer(plan_key, kept_batches.KeptBatch(signature, *built, modes, clamped))
        except BaseException as error:
            error.metajit_completed = len(launches)
            raise
    except BaseException as error:
        if kept is not None:
            error.metajit_unkept = chaining.unkept_outputs(getattr(error, "metajit_completed", 0), kept.modes)
        raise
    finally:
        unpin_kept_copies()  # the kept copies its native launches read may be reused now


def _run_sequence(launches, modes, clamped=(), keep=False):
    """Run ``launches``: consecutive compiled kernels, BLAS calls and oneDNN programs in one
    C call each (`native_launcher`, where the programs give ``native_calls``), the others
    one by one, convolutions in their ``modes`` (`chaining.chained_launches`), the max
    poolings of ``clamped`` told that their source holds no NaN and no -inf
    (`chaining.clamped_sources`). With ``keep``, returns ``(segments, answers)`` for a
    `kept_batches.KeptBatch`, or None where it cannot be kept: a launch ran as a call
    because of what a weight copy answered (the next run differs)."""
    done = 0  # launches known to have finished, reported with an exception (Ctrl-C)
    try:
        batch, ends = [], []  # consecutive native calls (one C call), and where each launch's calls end
        segments = [] if keep else None  # packed native batches and the indices of launches run as calls
        answers = []  # the weight copies' answers the batch relies on
        with recorded_answers() as recorded:
            for index, (program, inputs, outputs, parameters) in enumerate(launches):
                arguments = _chaining_arguments(index, modes, clamped)
                if native_launcher is not None:
                    calls = _native_calls(program, inputs, outputs, parameters, arguments)
                    if recorded:
                        placed = kept_batches.answers_by_place(recorded, index, inputs)
                        if placed is None or calls is None:  # (a call made to derive a copy: a launch next time)
                            segments = None
                        elif segments is not None:
                            answers += placed
                        recorded.clear()
                    if calls is not None:
                        batch += calls
                        ends.append(len(batch))
                        continue
                    done = _run_batch(batch, ends, done, segments)
                    batch, ends = [], []
                    if segments is not None:
                        segments.append(index)
                done = _call(launches[index], arguments, done)
        _run_batch(batch, ends, done, segments)
        return None if segments is None else (segments, answers)
    except BaseException as error:
        if not hasattr(error, "metajit_completed"):
            error.metajit_completed = done
        raise


def _run_timed(launches, plan_key, seconds):
    """`metajit_backend_launch_sequence` for a profiler: each launch as the sequence runs
    it (chained layouts, clamped poolings, native calls) but on its own, its wall time
    appended to ``seconds``; nothing is kept."""
    modes, clamped = _sequence_modes(launches, plan_key)
    done = 0
    try:
        for index, launch in enumerate(launches):
            program, inputs, outputs, parameters = launch
            arguments = _chaining_arguments(index, modes, clamped)
            started = time.perf_counter()
            calls = _native_calls(program, inputs, outputs, parameters, arguments)
            done = _run_native(calls, [len(calls)], done) if calls else _call(launch, arguments, done)
            seconds.append(time.perf_counter() - started)
    except BaseException as error:
        error.metajit_unkept = chaining.unkept_outputs(getattr(error, "metajit_completed", done), modes)
        raise
    finally:
        unpin_kept_copies()


def _sequence_modes(launches, plan_key):
    """The chaining modes and clamped max poolings of a whole realisation's ``launches``
    (none for a segment of one: its key is a tuple)."""
    if onednn.library() is None or isinstance(plan_key, tuple):
        return {}, ()
    return chaining.modes_for(launches, plan_key), chaining.clamped_for(launches, plan_key)


def _native_calls(program, inputs, outputs, parameters, arguments):
    """The native calls running one launch, or None where it runs as a Python call."""
    if native_launcher is None:
        return None
    if type(program) is CompiledKernel:
        return [(program.address, inputs, outputs, program.pack_parameters(*parameters or [0]))]
    native_calls = getattr(program, "native_calls", None)
    return native_calls(inputs, outputs, *arguments) if native_calls is not None else None


def _chaining_arguments(index, modes, clamped):
    """What launch ``index`` is told of its layouts: ``(chained inputs, output chained[,
    source clamped])``, or nothing where it has neither."""
    if index not in modes and index not in clamped:
        return ()
    chained_inputs, readers = modes.get(index, chaining.UNCHAINED)
    return (chained_inputs, bool(readers)) + ((True,) if index in clamped else ())


def _call(launch, arguments, done):
    """Run ``launch`` as a Python call; returns the launches done after it (an exception
    reports ``done``: a count the program's own launches carry is not the sequence's)."""
    program, inputs, outputs, parameters = launch
    try:
        program(inputs, outputs, parameters, *arguments)
    except BaseException as error:
        error.metajit_completed = done
        raise
    return done + 1


def _run_batch(batch, ends, done, segments):
    """`_run_native` on ``batch``, packed first and appended to ``segments`` unless that
    is None (a sequence that may be kept)."""
    if batch and segments is not None:
        packed, parameters = native_launcher.pack(batch)
        segments.append((packed, parameters, ends))
        batch = packed
    return _run_native(batch, ends, done)


def _run_kept(kept, launches):
    """Run the `kept_batches.KeptBatch` ``kept`` for ``launches``: its native batches, and
    the launches it runs as calls on their buffers now."""
    done = 0
    try:
        for segment in kept.segments:
            if type(segment) is int:
                done = _call(launches[segment], _chaining_arguments(segment, kept.modes, kept.clamped), done)
            else:
                packed, _, ends = segment  # (the parameters the packed calls point into stay kept)
                done = _run_native(packed, ends, done)
    except BaseException as error:
        if not hasattr(error, "metajit_completed"):
            error.metajit_completed = done
        raise


def _run_native(batch, ends, done):
    """Run ``batch`` (a list of native calls, or bytes they were packed into) in one C
    call; returns the launches done after it. An interruption reports the launches whose
    calls all finished."""
    if not batch:
        return done
    try:
        if type(batch) is list:
            native_launcher.run(batch, flags.num_threads)
        else:
            native_launcher.run_packed(batch, flags.num_threads)
    except BaseException as error:
        finished = getattr(error, "metajit_completed", 0)
        error.metajit_completed = done + sum(1 for end in ends if end <= finished)
        raise
    return done + len(ends)


@hookimpl
def metajit_backend_synchronize():
    return None


@hookimpl
def metajit_backend_allocate(nbytes):
    return _allocator.allocate(nbytes)


@hookimpl
def metajit_backend_free(buffer):
    _allocator.release(buffer)


@hookimpl
def metajit_backend_buffer_view(buffer, offset, nbytes):
    return HostBuffer.view(buffer, offset, nbytes)


@hookimpl
def metajit_backend_copy_from_host(buffer, array):
    buffer.array[:array.nbytes] = array.reshape(-1).view(np.uint8)


@hookimpl
def metajit_backend_copy_to_host(buffer, array):
    array.reshape(-1).view(np.uint8)[:] = buffer.array[:array.nbytes]


@hookimpl
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    destination.array[:nbytes] = source.array[:nbytes]


@hookimpl
def metajit_backend_lower_library_kernel(kernel):
    if kernel.name == "matmul":
        return MatmulProgram(kernel)
    if kernel.name in onednn.PoolingProgram.ROLES:
        return onednn.PoolingProgram(kernel, _workspace)
    if kernel.name in onednn.ConcatProgram.ROLES:
        return onednn.ConcatProgram(kernel, _workspace)
    if kernel.name not in onednn.ConvolutionProgram.ROLES:
        return None
    direct = lambda: onednn.ConvolutionProgram(kernel, _workspace)  # noqa: E731
    return grouped_conv.program_for(kernel) or winograd.program_for(kernel, _workspace, direct)


@hookimpl
def metajit_backend_compile_code(call):
    return code_op.compile_code(call)


@hookimpl
def metajit_backend_empty_cache():
    kept_batches.forget_all()  # (this thread's: their held weight copies go back to the allocator)
    _allocator.empty_cache()


@hookimpl
def metajit_backend_memory_info():
    return {"allocated_bytes": _allocator.allocated_bytes, "cached_bytes": _allocator.cached_bytes,
            "peak_bytes": _allocator.peak_bytes}
