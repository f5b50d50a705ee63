"""Compile generated C++ into shared objects, through a crash-safe on-disk cache.

* Toolchain: ``CXX`` (default ``g++``), C++17, ``-O3 -march=native -fopenmp``; IEEE
  results kept (no fast-math, no FMA contraction) so kernels match the reference.
  ``-fno-tree-sink``: GCC otherwise sinks an operand computed only for a ``select`` into
  a branch, and a loop with a branch around float arithmetic does not vectorise
  (``-fno-trapping-math`` would allow that too, but stopped the pooling loops vectorising).
* Cache: ``METAJIT_CACHE_DIR`` (default ``~/.cache/metajit``)/``cpu``. One entry per
  kernel, keyed by its source + flags + compiler version + CPU features; the kernels of
  one realisation that miss are compiled together in one translation unit (or a few, in
  parallel compiler processes) and the resulting library is linked under each key.
* Safety: entries are written to a temporary name and renamed (atomic); a checksum file
  is written last and verified on load; a corrupt or truncated entry is rebuilt with a
  warning; an exclusive file lock serialises compiles, so processes sharing the cache
  (``mpirun -np 4``) wait for each other instead of racing.
"""
import concurrent.futures
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

from metajit.errors import MetajitCompileError

from .renderer import prelude

FLAGS = ("-std=c++17", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fwrapv",
         "-ffp-contract=off", "-fno-math-errno", "-fno-tree-sink")
SYMBOL_PREFIX = "mj_kernel_"
KERNELS_PER_UNIT = 24
PROGRESS_AFTER_SECONDS = 2.0


