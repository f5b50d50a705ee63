"""Host stand-ins for cuBLAS, cuDNN and CUDA graph recording, with those libraries'
argument rules and semantics, so that the cuda backend's library programs
(`cublas.MatmulProgram`, `cudnn.ConvolutionProgram`) and whole-plan replay
(`graphs.GraphReplay`) run without a GPU: a test-only device ``cuda_emulated_libraries``
is the emulated CUDA device (`emulated_backend`) plus these.

* `HostBlas.gemm` is column-major ``cublasGemmStridedBatchedEx``: it rejects what cuBLAS
  rejects (a leading dimension below the stored rows) and computes with numpy on the
  buffers' memory.
* `HostDnn` runs NCHW convolutions from a `cudnn.ConvProblem` (what the descriptors say)
  with torch, after cuDNN's shape checks.
* `HostGraphs.record` keeps the queued work without running it (as capture does); a
  replay runs exactly the recorded launches, on the recorded buffers.
"""
import ctypes
import types

import numpy as np
from numpy.lib.stride_tricks import as_strided

from metajit.backends.cpu.allocator import HostBuffer
from metajit.backends.cuda import cublas, cudnn, graphs
from metajit.errors import MetajitDeviceError
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription
from metajit.toolkit.allocator import CachingAllocator

from . import emulated_backend

NAME = "cuda_emulated_libraries"


def _column_major(address, dtype, rows, cols, ld, batch, stride):
    """A (batch, rows, cols) view of column-major matrices at ``address``."""
    itemsize = np.dtype(dtype).itemsize
    extent = (max(rows, 1) - 1) + (max(cols, 1) - 1) * ld + (max(batch, 1) - 1) * abs(stride) + 1
    memory = np.frombuffer((ctypes.c_char * (extent * itemsize)).from_address(address), dtype)
    return as_strided(memory, (batch, rows, cols), (stride * itemsize, itemsize, ld * itemsize))


class HostBlas:
    """``cublasGemmStridedBatchedEx`` on host memory (see the module docstring)."""

    def __init__(self):
        self.calls = 0

    def gemm(self, dtype_name, trans_first, trans_second, m, n, k, first, ld_first, stride_first,
             second, ld_second, stride_second, out, ldc, stride_c, batch):
        """Column-major ``out = op(first) @ op(second)`` per batch item."""
        stored_first = (k, m) if trans_first else (m, k)
        stored_second = (n, k) if trans_second else (k, n)
        for name, (rows, _), ld in (("lda", stored_first, ld_first), ("ldb", stored_second, ld_second),
                                    ("ldc", (m, n), ldc)):
            if ld < max(1, rows):
                raise MetajitDeviceError(f"cuBLAS GemmStridedBatchedEx failed: CUBLAS_STATUS_INVALID_VALUE "
                                         f"({name}={ld} < {rows} rows)")
        self.calls += 1
        a = _column_major(first, dtype_name, *stored_first, ld_first, batch, stride_first)
        b = _column_major(second, dtype_name, *stored_second, ld_second, batch, stride_second)
        c = _column_major(out, dtype_name, m, n, ldc, batch, stride_c)
        a = a.transpose(0, 2, 1) if trans_first else a
        b = b.transpose(0, 2, 1) if trans_second else b
        c[...] = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(dtype_name)


def _tensor(address, dtype, shape):
    import torch
    count = int(np.prod(shape))
    memory = np.frombuffer((ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address), dtype)
    return torch.from_numpy(memory.reshape(shape))


