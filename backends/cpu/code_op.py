"""``jt.code`` operators on the cpu backend: the user's ``cpu_src`` compiled by the host
compiler into the backend's disk cache, one shared library per operator (keyed by its
sources, dtypes, ranks, data names and options — never by shapes or data values).

The entry point is `metajit.toolkit.inline_source.render_host_entry`'s; extra compiler
options (``-DNAME=1``, ``-I/path``) come from ``jt.code(..., compile_options=...)``.
"""
import ctypes
import functools

from metajit.toolkit import batch_compile, codegen, disk_cache, host_compiler, inline_source

FLAGS = ("-std=c++17", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared")
SYMBOL_PREFIX = "mj_code_"


@functools.lru_cache(maxsize=None)
def _toolchain(options):
    return host_compiler.HostToolchain(FLAGS + tuple(options), "jt.code")


@functools.lru_cache(maxsize=None)
def _cache():
    return disk_cache.DiskCache(disk_cache.cache_root("cpu"))


class CodeProgram:
    """A compiled ``jt.code`` operator: `run` calls it on buffers and returns the output
    shapes (smaller than the maxima where the code called ``set_shape``)."""

    def __init__(self, function, call):
        self.function = function
        _, body = call.source("cpu")
        self.origin = body.site or f"{body.origin}:{body.first_line}"

    def run(self, inputs, input_shapes, outputs, output_shapes, data):
        """Run on ``inputs``/``outputs`` buffers with their shapes and the ``data`` values
        (in ``call.data_names`` order); returns the outputs' final shapes."""
        return inline_source.run_entry(self.function, [b.address for b in inputs], input_shapes,
                                       [b.address for b in outputs], output_shapes, data, origin=self.origin)


def compile_code(call):
    """A `CodeProgram` for `metajit.toolkit.inline_source.CodeCall` ``call``'s ``cpu``
    source, or None when the call has none."""
    if call.source("cpu") is None:
        return None
    toolchain = _toolchain(call.options)
    template = inline_source.render_host_entry(call, "cpu", codegen.NAME_PLACEHOLDER)
    text, symbol = codegen.name_source(template, toolchain.cache_key, SYMBOL_PREFIX)
    key = symbol[len(SYMBOL_PREFIX):]
    cache = _cache()

    def failure_message(output, source_path):
        return inline_source.compile_error_message(call, "cpu", output, source_path, toolchain.command[0])

    def compile_unit(entries):
        return toolchain.build_unit(cache, entries, failure_message=failure_message)

    def load(path, _key):
        function = host_compiler.entry_point(host_compiler.load_library(path), symbol, path)
        function.argtypes = inline_source.ENTRY_ARGUMENT_TYPES
        function.restype = ctypes.c_int
        return function

    (function,) = batch_compile.build_and_load(cache, [(key, text)], compile_unit, load, what="jt.code operator")
    return CodeProgram(function, call)