def cache_root():
    """The cache directory for CPU kernels (``METAJIT_CACHE_DIR``/cpu)."""
    base = os.environ.get("METAJIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "metajit")
    return os.path.join(base, "cpu")


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


class Toolchain:
    """The compiler, its version and the CPU features: everything a cache key depends on."""

    def __init__(self):
        reason = missing_compiler_reason()
        if reason:
            raise MetajitCompileError(reason)
        self.command = compiler_command()
        try:
            version = subprocess.run(self.command + ["--version"], capture_output=True, text=True,
                                     timeout=60)
        except OSError as error:
            raise MetajitCompileError(f"C++ compiler {self.command[0]!r} cannot run ({error}): "
                                      "install g++ or set CXX") from None
        self.version = version.stdout.splitlines()[0] if version.stdout else version.stderr
        self.key_prefix = "\n".join([" ".join(self.command), self.version, " ".join(FLAGS),
                                     _cpu_features(), prelude()])

    def cache_key(self, source):
        """Hex key of one kernel's source under this toolchain."""
        return hashlib.sha256((self.key_prefix + "\n" + source).encode()).hexdigest()[:40]


def _cpu_features():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.machine() + platform.processor()


class KernelCache:
    """On-disk entries ``<key>.so`` + ``<key>.sha256`` with atomic installs and a compile lock."""

    def __init__(self, root=None):
        self.root = root or cache_root()
        os.makedirs(os.path.join(self.root, "src"), exist_ok=True)

    def path(self, key):
        return os.path.join(self.root, key + ".so")

    def lookup(self, key):
        """The verified library path of ``key``, or None (a corrupt entry is removed with a warning)."""
        library, checksum_file = self.path(key), self.path(key)[:-3] + ".sha256"
        if not os.path.exists(library):
            return None
        try:
            with open(checksum_file) as handle:
                expected = handle.read().strip()
            actual = _file_digest(library)
        except OSError:
            expected, actual = None, "unreadable"
        if expected != actual:
            warnings.warn(f"metajit: cache entry {library} is corrupt or incomplete; rebuilding it",
                          RuntimeWarning, stacklevel=2)
            for stale in (library, checksum_file):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
            return None
        return library

    def install(self, key, built_library, digest):
        """Publish ``built_library`` under ``key``: link or copy to a temp name, then rename."""
        target = self.path(key)
        temporary = f"{target}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        try:
            os.link(built_library, temporary)
        except OSError:
            shutil.copyfile(built_library, temporary)
        os.replace(temporary, target)
        _atomic_write(target[:-3] + ".sha256", digest)

    @contextlib.contextmanager
    def locked(self):
        """Exclusive lock shared by every process using this cache directory."""
        with open(os.path.join(self.root, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _atomic_write(path, text):
    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


class Compiler:
    """Compiles batches of kernel sources and loads their entry points."""

    def __init__(self):
        self.toolchain = Toolchain()
        self.cache = KernelCache()
        self.libraries = {}

    def symbol(self, key):
        """The C symbol of the kernel with cache key ``key``."""
        return SYMBOL_PREFIX + key

    def key_of(self, symbol):
        """The cache key named by a kernel's C ``symbol`` (inverse of `symbol`)."""
        return symbol[len(SYMBOL_PREFIX):]

    def load_functions(self, sources):
        """Entry points (ctypes functions) for kernel ``sources`` ((key, body) pairs)."""
        paths = {}
        # different kernels can render to the same source (same key): compile each key once
        unique = list(dict(sources).items())
        missing = self._look_up(unique, paths)
        if missing:
            with self.cache.locked():
                # another process may have compiled them while we waited for the lock
                missing = self._look_up(missing, paths)
                if missing:
                    paths.update(self._compile(missing))
        return [self._function(paths[key], key) for key, _ in sources]

    def _look_up(self, entries, paths):
        """Record cached paths of ``entries`` in ``paths``; return the entries not cached."""
        missing = []
        for key, body in entries:
            path = self.cache.lookup(key)
            if path is None:
                missing.append((key, body))
            else:
                paths[key] = path
        return missing

    def _function(self, path, key):
        library = self.libraries.get(path)
        if library is None:
            try:
                library = self.libraries[path] = ctypes.CDLL(path)
            except OSError as error:
                raise MetajitCompileError(f"cannot load compiled kernel {path}: {error}; "
                                          "delete it to force a rebuild") from None
        function = getattr(library, self.symbol(key))
        function.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong)
        function.restype = None
        return function

    def _compile(self, entries):
        """Compile missing entries in units, in parallel processes; errors are raised here,
        in the calling thread, so the message can name the user's line."""
        units = [entries[i:i + KERNELS_PER_UNIT] for i in range(0, len(entries), KERNELS_PER_UNIT)]
        started = time.perf_counter()
        workers = min(len(units), os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._compile_unit, unit) for unit in units]
            results = {}
            announced = False
            for future in futures:
                while True:
                    try:
                        outcome = future.result(timeout=0.25)
                        break
                    except concurrent.futures.TimeoutError:
                        if not announced and time.perf_counter() - started > PROGRESS_AFTER_SECONDS:
                            print(f"metajit: compiling {len(entries)} CPU kernels "
                                  f"({len(units)} unit(s))...", file=sys.stderr, flush=True)
                            announced = True
                if isinstance(outcome, str):
                    raise MetajitCompileError(outcome)
                results.update(outcome)
        return results

    def _compile_unit(self, entries):
        """Compile one translation unit; returns {key: path}, or the error message."""
        unit_key = hashlib.sha256("".join(k for k, _ in entries).encode()).hexdigest()[:24]
        source_path = os.path.join(self.cache.root, "src", unit_key + ".cpp")
        source = prelude() + "\n" + "\n\n".join(body for _, body in entries) + "\n"
        _atomic_write(source_path, source)
        descriptor, built = tempfile.mkstemp(dir=self.cache.root, suffix=".so.tmp")
        os.close(descriptor)
        command = self.toolchain.command + list(FLAGS) + [source_path, "-o", built]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            return f"cannot run the C++ compiler {command[0]!r}: {error}; install g++ or set CXX"
        if result.returncode != 0:
            with contextlib.suppress(OSError):
                os.unlink(built)
            errors = [l for l in result.stderr.splitlines() if "error" in l][:10]
            return (f"C++ compilation of generated kernels failed; source: {source_path}\n"
                    f"command: {' '.join(command)}\n"
                    + "\n".join(errors or result.stderr.splitlines()[:20]))
        digest = _file_digest(built)
        for key, _ in entries:
            self.cache.install(key, built, digest)
        os.unlink(built)
        return {key: self.cache.path(key) for key, _ in entries}