class HostDnn:
    """cuDNN's convolution calls on host memory, computed by torch (see the module docstring)."""

    def __init__(self):
        self.searched = []

    @staticmethod
    def _check(problem):
        n, c, h, w = problem.x
        k, group_channels, r, s = problem.w
        expected = (n, k) + tuple((size + 2 * p - d * (f - 1) - 1) // st + 1 for size, p, d, f, st in zip(
            (h, w), problem.padding, problem.dilation, (r, s), problem.stride))
        if c != group_channels * problem.groups or k % problem.groups or tuple(problem.y) != expected:
            raise MetajitDeviceError(f"cuDNN convolution failed: CUDNN_STATUS_BAD_PARAM ({problem})")

    def algorithm(self, problem, operands):
        """Every problem gets algorithm 1 with 4 KiB of workspace (so the workspace path runs)."""
        self._check(problem)
        self.searched.append(problem)
        return 1, 4096

    def convolve(self, problem, algorithm, workspace, workspace_bytes, operands):
        """The convolution, its data gradient or its filter gradient, by ``problem.kind``."""
        import torch
        self._check(problem)
        if workspace_bytes and not workspace:
            raise MetajitDeviceError("cuDNN convolution failed: no workspace given for the algorithm")
        x, w, y = (_tensor(operands[name], problem.dtype, getattr(problem, name)) for name in ("x", "w", "y"))
        geometry = dict(stride=problem.stride, padding=problem.padding, dilation=problem.dilation,
                        groups=problem.groups)
        if problem.kind == "forward":
            y.copy_(torch.nn.functional.conv2d(x, w, **geometry))
        elif problem.kind == "backward_data":
            x.copy_(torch.nn.grad.conv2d_input(problem.x, w, y, **geometry))
        else:
            w.copy_(torch.nn.grad.conv2d_weight(x, problem.w, y, **geometry))


class HostGraphs:
    """Graph recording for the emulated device: a graph is the recorded work, run at launch."""

    def __init__(self):
        self.launched = 0
        self.live = set()

    def record(self, queue_work):
        """The work ``queue_work`` would queue, kept without running it."""
        graph = _Graph(queue_work)
        self.live.add(graph)
        return graph

    def launch_graph(self, graph, name):
        """Run the recorded work."""
        assert graph in self.live, "a destroyed graph was launched"
        self.launched += 1
        graph.work()

    def destroy_graph(self, graph):
        """Forget a graph."""
        self.live.discard(graph)


class _Graph:
    def __init__(self, work):
        self.work = work


DELEGATED = ("metajit_backend_unavailable_reason", "metajit_backend_codegen", "metajit_backend_compile",
             "metajit_backend_launch", "metajit_backend_synchronize", "metajit_backend_copy_from_host",
             "metajit_backend_copy_to_host",
             "metajit_backend_copy_device_to_device")


def make_backend():
    """A plugin object: the emulated CUDA device's hooks, plus library lowering and graph
    replay through the cuda backend's own classes on the host stand-ins (kept as its
    ``blas``, ``dnn``, ``graphs`` and ``replay`` attributes for the tests to inspect)."""
    blas, dnn, recorder = HostBlas(), HostDnn(), HostGraphs()
    replay = graphs.GraphReplay(recorder, cublas.tf32_allowed, enabled=True)
    # host buffers handed out lowest address first, as the cuda device's
    allocator = CachingAllocator(HostBuffer, lambda buffer: None, lowest_address_first=True)
    workspace = cudnn.GrowingWorkspace(allocator.allocate)

    @hookimpl
    def metajit_backend_allocate(nbytes):
        return allocator.allocate(nbytes)

    @hookimpl
    def metajit_backend_free(buffer):
        allocator.release(buffer)

    @hookimpl
    def metajit_backend_describe():
        claims = (("matmul", ("float32", "float64")),) + tuple((role, ("float32", "float64")) for role in cudnn.ROLES)
        return BackendDescription(name=NAME, device_kind="emulated-cuda", library_kernels=claims,
                                  summary="the emulated CUDA device with host cuBLAS/cuDNN stand-ins (tests)")

    @hookimpl
    def metajit_backend_lower_library_kernel(kernel):
        if kernel.name == "matmul":
            return cublas.MatmulProgram(kernel, blas)
        return cudnn.ConvolutionProgram(kernel, dnn, workspace) if kernel.name in cudnn.ROLES else None

    @hookimpl
    def metajit_backend_launch_sequence(launches, plan_key):
        replay.run(launches, plan_key)

    return types.SimpleNamespace(
        blas=blas, dnn=dnn, graphs=recorder, replay=replay, metajit_backend_describe=metajit_backend_describe,
        metajit_backend_lower_library_kernel=metajit_backend_lower_library_kernel,
        metajit_backend_launch_sequence=metajit_backend_launch_sequence,
        metajit_backend_allocate=metajit_backend_allocate, metajit_backend_free=metajit_backend_free,
        **{name: getattr(emulated_backend, name) for name in DELEGATED})
