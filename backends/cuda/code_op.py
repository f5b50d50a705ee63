"""``jt.code`` operators with a ``cuda_src``, compiled without nvcc.

Jittor's ``cuda_src`` mixes ``__global__``/``__device__`` definitions with host code that
launches them (``kernel<<<grid, block>>>(@ARGS)``). Here the two are split after macro
expansion (lines kept, so ``#line`` maps both to the user's file):

* the device part (the ``cuda_header`` and every top-level ``__global__``/``__device__``/
  ``__constant__`` definition) is compiled by NVRTC (`nvrtc.NvrtcCompiler`) into a cubin;
* the host part becomes the body of a C++ entry point compiled by the host compiler,
  where each launch calls a typed stub that packs the kernel's arguments and calls the
  driver's ``cuLaunchKernel`` through a function pointer (no CUDA headers or libraries
  at compile time).

`CudaCodeProgram.run` loads the cubin once per context, and runs the host entry with
the launcher (the kernels' ``CUfunction`` handles, ``cuLaunchKernel``'s address, the
stream). Host code may compute launch sizes, loop, and call ``set_shape``.
"""
import ctypes
import functools
import hashlib
import re

from metajit.errors import MetajitCompileError, MetajitValueError
from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler, inline_source
from metajit.toolkit.inline_source import MacroExpander

from . import nvrtc, runtime

HOST_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared")
SYMBOL_PREFIX = "mj_cuda_code_"

DEVICE_PREAMBLE = """#include <cuda_fp16.h>
typedef long long index_t; typedef bool bool_;
typedef unsigned char uint8; typedef signed char int8; typedef short int16; typedef int int32; typedef long long int64;
typedef float float32; typedef double float64; typedef __half float16;
"""

LAUNCHER = """
struct mj_dim3 {
    unsigned x, y, z;
    mj_dim3(unsigned gx = 1, unsigned gy = 1, unsigned gz = 1) : x(gx), y(gy), z(gz) {}
};
typedef mj_dim3 dim3;
typedef void* cudaStream_t;
typedef int (*mj_launch_function)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                  unsigned, void*, void**, void**);
struct mj_cuda_launcher { mj_launch_function launch; void* const* functions; void* stream; };
static thread_local const mj_cuda_launcher* mj_launcher = nullptr;
static void mj_launch(int kernel, const char* name, mj_dim3 grid, mj_dim3 block, unsigned shared, void* stream,
                      void** arguments) {
    int status = mj_launcher->launch(mj_launcher->functions[kernel], grid.x, grid.y, grid.z, block.x, block.y,
                                     block.z, shared, stream ? stream : mj_launcher->stream, arguments, nullptr);
    if (status != 0)
        throw std::runtime_error(std::string("launching ") + name + " failed with CUDA error " + std::to_string(status));
}
"""

_DEVICE_KEYWORDS = re.compile(r"\b(__global__|__device__|__constant__)\b")
_KERNEL = re.compile(r"__global__[^({;]*?\b([A-Za-z_]\w*)\s*\(")
_LAUNCH = re.compile(r"\b([A-Za-z_]\w*)\s*<<<")
_SKIPPED = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""", re.S)


def _blank(text):
    """``text`` with everything but its newlines removed."""
    return "\n" * text.count("\n")


def split_device_code(text):
    """``(device text, host text)`` of expanded ``cuda_src`` ``text``: top-level
    ``__global__``/``__device__``/``__constant__`` definitions go to the device text,
    the rest to the host; each keeps the other's lines blank."""
    device, host, position, depth, k = [], [], 0, 0, 0
    while k < len(text):
        skipped = _SKIPPED.match(text, k)
        if skipped:
            k = skipped.end()
            continue
        if text[k] in "{}":
            depth += 1 if text[k] == "{" else -1
        elif depth == 0 and _DEVICE_KEYWORDS.match(text, k):
            start = text.rfind("\n", position, k) + 1
            end = _definition_end(text, k)
            host.append(text[position:start])
            device.append(_blank(text[position:start]))
            device.append(text[start:end])
            host.append(_blank(text[start:end]))
            position = k = end
            continue
        k += 1
    host.append(text[position:])
    device.append(_blank(text[position:]))
    return "".join(device), "".join(host)


def _definition_end(text, k):
    """Where the definition starting at ``text[k]`` ends: after the ``}`` closing its
    first ``{``, or after a ``;`` met first (a variable)."""
    depth = 0
    while k < len(text):
        skipped = _SKIPPED.match(text, k)
        if skipped:
            k = skipped.end()
            continue
        char = text[k]
        if char == ";" and depth == 0:
            return k + 1
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return k + 1
        k += 1
    return k


