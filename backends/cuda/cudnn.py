"""The convolution library ops on cuDNN: ``conv2d``, ``conv2d_backward_data`` and
``conv2d_backward_weights`` (strides, padding, dilation, groups and depthwise) on the
dense NCHW / OIHW buffers metajit keeps, queued on the device's stream.

``conv2d_bias`` is not claimed: a bias (a folded BatchNorm's too) is added by the fused
kernel that applies the activation after the convolution, in the same pass over the
output. On an H200, cuDNN's separate ``cudnnAddTensor`` pass took 12-23% of the GPU time of
squeezenet1_1, mobilenet_v2 and resnet50 forwards at batch 64.

Algorithms: for each problem (role, dtype, shapes, geometry, math mode, device, cuDNN
version) cuDNN's ``Find...AlgorithmEx`` times the candidates once; the fastest is kept in
memory and in ``cudnn_algorithms.json`` in the cuda kernel cache (written atomically; an
unreadable file is ignored and rewritten), so later processes skip the search.

Precision: float32 convolutions are strict float32 (``CUDNN_FMA_MATH``) unless
``jt.flags.allow_tf32`` (or ``use_tensorcore``) is set; float16 uses tensor cores.

`ConvolutionProgram` talks to a `Dnn` object (`Cudnn` on a GPU; the tests give it a host
implementation of the same calls to check the mapping without one).
"""
import ctypes
import dataclasses
import json
import os
import sys
import threading

from metajit.errors import MetajitDeviceError
from metajit.toolkit import disk_cache

from . import cublas, nvidia_libraries

DATA_TYPES = {"float32": 0, "float64": 1, "float16": 2}  # cudnnDataType_t
TENSOR_NCHW, CROSS_CORRELATION = 0, 1
DEFAULT_MATH, TENSOR_OP_MATH, FMA_MATH = 0, 1, 3
SEARCH_WORKSPACE_BYTES = 256 << 20  # the most workspace an algorithm may use
ALGORITHM_FILE = "cudnn_algorithms.json"
ROLES = {"conv2d": ("x", "w"), "conv2d_backward_data": ("dy", "w"), "conv2d_backward_weights": ("x", "dy")}
OUTPUT_OF = {"conv2d": "y", "conv2d_backward_data": "dx", "conv2d_backward_weights": "dw"}
DTYPES = tuple(DATA_TYPES)


@dataclasses.dataclass(frozen=True)
class ConvProblem:
    """One convolution as cuDNN sees it: ``kind`` (``"forward"``, ``"backward_data"``,
    ``"backward_filter"``), dtype, the input ``x`` (N, C, H, W), filter ``w`` (K, C/groups,
    R, S) and output ``y`` shapes, and the geometry; ``math`` the cudnnMathType_t."""

    kind: str
    dtype: str
    x: tuple
    w: tuple
    y: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    math: int

    def key(self, device_name, version):
        """This problem's entry in the algorithm file."""
        return "|".join(str(v) for v in (device_name, version) + dataclasses.astuple(self))


def math_type(dtype_name):
    """cuDNN's math type for convolutions of ``dtype_name`` under the current flags."""
    if dtype_name == "float16":
        return TENSOR_OP_MATH
    if dtype_name == "float32" and cublas.tf32_allowed():
        return DEFAULT_MATH
    return FMA_MATH


def problem_of(call):
    """The `ConvProblem` of a convolution `metajit.ir.kernel.LibraryCall`."""
    stride, padding, dilation, groups = call.attrs[:4]
    shapes = dict(zip(ROLES[call.name], (shape for _, shape in call.inputs)))
    shapes[OUTPUT_OF[call.name]] = call.outputs[0][1]
    kind = {"conv2d_backward_data": "backward_data", "conv2d_backward_weights": "backward_filter"}.get(
        call.name, "forward")
    dtype_name = str(call.outputs[0][0])
    return ConvProblem(kind, dtype_name, tuple(shapes.get("x") or shapes["dx"]), tuple(shapes.get("w") or shapes["dw"]),
                       tuple(shapes.get("y") or shapes["dy"]), tuple(stride), tuple(padding), tuple(dilation),
                       int(groups), math_type(dtype_name))


