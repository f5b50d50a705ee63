"""The toolchain of ``template_accel``: **vendor swap point** (the ``cncc``-equivalent).

Here it is the host C++ compiler (``CXX``, default g++) with the emulation layer
force-included, as a real toolchain provides the BANG built-ins::

    g++ -std=c++17 -O2 -fopenmp -shared -fPIC -D__BANG__ -include emulation/bang_emu.h unit.mlu

and `emulated_source` maps each ``__nram__`` array onto the task's NRAM arena. Units
are cached by the toolkit's `DiskCache` (``METAJIT_CACHE_DIR``/``template_accel``) and
compiled in batches by `metajit.toolkit.batch_compile`; the emulated driver
(``emulation/driver.cpp``) is built the same way on first use.

A vendor replaces `flags` with their compiler's, `Toolchain.compile_unit` with a call
of their compiler producing a loadable module that holds the host launch stubs, and
drops `emulated_source` (their compiler understands ``__nram__``).
"""
import ctypes
import os
import re

from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler

from .renderer import KERNEL_HELPERS

EMULATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulation")
HEADER = os.path.join(EMULATION, "bang_emu.h")
DRIVER = os.path.join(EMULATION, "driver.cpp")
_NRAM_ARRAY = re.compile(r"__nram__\s+([A-Za-z_][\w ]*?)\s+([A-Za-z_]\w*)\s*\[([^\]]+)\]\s*;")


def checks_enabled():
    """Whether the emulator checks NRAM, alignment and DMA bounds (``METAJIT_ACCEL_CHECKS``, default 1)."""
    return os.environ.get("METAJIT_ACCEL_CHECKS", "1") != "0"


def flags(nram_capacity):
    """The compiler flags: IEEE float semantics (no contraction, no fast-math), OpenMP for
    the tasks, the emulated NRAM size, the emulation header and the prelude's directory."""
    return ("-std=c++17", "-O2", "-fPIC", "-shared", "-fopenmp", "-fwrapv", "-ffp-contract=off",
            "-fno-math-errno", "-D__BANG__", f"-DMJ_NRAM_CAPACITY={nram_capacity}",
            f"-DMJ_EMU_CHECKS={int(checks_enabled())}", "-I", os.path.dirname(codegen.__file__),
            "-include", HEADER)


def emulated_source(text):
    """``text`` with each ``__nram__ T name[N];`` declared as a slice of the task's NRAM arena."""
    return _NRAM_ARRAY.sub(lambda m: f'{m[1]}* const {m[2]} = ({m[1]}*)mj_emu_nram_array('
                                     f'sizeof({m[1]}) * ({m[3]}), "{m[2]}");', text)


def _read(path):
    with open(path) as handle:
        return handle.read()


class Toolchain:
    """Compiles the kernel units of backend ``name`` (rendered by ``renderer``, whose
    ``NRAM_CAPACITY`` the emulation enforces) and the emulated driver into the disk cache
    (``METAJIT_CACHE_DIR``/``name``) and loads them."""

    def __init__(self, name, renderer):
        self.header = codegen.prelude() + KERNEL_HELPERS
        self.host = host_compiler.HostToolchain(flags(renderer.NRAM_CAPACITY), self.header + _read(HEADER))
        self.cache = disk_cache.DiskCache(disk_cache.cache_root(name))
        self.symbol_prefix = f"mj_{name}_"
        self.libraries = {}

    def cache_key(self, source):
        """The cache key of one kernel's source (compiler, flags, headers included)."""
        return self.host.cache_key(source)

    def compile_unit(self, entries):
        """Build one unit of ``(key, source)`` entries: ``{key: path}`` or an error message."""
        return self.host.build_unit(self.cache, [(key, emulated_source(text)) for key, text in entries],
                                    self.header)

    def load(self, symbols_and_sources):
        """The host launch stubs (ctypes functions) of ``(symbol, source)`` pairs."""
        entries = [(symbol[len(self.symbol_prefix):], text) for symbol, text in symbols_and_sources]
        return batch_compile.build_and_load(self.cache, entries, self.compile_unit, self._stub,
                                            what="template_accel kernels")

    def _stub(self, path, key):
        library = self.libraries.get(path) or host_compiler.load_library(path)
        function = host_compiler.entry_point(library, self.symbol_prefix + key, path)
        self.libraries[path] = library
        function.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong)
        function.restype = ctypes.c_char_p
        return function

    def driver_path(self):
        """The emulated driver's shared library, built on first use."""
        text = _read(DRIVER)
        key = "driver_" + self.cache_key(text)
        paths = batch_compile.build(self.cache, [(key, text)],
                                    lambda entries: self.host.build_unit(self.cache, entries),
                                    what="template_accel driver")
        return paths[key]
