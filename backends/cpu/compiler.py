"""Compile generated C++ into shared objects through the toolkit's disk cache.

* Toolchain (`metajit.toolkit.host_compiler`): ``CXX`` (default ``g++``), C++17,
  ``-O3 -march=native -fopenmp``; IEEE results kept (no fast-math, no FMA contraction)
  so kernels match the reference. ``-fno-tree-sink``: GCC otherwise sinks an operand
  computed only for a ``select`` into a branch, and a loop with a branch around float
  arithmetic does not vectorise (``-fno-trapping-math`` would allow that too, but stopped
  the pooling loops vectorising).
* Cache (`metajit.toolkit.disk_cache`): ``METAJIT_CACHE_DIR``/``cpu``, one entry per
  kernel, keyed by its source + flags + compiler version + CPU features + prelude; the
  kernels of one realisation that miss are compiled together in units
  (`metajit.toolkit.batch_compile`), in parallel compiler processes, and each unit's
  library is linked under every key it holds.
"""
import ctypes
import struct

from metajit.flags import flags
from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler

FLAGS = ("-std=c++17", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fwrapv",
         "-ffp-contract=off", "-fno-math-errno", "-fno-tree-sink")
SYMBOL_PREFIX = "mj_kernel_"


class Compiler:
    """Compiles batches of kernel sources and loads their entry points."""

    def __init__(self):
        self.toolchain = host_compiler.HostToolchain(FLAGS, codegen.prelude())
        self.cache = disk_cache.DiskCache(disk_cache.cache_root("cpu"))
        self.libraries = {}
        self.drivers = {}
        self.driver_addresses = {}

    def _compile_unit(self, entries):
        return self.toolchain.build_unit(self.cache, entries, codegen.prelude())

    def symbol(self, key):
        """The C symbol of the kernel with cache key ``key``."""
        return SYMBOL_PREFIX + key

    def key_of(self, symbol):
        """The cache key named by a kernel's C ``symbol`` (inverse of `symbol`)."""
        return symbol[len(SYMBOL_PREFIX):]

    def load_driver(self, path):
        """The entry point of the hand-written kernel source at ``path`` (a library driver such
        as ``parallel_gemm.cpp``: the kernel signature, `codegen.NAME_PLACEHOLDER` as its
        name), compiled and cached like a generated kernel; loaded once per process."""
        function = self.drivers.get(path)
        if function is None:
            with open(path) as source:
                template = source.read()
            key = self.toolchain.cache_key(template)
            (function,) = self.load_functions([(key, template.replace(codegen.NAME_PLACEHOLDER, self.symbol(key)))])
            self.drivers[path] = function
        return function

    def driver_address(self, path):
        """The address of the driver at ``path`` (`load_driver`), for a native launch."""
        address = self.driver_addresses.get(path)
        if address is None:
            address = self.driver_addresses[path] = ctypes.cast(self.load_driver(path), ctypes.c_void_p).value
        return address

    def run_driver(self, path, inputs, outputs, parameters):
        """Run the driver at ``path`` (`load_driver`) on the buffers ``inputs`` and
        ``outputs`` with its packed ``parameters``, on the kernels' thread count."""
        self.load_driver(path)(_addresses(inputs), _addresses(outputs), parameters, flags.num_threads)

    def load_functions(self, sources):
        """Entry points (ctypes functions) for kernel ``sources`` ((key, body) pairs)."""
        return batch_compile.build_and_load(self.cache, sources, self._compile_unit, self._function,
                                            what="CPU kernels")

    def _function(self, path, key):
        library = self.libraries.get(path)
        if library is None:
            library = host_compiler.load_library(path)
        function = host_compiler.entry_point(library, self.symbol(key), path)
        self.libraries[path] = library
        function.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong)
        function.restype = None
        return function


def _addresses(buffers):
    """The buffers' addresses packed as the C array of pointers a kernel takes."""
    return struct.pack(f"{len(buffers)}P", *(buffer.address for buffer in buffers))