class AlgorithmFile:
    """Chosen algorithms by problem key, kept in a JSON file shared by processes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.entries = self._read()

    def _read(self):
        try:
            with open(self.path) as handle:
                entries = json.load(handle)
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key):
        """``(algorithm, workspace bytes)`` or None."""
        found = self.entries.get(key)
        return tuple(found) if isinstance(found, list) and len(found) == 2 else None

    def put(self, key, algorithm, workspace_bytes):
        """Record a choice (merged with what other processes wrote meanwhile)."""
        with self.lock:
            merged = self._read()
            merged.update(self.entries)
            merged[key] = [int(algorithm), int(workspace_bytes)]
            self.entries = merged
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                disk_cache.atomic_write(self.path, json.dumps(merged, indent=0, sort_keys=True))
            except OSError:
                pass  # a read-only cache: the choice is kept for this process only


class _AlgoPerf(ctypes.Structure):
    """``cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t`` (one layout for the three)."""
    _fields_ = [("algo", ctypes.c_int), ("status", ctypes.c_int), ("time", ctypes.c_float),
                ("memory", ctypes.c_size_t), ("determinism", ctypes.c_int), ("mathType", ctypes.c_int),
                ("reserved", ctypes.c_int * 3)]


class Cudnn:
    """A cuDNN handle on ``device``'s stream: descriptors, algorithm search, the calls."""

    def __init__(self, device, algorithms):
        self.library = library = nvidia_libraries.load("cudnn")
        self.device = device
        self.algorithms = algorithms
        self.error_string = nvidia_libraries.function(library, "cudnnGetErrorString", ctypes.c_char_p, ctypes.c_int)
        self.version = nvidia_libraries.function(library, "cudnnGetVersion", ctypes.c_size_t)()
        device.make_current()
        self.handle = ctypes.c_void_p()
        self._check(library.cudnnCreate(ctypes.byref(self.handle)), "cudnnCreate")
        self._check(library.cudnnSetStream(self.handle, ctypes.c_void_p(int(device.stream))), "cudnnSetStream")
        self.descriptors = {}
        self.lock = threading.Lock()

    def _check(self, status, what):
        if status != 0:
            raise MetajitDeviceError(f"cuDNN {what} failed: {self.error_string(status).decode()}")

    def _descriptors(self, problem):
        """``(x, w, y, convolution)`` descriptors of ``problem`` (made once)."""
        found = self.descriptors.get(problem)
        if found is not None:
            return found
        lib, check, data_type = self.library, self._check, DATA_TYPES[problem.dtype]
        x, w, y, conv = (ctypes.c_void_p() for _ in range(4))
        check(lib.cudnnCreateTensorDescriptor(ctypes.byref(x)), "cudnnCreateTensorDescriptor")
        check(lib.cudnnCreateTensorDescriptor(ctypes.byref(y)), "cudnnCreateTensorDescriptor")
        check(lib.cudnnCreateFilterDescriptor(ctypes.byref(w)), "cudnnCreateFilterDescriptor")
        check(lib.cudnnCreateConvolutionDescriptor(ctypes.byref(conv)), "cudnnCreateConvolutionDescriptor")
        check(lib.cudnnSetTensor4dDescriptor(x, TENSOR_NCHW, data_type, *problem.x), f"input {problem.x}")
        check(lib.cudnnSetTensor4dDescriptor(y, TENSOR_NCHW, data_type, *problem.y), f"output {problem.y}")
        check(lib.cudnnSetFilter4dDescriptor(w, data_type, TENSOR_NCHW, *problem.w), f"filter {problem.w}")
        accumulate = DATA_TYPES["float64" if problem.dtype == "float64" else "float32"]
        check(lib.cudnnSetConvolution2dDescriptor(conv, *problem.padding, *problem.stride, *problem.dilation,
                                                  CROSS_CORRELATION, accumulate), "convolution geometry")
        check(lib.cudnnSetConvolutionGroupCount(conv, problem.groups), f"groups={problem.groups}")
        check(lib.cudnnSetConvolutionMathType(conv, problem.math), "math type")
        found = self.descriptors[problem] = (x, w, y, conv)
        return found

    def algorithm(self, problem, operands):
        """``(algorithm, workspace bytes)`` for ``problem``: from the algorithm file, else
        timed by cuDNN on the operands' buffers (``{"x"|"w"|"y": address}``; the output's
        content is overwritten)."""
        key = problem.key(self.device.name, self.version)
        found = self.algorithms.get(key)
        if found is not None:
            return found
        x, w, y, conv = self._descriptors(problem)
        search = self.device.allocate(SEARCH_WORKSPACE_BYTES)
        results, count = (_AlgoPerf * 16)(), ctypes.c_int()
        try:
            find = {"forward": (self.library.cudnnFindConvolutionForwardAlgorithmEx,
                                (x, operands["x"], w, operands["w"], conv, y, operands["y"])),
                    "backward_data": (self.library.cudnnFindConvolutionBackwardDataAlgorithmEx,
                                      (w, operands["w"], y, operands["y"], conv, x, operands["x"])),
                    "backward_filter": (self.library.cudnnFindConvolutionBackwardFilterAlgorithmEx,
                                        (x, operands["x"], y, operands["y"], conv, w, operands["w"]))}
            function, arguments = find[problem.kind]
            self._check(function(self.handle, *(ctypes.c_void_p(a) if isinstance(a, int) else a for a in arguments),
                                 16, ctypes.byref(count), results, ctypes.c_void_p(search.address),
                                 ctypes.c_size_t(SEARCH_WORKSPACE_BYTES)), f"algorithm search for {problem}")
        finally:
            self.device.synchronize()
            self.device.free(search)
        usable = [r for r in results[:count.value] if r.status == 0 and r.memory <= SEARCH_WORKSPACE_BYTES]
        if not usable:
            raise MetajitDeviceError(f"cuDNN has no algorithm for {problem}")
        if os.environ.get("METAJIT_CUDNN_SEARCH_LOG"):
            print(f"cuDNN search {problem}: " + ", ".join(
                f"algo {r.algo} {r.time:.3f} ms {r.memory >> 20} MiB math {r.mathType}" for r in usable), file=sys.stderr)
        best = min(usable, key=lambda r: r.time)
        self.algorithms.put(key, best.algo, best.memory)
        return best.algo, best.memory

    def convolve(self, problem, algorithm, workspace, workspace_bytes, operands):
        """Queue ``problem``'s convolution with ``algorithm`` (operands as in `algorithm`)."""
        x, w, y, conv = self._descriptors(problem)
        scale = ctypes.c_double if problem.dtype == "float64" else ctypes.c_float
        one, zero = scale(1.0), scale(0.0)
        address = {name: ctypes.c_void_p(value) for name, value in operands.items()}
        space, size = ctypes.c_void_p(workspace), ctypes.c_size_t(workspace_bytes)
        lib = self.library
        if problem.kind == "forward":
            status = lib.cudnnConvolutionForward(self.handle, ctypes.byref(one), x, address["x"], w, address["w"],
                                                 conv, algorithm, space, size, ctypes.byref(zero), y, address["y"])
        elif problem.kind == "backward_data":
            status = lib.cudnnConvolutionBackwardData(self.handle, ctypes.byref(one), w, address["w"], y,
                                                      address["y"], conv, algorithm, space, size,
                                                      ctypes.byref(zero), x, address["x"])
        else:
            status = lib.cudnnConvolutionBackwardFilter(self.handle, ctypes.byref(one), x, address["x"], y,
                                                        address["y"], conv, algorithm, space, size,
                                                        ctypes.byref(zero), w, address["w"])
        self._check(status, f"convolution {problem}")


