"""Compile rendered CUDA kernels with NVRTC in batches, through the toolkit's disk cache.

The kernels of one realisation that miss the cache are compiled together in units
(`metajit.toolkit.batch_compile`: several units in parallel threads, progress for long
compiles); each unit is one NVRTC program (prelude + CUDA helpers + its kernels) whose
cubin is installed in ``METAJIT_CACHE_DIR``/``cuda`` under every kernel key it holds.
Keys cover the source, the NVRTC version, the options and the target architecture.
A compile error raises `MetajitCompileError` with the kept ``.cu`` path and NVRTC's log.
"""
import hashlib

from metajit.toolkit import batch_compile, codegen, disk_cache

from . import nvrtc, renderer

OPTIONS = nvrtc.DEFAULT_OPTIONS + ("-w",)  # generated code: warnings about unused prelude helpers are noise


class KernelCompiler:
    """Batch-compiles kernel sources for one architecture and returns their cubins."""

    def __init__(self, architecture):
        self.architecture = architecture
        self.nvrtc = nvrtc.NvrtcCompiler()
        self.cache = disk_cache.DiskCache(disk_cache.cache_root("cuda"), suffix=".cubin")
        self.header = codegen.prelude() + "\n" + renderer.helpers() + "\n"
        self.key_prefix = "\n".join([f"nvrtc {self.nvrtc.version}", architecture, " ".join(OPTIONS), self.header])
        self.images = {}

    def cache_key(self, text):
        """The key of one kernel's source (also what names its entry points)."""
        return hashlib.sha256((self.key_prefix + "\n" + text).encode()).hexdigest()[:40]

    def _compile_unit(self, entries):
        text = self.header + "\n\n".join(source for _, source in entries)
        unit = hashlib.sha256("".join(key for key, _ in entries).encode()).hexdigest()[:24]
        try:
            image, _ = self.nvrtc.compile_uncached(text, self.architecture, OPTIONS, program_name=f"{unit}.cu")
        except nvrtc.NvrtcFailure as failure:
            kept = self.cache.keep_source(unit + ".cu", text)
            return f"NVRTC could not compile generated CUDA kernels; source: {kept}\n{failure.log.strip()[:4000]}"
        return {key: self.cache.install_bytes(key, image) for key, _ in entries}

    def images_of(self, sources):
        """The cubin bytes holding each of ``sources`` (``(key, text)`` pairs)."""
        paths = batch_compile.build(self.cache, sources, self._compile_unit, what="CUDA kernels")
        images = []
        for key, _ in sources:
            path = paths[key]
            image = self.images.get(path)
            if image is None:
                with open(path, "rb") as handle:
                    image = self.images[path] = handle.read()
            images.append(image)
        return images
