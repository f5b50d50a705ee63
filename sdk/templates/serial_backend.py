"""A complete backend built only from metajit's backend toolkit: serial C loops, the host
compiler, malloc'ed memory. It passes ``conformance run --tier standard``: a new backend
needs nothing from metajit's own backends.

This module is the ``serial`` template of ``python -m metajit.sdk new-backend`` (which
sets `NAME`); in metajit it is the backend ``minimal`` (try it with
``python -m metajit.conformance run --backend minimal --plugin metajit.sdk.templates.serial_backend``).
`SerialRenderer.render` is the schedule to replace: element-wise stores share one loop
nest (any loop of it may run in parallel: each position writes its own elements), each
reduction or scatter has its own nest, accumulating into an output filled with the
reduction's identity (parallelise those only over output positions, or with atomics).
"""
import ctypes

from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, KernelSource
from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler
from metajit.toolkit.allocator import CachingAllocator

NAME = "minimal"
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-fwrapv", "-ffp-contract=off", "-fno-math-errno")

_libc = ctypes.CDLL(None)
_libc.malloc.restype, _libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
_libc.free.restype, _libc.free.argtypes = None, (ctypes.c_void_p,)


def _malloc(nbytes):
    address = _libc.malloc(nbytes)
    if not address:
        raise MemoryError(f"malloc({nbytes}) failed")
    return address


_allocator = CachingAllocator(_malloc, _libc.free)
_state = {}


class SerialRenderer(codegen.CStyleRenderer):
    """One plain loop nest per store; reductions and scatters combine into the output."""

    NAME = NAME

    def render(self):
        lines = self.signature() + self.pointer_declarations()
        stores = self.kernel.stores
        if all(codegen.is_plain_store(store, self.domain) for store in stores):  # one nest, shared values
            return "\n".join(lines + ["  " + line for line in self.nest(
                self.loop_axes(), self.fixed_axes() + self.body(list(stores)))] + ["}"])
        for store in stores:
            inner = self.fixed_axes() + self.body(store, self.accumulate_statement(store))
            lines += ["  " + line for line in self.fill_identity(store) + self.nest(self.loop_axes(), inner)]
        return "\n".join(lines + ["}"])


class Program:
    """A loaded kernel, called with buffer addresses and 8-byte parameter slots."""

    def __init__(self, function, kernel):
        self.function = function
        self.arguments = codegen.HostArguments(kernel)

    def __call__(self, inputs, outputs, parameters):
        self.function(*self.arguments.pack(inputs, outputs, parameters), 1)


def _toolchain():
    if "toolchain" not in _state:
        _state["toolchain"] = host_compiler.HostToolchain(FLAGS, codegen.prelude())
        _state["cache"] = disk_cache.DiskCache(disk_cache.cache_root(NAME))
    return _state["toolchain"], _state["cache"]


def _compile_unit(entries):
    toolchain, cache = _toolchain()
    return toolchain.build_unit(cache, entries, codegen.prelude())


@hookimpl
def metajit_backend_describe():
    return BackendDescription(name=NAME, device_kind="cpu", summary="serial C from the toolkit only")


@hookimpl
def metajit_backend_unavailable_reason():
    return host_compiler.missing_compiler_reason()


def render(kernels, renderer=SerialRenderer):
    """`KernelSource` s of ``kernels`` from ``renderer``, entry points named by cache key."""
    toolchain, _ = _toolchain()
    sources = []
    for kernel in kernels:
        text, symbol = codegen.render_named(renderer, kernel, toolchain.cache_key, f"mj_{NAME}_")
        sources.append(KernelSource(kernel, "c++17", text, symbol))
    return sources


@hookimpl
def metajit_backend_codegen(kernels):
    return render(kernels)


@hookimpl
def metajit_backend_compile(sources):
    _, cache = _toolchain()

    def load(path, symbol):
        function = host_compiler.entry_point(host_compiler.load_library(path), symbol, path)
        function.argtypes = (ctypes.c_void_p,) * 3 + (ctypes.c_longlong,)
        return function
    functions = batch_compile.build_and_load(cache, [(s.entry_name, s.text) for s in sources], _compile_unit,
                                             load, what=f"{NAME} kernels")
    return [Program(function, source.kernel) for function, source in zip(functions, sources)]


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    program(inputs, outputs, parameters)


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
def metajit_backend_copy_from_host(buffer, array):
    ctypes.memmove(buffer, array.ctypes.data, array.nbytes)


@hookimpl
def metajit_backend_copy_to_host(buffer, array):
    ctypes.memmove(array.ctypes.data, buffer, array.nbytes)


@hookimpl
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    ctypes.memmove(destination, source, nbytes)