def kernel_signatures(device_text):
    """``[(name, [(parameter declaration, parameter name)])]`` of the ``__global__``
    functions in ``device_text``."""
    kernels = []
    for match in _KERNEL.finditer(device_text):
        if "template" in device_text[max(0, match.start() - 200):match.start()].split(";")[-1]:
            raise MetajitValueError(f"jt.code: cuda_src kernel {match.group(1)} is a template; write a plain "
                                    "__global__ function (one per dtype) instead")
        arguments, _ = inline_source.call_arguments(device_text, match.end() - 1)
        parameters = []
        for declaration in arguments or []:
            declaration = " ".join(declaration.split("=")[0].split())
            if declaration in ("", "void"):
                continue
            names = re.findall(r"[A-Za-z_]\w*", declaration)
            parameters.append((declaration, names[-1]))
        kernels.append((match.group(1), parameters))
    return kernels


def rewrite_launches(host_text, kernels):
    """``host_text`` with every ``name<<<grid, block[, shared[, stream]]>>>(arguments)``
    turned into a call of the kernel's launch stub (lines kept)."""
    index = {name: k for k, (name, _) in enumerate(kernels)}
    pieces, position = [], 0
    for match in _LAUNCH.finditer(host_text):
        if match.start() < position:
            continue
        name = match.group(1)
        close = host_text.find(">>>", match.end())
        if name not in index or close < 0:
            raise MetajitValueError(f"jt.code: cuda_src launches {name}, which is not a __global__ function "
                                    f"defined in cuda_src or cuda_header (found: {', '.join(index) or 'none'})")
        configuration = [part.strip() for part in _split_top_level(host_text[match.end():close])]
        if not 2 <= len(configuration) <= 4:
            raise MetajitValueError(f"jt.code: {name}<<<...>>> takes grid, block, and optionally shared "
                                    "memory bytes and a stream")
        configuration += ["0", "nullptr"][len(configuration) - 2:]
        arguments, end = inline_source.call_arguments(host_text, close + 3)
        if arguments is None:
            raise MetajitValueError(f"jt.code: {name}<<<...>>> must be followed by its arguments")
        grid, block, shared, stream = configuration
        call = (f"mj_launch_{name}(mj_dim3({grid}), mj_dim3({block}), {shared}, {stream}"
                + "".join(", " + " ".join(a.split()) for a in arguments if a.strip()) + ")")
        pieces += [host_text[position:match.start()], call, _blank(host_text[match.start():end])]
        position = end
    pieces.append(host_text[position:])
    return "".join(pieces)


def _split_top_level(text):
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def launch_stubs(kernels):
    """One C++ stub per kernel, packing its typed arguments for ``cuLaunchKernel``."""
    stubs = []
    for k, (name, parameters) in enumerate(kernels):
        declarations = "".join(", " + declaration for declaration, _ in parameters)
        addresses = ", ".join(f"(void*)&{parameter}" for _, parameter in parameters) or "nullptr"
        stubs.append(f"static void mj_launch_{name}(mj_dim3 grid, mj_dim3 block, unsigned shared, void* stream"
                     f"{declarations}) {{ void* arguments[] = {{{addresses}}}; "
                     f"mj_launch({k}, \"{name}\", grid, block, shared, stream, arguments); }}")
    return "\n".join(stubs)


def render(call):
    """``(device source, kernel signatures, host source template)`` of ``call``'s
    ``cuda`` source; the host template names its entry `codegen.NAME_PLACEHOLDER`."""
    header, body = call.source("cuda")
    expander = MacroExpander(call)
    expanded_header = expander.expand(header)
    device_part, host_part = split_device_code(expander.expand(body))
    device = "\n".join([DEVICE_PREAMBLE, inline_source.type_declarations(call), header.line_directive(),
                        expanded_header, body.line_directive(), device_part])
    kernels = kernel_signatures(expanded_header + "\n" + device_part)
    host_header = LAUNCHER + launch_stubs(kernels)
    host = inline_source.host_entry(call, codegen.NAME_PLACEHOLDER, host_header,
                                    body.line_directive() + "\n" + rewrite_launches(host_part, kernels),
                                    extra_parameter="const mj_cuda_launcher* mj_cuda", setup="mj_launcher = mj_cuda;")
    return device, kernels, host


