"""`AccelPlugin`: the hooks of a BANG-style backend, as one object a plugin package
instantiates with its own parts (how ``template_accel`` and every backend scaffolded from
it by ``python -m metajit.sdk new-backend`` are registered)::

    plugin = AccelPlugin("mydevice", MyRenderer, MyToolchain, MyDriver)

``renderer`` is an `AccelRenderer` subclass (the schedule and the target's tables),
``toolchain`` a `Toolchain`-like class (compile, cache, load stubs, build the driver),
``driver`` a `runtime.Driver`-like class (device memory, copies, the library).
"""
import threading

from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, KernelSource
from metajit.toolkit import analysis, codegen, host_compiler
from metajit.toolkit.allocator import CachingAllocator

from . import library, runtime


class AccelPlugin:
    """The pluggy hooks of one BANG-style backend named ``name``."""

    def __init__(self, name, renderer, toolchain, driver, summary=None):
        self.name, self.renderer, self.toolchain_class, self.driver_class = name, renderer, toolchain, driver
        self.summary = summary or (f"BANG-style kernels ({{tasks}} tasks, {renderer.NRAM_CAPACITY // 1024} KiB "
                                   "NRAM each) on the host through the emulation layer (g++ + OpenMP)")
        self.lock = threading.Lock()
        self.state = {}

    def device(self):
        """The process-wide toolchain, driver and GDRAM allocator, created on first use."""
        if "allocator" not in self.state:
            with self.lock:
                if "allocator" not in self.state:
                    toolchain = self.toolchain_class(self.name, self.renderer)
                    driver = self.driver_class(toolchain.driver_path())
                    self.state.update(toolchain=toolchain, driver=driver,
                                      allocator=CachingAllocator(driver.malloc, driver.free))
        return self.state

    @hookimpl
    def metajit_backend_describe(self):
        return BackendDescription(name=self.name, device_kind="accelerator", library_kernels=library.CLAIMS,
                                  summary=self.summary.format(tasks=runtime.task_dim()))

    @hookimpl
    def metajit_backend_unavailable_reason(self):
        return host_compiler.missing_compiler_reason()

    @hookimpl
    def metajit_backend_codegen(self, kernels):
        toolchain = self.device()["toolchain"]
        sources = []
        for kernel in kernels:
            # a scatter through floor divisions (upsampling gradients) runs as a reduction: no atomics
            text, symbol = codegen.render_named(self.renderer, analysis.as_reduction(kernel) or kernel,
                                                toolchain.cache_key, toolchain.symbol_prefix)
            sources.append(KernelSource(kernel, "bang-c", text, symbol))
        return sources

    @hookimpl
    def metajit_backend_compile(self, sources):
        stubs = self.device()["toolchain"].load([(source.entry_name, source.text) for source in sources])
        return [runtime.Program(stub, source) for stub, source in zip(stubs, sources)]

    @hookimpl
    def metajit_backend_launch(self, program, inputs, outputs, parameters):
        program(inputs, outputs, parameters)

    @hookimpl
    def metajit_backend_synchronize(self):
        return None  # the emulated driver runs each launch before returning

    @hookimpl
    def metajit_backend_allocate(self, nbytes):
        return self.device()["allocator"].allocate(nbytes)

    @hookimpl
    def metajit_backend_free(self, buffer):
        self.device()["allocator"].release(buffer)

    @hookimpl
    def metajit_backend_buffer_view(self, buffer, offset, nbytes):
        return buffer + offset  # GDRAM buffers are device addresses

    @hookimpl
    def metajit_backend_empty_cache(self):
        self.device()["allocator"].empty_cache()

    @hookimpl
    def metajit_backend_copy_from_host(self, buffer, array):
        self.device()["driver"].copy(buffer, array.ctypes.data, array.nbytes, runtime.HOST_TO_DEVICE)

    @hookimpl
    def metajit_backend_copy_to_host(self, buffer, array):
        self.device()["driver"].copy(array.ctypes.data, buffer, array.nbytes, runtime.DEVICE_TO_HOST)

    @hookimpl
    def metajit_backend_copy_device_to_device(self, destination, source, nbytes):
        self.device()["driver"].copy(destination, source, nbytes, runtime.DEVICE_TO_DEVICE)

    @hookimpl
    def metajit_backend_lower_library_kernel(self, kernel):
        return library.MatmulProgram(self.device()["driver"], kernel) if kernel.name == "matmul" else None
