"""The ``cuda`` backend: fused kernels as CUDA C++ compiled by NVRTC, run through the
driver API on one stream per device (``jt.set_device("cuda")``, ``METAJIT_DEVICE=cuda``,
or Jittor's ``jt.flags.use_cuda = 1``).

Parts: `renderer` (Kernel -> ``__global__`` entry points and their launch plan),
`compiler` (NVRTC in batches, disk cache), `runtime` (context, stream, modules, caching
allocator, pinned staging, graph capture), `nvrtc` (the NVRTC wrapper), `code_op`
(``jt.code``'s ``cuda_src``), `cublas` (matrix products), `cudnn` (convolutions and
their gradients), `graphs` (whole-plan replay as CUDA Graphs), `nvidia_libraries`
(finding cuBLAS/cuDNN/NCCL). Without a driver or GPU the device is listed as unavailable
with the reason, and rendering and NVRTC compilation still work (the CPU-side tests use
them).
"""
import functools
import math
import os

from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, FusionCosts, KernelSource
from metajit.toolkit import analysis, codegen

from . import code_op, compiler, cublas, cudnn, graphs, nvidia_libraries, nvrtc, renderer, runtime

NAME = "cuda"
SYMBOL_PREFIX = "mj_cuda_"
# a GPU recomputes cheap producers in registers faster than it stores and reloads them
FUSION_COSTS = FusionCosts(duplicate_max_kernels=8, chain_max_ops=6)
BLOCKS_PER_MULTIPROCESSOR = 32  # grid-stride kernels: enough resident blocks to hide latency
_plans = {}  # entry symbol -> launch plan (`renderer.Launch` tuple)


def target_architecture():
    """The architecture kernels are compiled for: the device's, or ``METAJIT_CUDA_ARCH``
    (default ``sm_90``) where no device is present (rendering and compiling only)."""
    if runtime.missing_device_reason() is None:
        return runtime.device().architecture
    return os.environ.get("METAJIT_CUDA_ARCH", "sm_90")


@functools.lru_cache(maxsize=None)
def kernel_compiler(architecture=None):
    """The `compiler.KernelCompiler` for ``architecture`` (default: `target_architecture`)."""
    return compiler.KernelCompiler(architecture or target_architecture())


def render_sources(kernels, kernel_compiler_for_target):
    """`KernelSource` s of ``kernels``, named by ``kernel_compiler_for_target``'s cache keys;
    records each one's launch plan."""
    sources = []
    for kernel in kernels:
        # a scatter through floor divisions (upsampling gradients) runs as a reduction: no atomics
        template, plan = renderer.render(analysis.as_reduction(kernel) or kernel, codegen.NAME_PLACEHOLDER)
        text, symbol = codegen.name_source(template, kernel_compiler_for_target.cache_key, SYMBOL_PREFIX)
        _plans[symbol] = tuple(renderer.Launch(launch.entry.replace(codegen.NAME_PLACEHOLDER, symbol),
                                               launch.work, launch.threads, launch.blocks) for launch in plan)
        sources.append(KernelSource(kernel, "cuda", text, symbol))
    return sources


class CudaProgram:
    """A compiled kernel: its entry points' ``CUfunction`` s and launch plan."""

    graph_safe = True

    def __init__(self, device, functions, plan, kernel):
        self.device = device
        resident_blocks = device.multiprocessors * BLOCKS_PER_MULTIPROCESSOR
        self.steps = [(int(function), max(launch.blocks or min(math.ceil(launch.work / launch.threads),
                                                                resident_blocks), 1), launch.threads, launch.entry)
                      for function, launch in zip(functions, plan)]
        self.arguments = runtime.KernelArguments(runtime.argument_types(kernel))

    def __call__(self, inputs, outputs, parameters):
        values = [b.address for b in inputs] + [b.address for b in outputs] + list(parameters)
        for function, blocks, threads, name in self.steps:
            self.device.launch(function, blocks, threads, self.arguments, values, name)


