"""A test-only backend that runs the `CudaRenderer`'s kernels on the host: the same
sources and launch plans, compiled by g++ against ``emulation/cuda_emulation.h`` (blocks
run one after another on a team of host threads with real barriers, shuffles and
atomics), so the conformance suite checks the CUDA schedules without a GPU.

Register it with ``jt.plugins.register_backend(emulated_backend, NAME)``.
"""
import ctypes
import math
import os

from metajit.backends import cuda
from metajit.backends import cpu as host
from metajit.hookspec import hookimpl
from metajit.ir import dtypes
from metajit.plugins import BackendDescription
from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler

NAME = "cuda_emulated"
RESIDENT_BLOCKS = 6
THREADS = 64  # per block: two warps keep the shared-memory stage of block reductions exercised
HEADER = os.path.join(os.path.dirname(__file__), "emulation", "cuda_emulation.h")
_state = {}


def _toolchain():
    if "toolchain" not in _state:
        _state["toolchain"] = host_compiler.HostToolchain(
            ("-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-fwrapv", "-w", "-include", HEADER),
            open(HEADER).read())
        _state["cache"] = disk_cache.DiskCache(disk_cache.cache_root(NAME))
    return _state["toolchain"], _state["cache"]


class _Keys:
    """Cache keys for `cuda.render_sources` (names the entry points)."""

    def cache_key(self, text):
        return _toolchain()[0].cache_key(text)


def _caller(kernel, entry):
    """A C function running ``entry`` from an array of argument addresses."""
    arguments = []
    for slot, (dtype, _) in enumerate(kernel.inputs + kernel.outputs):
        type_name = codegen.TYPE_NAMES[str(dtype)]
        arguments.append(f"({'const ' if slot < len(kernel.inputs) else ''}{type_name}*)arguments[{slot}]")
    first = len(kernel.inputs) + len(kernel.outputs)
    for slot, dtype in enumerate(kernel.parameters):
        kind = "double" if dtypes.is_float(dtype) else "long long"
        arguments.append(f"*(const {kind}*)arguments[{first + slot}]")
    return (f'extern "C" void call_{entry}(void* const* arguments, unsigned blocks, unsigned threads) {{\n'
            f"  mj_emu_launch([&] {{ {entry}({', '.join(arguments)}); }}, blocks, threads);\n}}")


class EmulatedProgram:
    """One kernel's entry points as host functions, launched per its plan."""

    graph_safe = True  # as the cuda backend's programs: a launch only queues the kernel

    def __init__(self, library, source):
        self.steps = []
        for launch in cuda._plans[source.entry_name]:
            function = getattr(library, "call_" + launch.entry)
            function.argtypes = (ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
            self.steps.append((function, launch))
        kernel = source.kernel
        self.floats = [dtypes.is_float(d) for d in kernel.parameters]

    def __call__(self, inputs, outputs, parameters):
        values = [ctypes.c_double(p) if is_float else ctypes.c_longlong(int(p))
                  for p, is_float in zip(parameters, self.floats)]
        addresses = [b.address for b in inputs] + [b.address for b in outputs] + [ctypes.addressof(v) for v in values]
        packed = (ctypes.c_void_p * max(len(addresses), 1))(*addresses)
        for function, launch in self.steps:
            blocks = launch.blocks or min(math.ceil(launch.work / THREADS), RESIDENT_BLOCKS)
            function(packed, max(blocks, 1), THREADS)


@hookimpl
def metajit_backend_describe():
    return BackendDescription(name=NAME, device_kind="emulated-cuda",
                              summary="the CUDA renderer's kernels on host threads (tests)")


@hookimpl
def metajit_backend_unavailable_reason():
    return host_compiler.missing_compiler_reason()


@hookimpl
def metajit_backend_codegen(kernels):
    return cuda.render_sources(kernels, _Keys())


@hookimpl
def metajit_backend_compile(sources):
    toolchain, cache = _toolchain()
    entries = []
    for source in sources:
        callers = "\n".join(_caller(source.kernel, launch.entry) for launch in cuda._plans[source.entry_name])
        entries.append((source.entry_name[len(cuda.SYMBOL_PREFIX):], source.text + "\n" + callers))
    header = codegen.prelude() + "\n" + cuda.renderer.helpers()
    paths = batch_compile.build(cache, entries, lambda unit: toolchain.build_unit(cache, unit, header),
                                what="emulated CUDA kernels")
    return [EmulatedProgram(host_compiler.load_library(paths[key]), source)
            for (key, _), source in zip(entries, sources)]


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    program(inputs, outputs, parameters)


# host memory, as the cpu backend keeps it (the same hook functions)
metajit_backend_synchronize = host.metajit_backend_synchronize
metajit_backend_allocate = host.metajit_backend_allocate
metajit_backend_free = host.metajit_backend_free
metajit_backend_copy_from_host = host.metajit_backend_copy_from_host
metajit_backend_copy_to_host = host.metajit_backend_copy_to_host
metajit_backend_copy_device_to_device = host.metajit_backend_copy_device_to_device