@functools.lru_cache(maxsize=None)
def _host_toolchain(options):
    return host_compiler.HostToolchain(HOST_FLAGS + tuple(options), "jt.code cuda host")


@functools.lru_cache(maxsize=None)
def _host_cache():
    return disk_cache.DiskCache(disk_cache.cache_root("cuda"))


@functools.lru_cache(maxsize=None)
def _nvrtc_compiler():
    return nvrtc.NvrtcCompiler()


class CompiledCudaCode:
    """A ``jt.code`` CUDA operator compiled for one architecture: the cubin ``image``,
    its kernels' ``lowered_names`` (in launch-stub order) and the host ``entry``."""

    def __init__(self, call, image, lowered_names, entry):
        self.call = call
        self.image = image
        self.lowered_names = lowered_names
        self.entry = entry


def compile_code(call, architecture):
    """`CompiledCudaCode` of ``call``'s ``cuda`` source for ``architecture`` (``"sm_90"``),
    or None when the call has none. Errors of either part raise `MetajitCompileError`
    naming the user's lines."""
    if call.source("cuda") is None:
        return None
    device, kernels, host_template = render(call)
    defines = tuple(option for option in call.options if option.startswith(("-D", "-U", "-I")))
    try:
        image, lowered = _nvrtc_compiler().compile(device, architecture, defines,
                                                   tuple(name for name, _ in kernels), program_name="jt_code.cu")
    except nvrtc.NvrtcFailure as failure:
        kept = _nvrtc_compiler().cache.keep_source(
            "failed-" + hashlib.sha256(device.encode()).hexdigest()[:24] + ".cu", device)
        raise MetajitCompileError(inline_source.compile_error_message(call, "cuda", failure.log, kept, "NVRTC")) from None
    toolchain = _host_toolchain(call.options)
    text, symbol = codegen.name_source(host_template, toolchain.cache_key, SYMBOL_PREFIX)
    cache = _host_cache()

    def compile_unit(entries):
        return toolchain.build_unit(cache, entries, failure_message=lambda output, path: inline_source.compile_error_message(
            call, "cuda", output, path, toolchain.command[0]))

    def load(path, _key):
        function = host_compiler.entry_point(host_compiler.load_library(path), symbol, path)
        function.argtypes = inline_source.ENTRY_ARGUMENT_TYPES + (ctypes.c_void_p,)
        function.restype = ctypes.c_int
        return function

    (entry,) = batch_compile.build_and_load(cache, [(symbol[len(SYMBOL_PREFIX):], text)], compile_unit, load,
                                            what="jt.code CUDA host code")
    return CompiledCudaCode(call, image, [lowered[name] for name, _ in kernels], entry)


class _Launcher(ctypes.Structure):
    _fields_ = [("launch", ctypes.c_void_p), ("functions", ctypes.c_void_p), ("stream", ctypes.c_void_p)]


class CudaCodeProgram:
    """Runs a `CompiledCudaCode` on the current CUDA context: ``stream`` is the
    ``CUstream`` handle (an int; 0 for the default stream) kernels are queued on."""

    def __init__(self, compiled, stream=0):
        from cuda.bindings import driver
        self.compiled = compiled
        self.stream = int(stream)
        result, self.module = driver.cuModuleLoadData(compiled.image)
        _check_driver(result, "cuModuleLoadData")
        handles = []
        for name in compiled.lowered_names:
            result, function = driver.cuModuleGetFunction(self.module, name.encode())
            _check_driver(result, f"cuModuleGetFunction({name})")
            handles.append(int(function))
        self.functions = (ctypes.c_void_p * max(len(handles), 1))(*handles)
        launch = ctypes.cast(runtime.cu_launch_kernel(), ctypes.c_void_p).value
        self.launcher = _Launcher(launch, ctypes.cast(self.functions, ctypes.c_void_p), self.stream)

    def run(self, inputs, input_shapes, outputs, output_shapes, data):
        """As `metajit.backends.cpu.code_op.CodeProgram.run`, on device buffers (objects
        with an ``address``: the ``CUdeviceptr``)."""
        return inline_source.run_entry(self.compiled.entry, [b.address for b in inputs], input_shapes,
                                       [b.address for b in outputs], output_shapes, data,
                                       ctypes.addressof(self.launcher))


def _check_driver(result, what):
    from cuda.bindings import driver
    if result != driver.CUresult.CUDA_SUCCESS:
        raise MetajitValueError(f"jt.code: {what} failed ({result.name})")
