"""The host C++ compiler as a toolchain: detection, cache keys, building shared libraries.

Used by every backend whose kernels (or emulation of them) run on the host: the cpu
backend, an emulated accelerator, the user C++ of ``jt.code``. The compiler is ``CXX``
(default ``g++``, may carry arguments such as ``ccache g++``). Example::

    toolchain = HostToolchain(("-std=c++17", "-O2", "-fPIC", "-shared"))
    key = toolchain.cache_key(source)
    error = toolchain.build_shared_library(source_path, output_path)  # None on success
"""
import contextlib
import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess

from metajit.errors import MetajitCompileError

from . import disk_cache


def compiler_command():
    """The compiler named by ``CXX`` as an argument list (default ``g++``)."""
    return shlex.split(os.environ.get("CXX") or "g++")


def missing_compiler_reason():
    """None when the C++ compiler runs, else a one-line reason naming the fix."""
    command = compiler_command()
    if not command or shutil.which(command[0]) is None:
        name = command[0] if command else "''"
        return (f"C++ compiler {name!r} not found: install g++ (Debian/Ubuntu: apt-get install g++) "
                "or set CXX to a C++17 compiler")
    return None


def cpu_features():
    """The host CPU's feature flags (what ``-march=native`` code depends on)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + platform.processor()


class HostToolchain:
    """The compiler, its version, ``flags`` and the CPU features: what a cache key depends on.

    ``key_material`` is extra text every key includes (e.g. the prelude). Raises
    `MetajitCompileError` naming ``g++``/``CXX`` when the compiler is missing."""

    def __init__(self, flags, key_material=""):
        reason = missing_compiler_reason()
        if reason:
            raise MetajitCompileError(reason)
        self.command = compiler_command()
        self.flags = tuple(flags)
        try:
            version = subprocess.run(self.command + ["--version"], capture_output=True, text=True,
                                     timeout=60)
        except OSError as error:
            raise MetajitCompileError(f"C++ compiler {self.command[0]!r} cannot run ({error}): "
                                      "install g++ or set CXX") from None
        self.version = version.stdout.splitlines()[0] if version.stdout else version.stderr
        self.key_prefix = "\n".join([" ".join(self.command), self.version, " ".join(self.flags),
                                     cpu_features(), key_material])

    def cache_key(self, source):
        """Hex key of one kernel's source under this toolchain."""
        return hashlib.sha256((self.key_prefix + "\n" + source).encode()).hexdigest()[:40]

    def run(self, source_path, output_path):
        """Compile ``source_path`` into ``output_path``: ``(succeeded, compiler output,
        command)``; a compiler that cannot start counts as a failure with the reason."""
        command = self.command + list(self.flags) + [source_path, "-o", output_path]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            return False, f"cannot run the C++ compiler {command[0]!r}: {error}; install g++ or set CXX", command
        return result.returncode == 0, result.stderr, command

    def build_shared_library(self, source_path, output_path, failure_message=None):
        """Compile ``source_path`` into ``output_path``; None on success, else an error
        message: ``failure_message(compiler output, source_path)`` when given, else one
        naming the kept source, the command and the compiler's first errors."""
        succeeded, output, command = self.run(source_path, output_path)
        if succeeded:
            return None
        if failure_message is not None:
            return failure_message(output, source_path)
        errors = [line for line in output.splitlines() if "error" in line][:10]
        return (f"C++ compilation of generated kernels failed; source: {source_path}\n"
                f"command: {' '.join(command)}\n" + "\n".join(errors or output.splitlines()[:20]))

    def build_unit(self, cache, entries, header="", failure_message=None):
        """Compile ``entries`` (``(key, source)`` pairs) after ``header`` as one translation
        unit into a shared library installed in the `DiskCache` ``cache`` under every key
        (the source is kept in ``cache``'s ``src``): ``{key: path}``, or the error message
        (see `build_shared_library`). A ``compile_unit`` for `metajit.toolkit.batch_compile.build`."""
        unit = hashlib.sha256("".join(key for key, _ in entries).encode()).hexdigest()[:24]
        source_path = cache.keep_source(unit + ".cpp", header + "\n" + "\n\n".join(s for _, s in entries) + "\n")
        built = cache.new_build_path()
        try:
            error = self.build_shared_library(source_path, built, failure_message)
            if error is not None:
                return error
            digest = disk_cache.file_digest(built)
            return {key: cache.install(key, built, digest) for key, _ in entries}
        finally:
            with contextlib.suppress(OSError):
                os.unlink(built)


def load_library(path):
    """``ctypes.CDLL`` of a cached library; a failure raises `MetajitCompileError` naming
    the file (`metajit.toolkit.batch_compile.build_and_load` then rebuilds it once)."""
    try:
        return ctypes.CDLL(path)
    except OSError as error:
        raise MetajitCompileError(f"cannot load compiled kernel {path}: {error}; "
                                  "delete it to force a rebuild") from None


def entry_point(library, symbol, path):
    """The function ``symbol`` of a loaded ``library`` (from ``path``); a missing symbol
    raises `MetajitCompileError` like an unloadable library."""
    try:
        return getattr(library, symbol)
    except AttributeError:
        raise MetajitCompileError(f"compiled kernel {path} lacks its entry point {symbol}; "
                                  "delete it to force a rebuild") from None
