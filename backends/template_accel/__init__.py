"""The ``template_accel`` backend: BANG-style kernels for a scratchpad accelerator, run
here through an emulation layer. It is the worked example a vendor copies.

Parts: `renderer` (Kernel -> ``__mlu_entry__`` code: tiles, DMA, NRAM, intrinsics),
`toolchain` (the ``cncc``-equivalent: compile and cache), `runtime` (the
``cnrt``-equivalent: device memory, copies, launch), `library` (the ``cnnl``-equivalent:
matrix products), ``emulation/`` (the header and driver
that make it run on a CPU with g++ and OpenMP). Swap points: docs/template_accel.md.
"""
import threading

from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, KernelSource
from metajit.toolkit import analysis, codegen, host_compiler
from metajit.toolkit.allocator import CachingAllocator

from . import library, runtime
from .renderer import NRAM_CAPACITY, AccelRenderer
from .toolchain import SYMBOL_PREFIX, Toolchain

NAME = "template_accel"
_lock = threading.Lock()
_state = {}


def _device():
    """The process-wide toolchain, driver and GDRAM allocator, created on first use."""
    if "allocator" not in _state:
        with _lock:
            if "allocator" not in _state:
                toolchain = Toolchain()
                driver = runtime.Driver(toolchain.driver_path())
                _state.update(toolchain=toolchain, driver=driver,
                              allocator=CachingAllocator(driver.malloc, driver.free))
    return _state


@hookimpl
def metajit_backend_describe():
    return BackendDescription(
        name=NAME, device_kind="accelerator", library_kernels=library.CLAIMS,
        summary=(f"BANG-style kernels ({runtime.task_dim()} tasks, {NRAM_CAPACITY // 1024} KiB NRAM each) "
                 "on the host through the emulation layer (g++ + OpenMP)"))


@hookimpl
def metajit_backend_unavailable_reason():
    return host_compiler.missing_compiler_reason()


@hookimpl
def metajit_backend_codegen(kernels):
    toolchain = _device()["toolchain"]
    sources = []
    for kernel in kernels:
        # a scatter through floor divisions (upsampling gradients) runs as a reduction: no atomics
        text, symbol = codegen.render_named(AccelRenderer, analysis.as_reduction(kernel) or kernel,
                                            toolchain.cache_key, SYMBOL_PREFIX)
        sources.append(KernelSource(kernel, "bang-c", text, symbol))
    return sources


@hookimpl
def metajit_backend_compile(sources):
    stubs = _device()["toolchain"].load([(source.entry_name, source.text) for source in sources])
    return [runtime.Program(stub, source) for stub, source in zip(stubs, sources)]


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    program(inputs, outputs, parameters)


@hookimpl
def metajit_backend_synchronize():
    return None


@hookimpl
def metajit_backend_allocate(nbytes):
    return _device()["allocator"].allocate(nbytes)


@hookimpl
def metajit_backend_free(buffer):
    _device()["allocator"].release(buffer)


@hookimpl
def metajit_backend_copy_from_host(buffer, array):
    _device()["driver"].copy(buffer, array.ctypes.data, array.nbytes, runtime.HOST_TO_DEVICE)


@hookimpl
def metajit_backend_copy_to_host(buffer, array):
    _device()["driver"].copy(array.ctypes.data, buffer, array.nbytes, runtime.DEVICE_TO_HOST)


@hookimpl
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    _device()["driver"].copy(destination, source, nbytes, runtime.DEVICE_TO_DEVICE)


@hookimpl
def metajit_backend_lower_library_kernel(kernel):
    return library.MatmulProgram(_device()["driver"], kernel) if kernel.name == "matmul" else None
