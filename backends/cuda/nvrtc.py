"""CUDA C++ to cubin through NVRTC (the ``cuda-bindings`` package's ``cuda.bindings.nvrtc``),
cached on disk: no ``nvcc`` at run time, and none needed to compile without a GPU.

The cache (``METAJIT_CACHE_DIR``/``cuda``) is keyed by the source, the options, the NVRTC
version and the target architecture. Example::

    compiler = NvrtcCompiler()
    image, lowered = compiler.compile(source, "sm_90", name_expressions=("kernel1",))
"""
import functools
import hashlib

from metajit.errors import MetajitCompileError
from metajit.toolkit import disk_cache

DEFAULT_OPTIONS = ("--std=c++17", "-default-device")


def missing_nvrtc_reason():
    """None when NVRTC loads, else a one-line reason naming the fix."""
    try:
        _nvrtc_version()
    except Exception as error:  # ImportError, or the library not found by cuda-bindings
        return (f"NVRTC is not available ({type(error).__name__}: {str(error).splitlines()[0]}): "
                "pip install 'metajit[cuda]' (cuda-bindings and nvidia-cuda-nvrtc)")
    return None


@functools.lru_cache(maxsize=None)
def _nvrtc_version():
    from cuda.bindings import nvrtc
    result, major, minor = nvrtc.nvrtcVersion()
    _check(result, "nvrtcVersion")
    return major, minor


@functools.lru_cache(maxsize=None)
def include_options():
    """``-I`` options for the CUDA headers NVRTC does not build in (``cuda_fp16.h``): the
    ``nvidia-cuda-runtime`` wheel's, or a CUDA toolkit's, as ``cuda-pathfinder`` finds them."""
    try:
        from cuda import pathfinder
        directory = pathfinder.find_nvidia_header_directory("cudart")
    except Exception:  # no pathfinder, or no headers: sources that include none still compile
        directory = None
    return (f"-I{directory}",) if directory else ()


def _check(result, what, log=""):
    from cuda.bindings import nvrtc
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise MetajitCompileError(f"NVRTC {what} failed ({result.name}){': ' + log if log else ''}")


class NvrtcFailure(Exception):
    """A compile that NVRTC rejected: ``log`` is its message, ``source`` the text."""

    def __init__(self, log, source):
        super().__init__(log)
        self.log = log
        self.source = source


class NvrtcCompiler:
    """Compiles CUDA sources to cubins for one architecture, through the disk cache."""

    def __init__(self):
        self.version = _nvrtc_version()
        self.cache = disk_cache.DiskCache(disk_cache.cache_root("cuda"), suffix=".cubin")

    def key(self, source, architecture, options, name_expressions):
        """The cache key of one compile."""
        material = "\n".join([f"nvrtc {self.version}", architecture, " ".join(options),
                              " ".join(name_expressions), source])
        return hashlib.sha256(material.encode()).hexdigest()[:40]

    def compile(self, source, architecture, options=(), name_expressions=(), program_name="metajit.cu"):
        """``(cubin bytes, {name expression: lowered name})`` of ``source`` for
        ``architecture`` (``"sm_90"``); raises `NvrtcFailure` with NVRTC's log when the
        source does not compile."""
        options = DEFAULT_OPTIONS + tuple(options)
        key = self.key(source, architecture, options, name_expressions)
        names_key = key + "-names"
        found = self._cached(key, names_key)
        if found is not None:
            return found
        with self.cache.locked():  # compiled once; a lookup meanwhile waits for the checksums
            found = self._cached(key, names_key)
            if found is not None:
                return found
            image, lowered = self.compile_uncached(source, architecture, options, name_expressions, program_name)
            self.cache.keep_source(key + ".cu", source)
            self.cache.install_bytes(key, image)
            self.cache.install_bytes(names_key, "\n".join(f"{k}\t{v}" for k, v in lowered.items()).encode())
        return image, lowered

    def _cached(self, key, names_key):
        """``(cubin bytes, lowered names)`` of a compile the disk cache holds, or None."""
        path = self.cache.lookup(key)
        names_path = self.cache.lookup(names_key)
        if path is None or names_path is None:
            return None
        with open(path, "rb") as image, open(names_path, "rb") as names:
            return image.read(), _parse_names(names.read())

    def compile_uncached(self, source, architecture, options=(), name_expressions=(), program_name="metajit.cu"):
        """`compile` without the disk cache (for callers that cache units themselves);
        ``options`` are used as given (no `DEFAULT_OPTIONS` added)."""
        from cuda.bindings import nvrtc
        result, program = nvrtc.nvrtcCreateProgram(source.encode(), program_name.encode(), 0, [], [])
        _check(result, "nvrtcCreateProgram")
        try:
            for expression in name_expressions:
                _check(nvrtc.nvrtcAddNameExpression(program, expression.encode())[0], "nvrtcAddNameExpression")
            arguments = [f"--gpu-architecture={architecture}".encode()] + [
                o.encode() for o in options + include_options()]
            (result,) = nvrtc.nvrtcCompileProgram(program, len(arguments), arguments)
            if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
                raise NvrtcFailure(_log(program), source)
            result, size = nvrtc.nvrtcGetCUBINSize(program)
            _check(result, "nvrtcGetCUBINSize")
            image = b" " * size
            _check(nvrtc.nvrtcGetCUBIN(program, image)[0], "nvrtcGetCUBIN")
            lowered = {}
            for expression in name_expressions:
                result, name = nvrtc.nvrtcGetLoweredName(program, expression.encode())
                _check(result, "nvrtcGetLoweredName")
                lowered[expression] = name.decode()
            return image, lowered
        finally:
            nvrtc.nvrtcDestroyProgram(program)


def _log(program):
    from cuda.bindings import nvrtc
    result, size = nvrtc.nvrtcGetProgramLogSize(program)
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS or size <= 1:
        return ""
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(program, log)
    return log.rstrip(b"\x00 ").decode(errors="replace")


def _parse_names(data):
    return dict(line.split("\t", 1) for line in data.decode().splitlines() if "\t" in line)