def library_claims():
    """The library ops this machine's cuBLAS and cuDNN can run, as `BackendDescription` claims;
    none without a usable GPU (the libraries, hundreds of MiB, are then never loaded)."""
    claims = ()
    if runtime.missing_device_reason() is not None:
        return claims
    if nvidia_libraries.missing_reason("cublas") is None:
        claims += (("matmul", cublas.DTYPES),)
    if nvidia_libraries.missing_reason("cudnn") is None:
        claims += tuple((role, cudnn.DTYPES) for role in cudnn.ROLES)
    return claims


@hookimpl
def metajit_backend_describe():
    claims = library_claims()
    libraries = " + ".join(name for name, present in (("cuBLAS", any(c[0] == "matmul" for c in claims)),
                                                       ("cuDNN", any(c[0] == "conv2d" for c in claims))) if present)
    return BackendDescription(name=NAME, device_kind="cuda", library_kernels=claims, fusion_costs=FUSION_COSTS,
                              summary="CUDA C++ kernels compiled by NVRTC, run through the driver API"
                                      + (f"; {libraries}" if libraries else ""))


@functools.lru_cache(maxsize=None)
def _libraries():
    """The device's cuBLAS handle, cuDNN handle and shared library workspace."""
    device = runtime.device()
    blas = cublas.Cublas(device) if nvidia_libraries.missing_reason("cublas") is None else None
    dnn = cudnn.Cudnn(device, cudnn.algorithm_file()) if nvidia_libraries.missing_reason("cudnn") is None else None
    return blas, dnn, cudnn.GrowingWorkspace(device.allocate)


@functools.lru_cache(maxsize=None)
def graph_replay():
    """The device's `graphs.GraphReplay` (independent of the libraries: a failing library
    handle must not stop plain kernels)."""
    return graphs.GraphReplay(runtime.device(), cublas.tf32_allowed)


@hookimpl
def metajit_backend_lower_library_kernel(kernel):
    blas, dnn, workspace = _libraries()
    if kernel.name == "matmul" and blas is not None:
        return cublas.MatmulProgram(kernel, blas)
    if kernel.name in cudnn.ROLES and dnn is not None:
        return cudnn.ConvolutionProgram(kernel, dnn, workspace)
    return None


@hookimpl
def metajit_backend_launch_sequence(launches, plan_key):
    graph_replay().run(launches, plan_key)


@hookimpl
def metajit_backend_unavailable_reason():
    return runtime.missing_device_reason() or nvrtc.missing_nvrtc_reason()


@hookimpl
def metajit_backend_codegen(kernels):
    return render_sources(kernels, kernel_compiler())


@hookimpl
def metajit_backend_compile(sources):
    device = runtime.device()
    images = kernel_compiler().images_of([(s.entry_name[len(SYMBOL_PREFIX):], s.text) for s in sources])
    programs = []
    for source, image in zip(sources, images):
        plan = _plans[source.entry_name]
        functions = device.functions(image, [launch.entry for launch in plan])
        programs.append(CudaProgram(device, functions, plan, source.kernel))
    return programs


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    program(inputs, outputs, parameters)


@hookimpl
def metajit_backend_synchronize():
    runtime.device().synchronize()


@hookimpl
def metajit_backend_allocate(nbytes):
    return runtime.device().allocate(nbytes)


@hookimpl
def metajit_backend_free(buffer):
    runtime.device().free(buffer)


@hookimpl
def metajit_backend_copy_from_host(buffer, array):
    runtime.device().copy_from_host(buffer, array)


@hookimpl
def metajit_backend_copy_to_host(buffer, array):
    runtime.device().copy_to_host(buffer, array)


@hookimpl
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    runtime.device().copy_device_to_device(destination, source, nbytes)


@hookimpl
def metajit_backend_compile_code(call):
    device = runtime.device()
    compiled = code_op.compile_code(call, device.architecture)
    return None if compiled is None else code_op.CudaCodeProgram(compiled, int(device.stream))


@hookimpl
def metajit_backend_empty_cache():
    runtime.device().allocator.empty_cache()


@hookimpl
def metajit_backend_memory_info():
    return runtime.device().memory_info()


@hookimpl
def metajit_backend_collectives(rank, size, broadcast):
    from . import nccl  # collectives under mpirun only: NCCL is loaded when the first one runs
    return nccl.communicator(rank, size, broadcast)
