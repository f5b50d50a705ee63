"""The toolkit's batch compile driver: cached keys skip compiling, units run in parallel,
duplicates compile once, errors name the user's line, long compiles report progress."""
import threading
import time

import pytest

import metajit as jt
from metajit.toolkit import batch_compile
from metajit.toolkit.disk_cache import DiskCache


class FakeToolchain:
    """compile_unit that 'builds' each source as its artefact bytes and records units."""

    def __init__(self, cache, delay=0.0, fail_on=None):
        self.cache, self.delay, self.fail_on = cache, delay, fail_on
        self.units, self.threads = [], set()

    def __call__(self, entries):
        self.units.append([key for key, _ in entries])
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        if any(source == self.fail_on for _, source in entries):
            return f"compilation failed: error in {self.fail_on}"
        return {key: self.cache.install_bytes(key, source.encode()) for key, source in entries}


def test_missing_entries_compile_in_units_and_cached_ones_are_reused(tmp_path):
    cache = DiskCache(str(tmp_path))
    toolchain = FakeToolchain(cache, delay=0.05)
    entries = [(f"k{i}", f"source {i}") for i in range(10)] + [("k0", "source 0")]
    paths = batch_compile.build(cache, entries, toolchain, kernels_per_unit=3, workers=2)
    assert sorted(paths) == [f"k{i}" for i in range(10)]
    assert sorted(len(u) for u in toolchain.units) == [1, 3, 3, 3]
    assert sum(u.count("k0") for u in toolchain.units) == 1
    assert len(toolchain.threads) == 2
    again = FakeToolchain(cache)
    assert batch_compile.build(cache, entries, again) == paths and again.units == []


def test_compile_error_is_raised_in_the_calling_thread_with_the_user_line(tmp_path):
    cache = DiskCache(str(tmp_path))
    with pytest.raises(jt.MetajitCompileError, match="error in bad.*test_batch_compile.py"):
        batch_compile.build(cache, [("a", "good"), ("b", "bad")], FakeToolchain(cache, fail_on="bad"),
                            kernels_per_unit=1)


def test_long_compiles_report_progress_once(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_compile, "PROGRESS_AFTER_SECONDS", 0.0)
    cache = DiskCache(str(tmp_path))
    messages = []
    batch_compile.build(cache, [("a", "x"), ("b", "y")], FakeToolchain(cache, delay=0.6),
                        what="test kernels", kernels_per_unit=1, workers=1, progress=messages.append)
    assert messages == ["metajit: compiling 2 test kernels (2 unit(s))..."]


def test_an_artefact_that_does_not_load_is_rebuilt_once(tmp_path):
    cache = DiskCache(str(tmp_path))
    toolchain = FakeToolchain(cache)
    batch_compile.build(cache, [("a", "one"), ("b", "two")], toolchain)
    failures = {"b": 1}

    def load(path, key):
        if failures.get(key):
            failures[key] -= 1
            raise jt.MetajitCompileError(f"cannot load {path}")
        return open(path, "rb").read()
    rebuilt = FakeToolchain(cache)
    assert batch_compile.build_and_load(cache, [("a", "one"), ("b", "two")], rebuilt, load) == [b"one", b"two"]
    assert rebuilt.units == [["b"]]
    failures["a"] = 2
    with pytest.raises(jt.MetajitCompileError, match="cannot load"):
        batch_compile.build_and_load(cache, [("a", "one")], rebuilt, load)