class ConvolutionProgram:
    """A convolution library call on ``dnn`` (a `Cudnn` or any object with its
    ``algorithm``/``convolve``), with workspace from ``workspace`` (a
    `GrowingWorkspace`). The algorithm is chosen at the first run (per math type)."""

    graph_safe = True

    def __init__(self, call, dnn, workspace):
        self.call = call
        self.dnn = dnn
        self.workspace = workspace
        self.roles = ROLES[call.name]
        self.output = OUTPUT_OF[call.name]
        self.dtype_name = str(call.outputs[0][0])
        self.choices = {}  # math type (it follows the flags) -> (problem, algorithm, workspace bytes)

    def operands(self, inputs, outputs):
        """``{"x"|"w"|"y": address}`` for cuDNN (the gradients' buffers take their tensors' names)."""
        named = dict(zip(self.roles, (b.address for b in inputs)))
        named[self.output] = outputs[0].address
        return {"x": named.get("x", named.get("dx")), "w": named.get("w", named.get("dw")),
                "y": named.get("y", named.get("dy"))}

    def __call__(self, inputs, outputs, parameters):
        operands = self.operands(inputs, outputs)
        math = math_type(self.dtype_name)
        choice = self.choices.get(math)
        if choice is None:
            problem = problem_of(self.call)
            choice = self.choices[math] = (problem,) + tuple(self.dnn.algorithm(problem, operands))
        problem, algorithm, workspace_bytes = choice
        space = self.workspace.reserve(workspace_bytes) if workspace_bytes else 0
        self.dnn.convolve(problem, algorithm, space, workspace_bytes, operands)


class GrowingWorkspace:
    """Library scratch shared by every program on the device's one stream (used in stream
    order): it only grows, and outgrown buffers stay allocated, since captured CUDA graphs
    may still name them. ``reserve(n)`` returns an address."""

    def __init__(self, allocate):
        self.allocate = allocate
        self.buffers = []
        self.nbytes = 0

    def reserve(self, nbytes):
        """The address of at least ``nbytes`` bytes of scratch."""
        if nbytes > self.nbytes:
            self.nbytes = max(nbytes, 2 * self.nbytes)
            self.buffers.append(self.allocate(self.nbytes))
        return self.buffers[-1].address


def algorithm_file():
    """The process's `AlgorithmFile` in the cuda cache directory."""
    return AlgorithmFile(os.path.join(disk_cache.cache_root("cuda"), ALGORITHM_FILE))
