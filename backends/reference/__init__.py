"""The ``reference`` backend: interprets kernels with numpy. Slow, obviously correct, the oracle.

Buffers are numpy ``uint8`` arrays; "source" is the kernel's printed form and a
"program" is the kernel itself, evaluated by `metajit.backends.reference.interpreter`.
"""
import numpy as np

from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription, KernelSource

from .interpreter import run_kernel

NAME = "reference"


@hookimpl
def metajit_backend_describe():
    return BackendDescription(name=NAME, device_kind="interpreter",
                              summary="numpy interpreter of fused kernels (the oracle)")


@hookimpl
def metajit_backend_unavailable_reason():
    return None


@hookimpl
def metajit_backend_codegen(kernels):
    return [KernelSource(kernel, "metajit-kernel", str(kernel), "kernel") for kernel in kernels]


@hookimpl
def metajit_backend_compile(sources):
    return [source.kernel for source in sources]


@hookimpl
def metajit_backend_launch(program, inputs, outputs, parameters):
    run_kernel(program, inputs, outputs, parameters)


@hookimpl
def metajit_backend_synchronize():
    return None


@hookimpl
def metajit_backend_allocate(nbytes):
    return np.empty(nbytes, dtype=np.uint8)


@hookimpl
def metajit_backend_free(buffer):
    return None


@hookimpl
def metajit_backend_copy_from_host(buffer, array):
    buffer[:array.nbytes] = array.reshape(-1).view(np.uint8)


@hookimpl
def metajit_backend_copy_to_host(buffer, array):
    array.reshape(-1).view(np.uint8)[:] = buffer[:array.nbytes]


@hookimpl
def metajit_backend_copy_device_to_device(destination, source, nbytes):
    destination[:nbytes] = source[:nbytes]
