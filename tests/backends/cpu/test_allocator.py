"""The cpu backend's host buffers: alignment, and flat memory over a training loop."""
import gc
import os

import numpy as np

import metajit as jt
from metajit.backends.cpu import allocator as cpu_allocator  # the process-wide pool
from metajit.backends.cpu.allocator import HostBuffer, host_allocator


def test_buffers_are_64_byte_aligned():
    pool = host_allocator()
    for size in (0, 1, 63, 1000, 12345, 1 << 20):
        buffer = pool.allocate(size)
        assert buffer.address % 64 == 0 and buffer.capacity >= size


def test_cache_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("METAJIT_CPU_CACHE_BYTES", "4096")
    assert host_allocator().limit_bytes == 4096


def test_default_cache_limit_is_a_quarter_of_memory_and_at_least_a_gib(monkeypatch):
    monkeypatch.delenv("METAJIT_CPU_CACHE_BYTES", raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert host_allocator().limit_bytes == max(1 << 30, physical // 4)


def test_a_view_shares_its_buffers_bytes():
    buffer = host_allocator().allocate(4096)
    view = HostBuffer.view(buffer, 128, 256)
    assert view.address == buffer.address + 128 and view.capacity == 256
    buffer.array[:] = 0
    view.array[:] = 7
    assert buffer.array[128:384].tolist() == [7] * 256
    assert buffer.array[127] == 0 and buffer.array[384] == 0


def test_training_loop_allocations_stay_flat():
    pool = cpu_allocator()
    w = jt.array(np.ones((64, 64), np.float32))
    peaks = []
    for step in range(40):
        loss = ((w @ w).tanh() ** 2).mean()
        w.assign(w - 0.01 * jt.grad(loss, w))
        w.sync()
        del loss
        gc.collect()
        if step in (10, 39):
            peaks.append(pool.allocated_bytes + pool.cached_bytes)
    assert peaks[1] <= peaks[0]
