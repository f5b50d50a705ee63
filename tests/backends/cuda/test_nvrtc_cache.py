"""NVRTC's compiles go through the disk cache like the host compiler's: each is compiled
once, and a lookup that runs while a cubin is being published waits for it."""
import threading

import pytest

from metajit.backends.cuda import nvrtc
from metajit.toolkit import disk_cache

pytestmark = pytest.mark.skipif(nvrtc.missing_nvrtc_reason() is not None, reason=str(nvrtc.missing_nvrtc_reason()))

SOURCE = 'extern "C" __global__ void twice(float *x) { x[threadIdx.x] *= 2.0f; }'


def test_a_lookup_while_a_cubin_is_published_finds_it_instead_of_deleting_it(tmp_path, monkeypatch):
    monkeypatch.setenv("METAJIT_CACHE_DIR", str(tmp_path))
    compiler = nvrtc.NvrtcCompiler()
    key = compiler.key(SOURCE, "sm_90", nvrtc.DEFAULT_OPTIONS, ())
    write, seen = disk_cache.atomic_write, {}

    def look_up_then_write(path, content):
        if path.endswith(key + ".sha256") and "thread" not in seen:  # the cubin is there, its checksum not yet
            def look_up():
                seen["path"] = compiler.cache.lookup(key)
            seen["thread"] = threading.Thread(target=look_up)
            seen["thread"].start()
            seen["thread"].join(0.3)  # (it waits for the cache lock until the compile has published)
        write(path, content)
    monkeypatch.setattr(disk_cache, "atomic_write", look_up_then_write)
    image, _ = compiler.compile(SOURCE, "sm_90")
    seen["thread"].join()
    assert seen["path"] == compiler.cache.path(key)
    assert open(seen["path"], "rb").read() == image
    compiled = []
    monkeypatch.setattr(compiler, "compile_uncached", lambda *arguments: compiled.append(1))
    assert compiler.compile(SOURCE, "sm_90")[0] == image and not compiled
