"""The cpu backend's host buffers: alignment, and flat memory over a training loop."""
import gc

import numpy as np

import metajit as jt
from metajit.backends.cpu import allocator as cpu_allocator  # the process-wide pool
from metajit.backends.cpu.allocator import host_allocator


def test_buffers_are_64_byte_aligned():
    pool = host_allocator()
    for size in (0, 1, 63, 1000, 12345, 1 << 20):
        buffer = pool.allocate(size)
        assert buffer.address % 64 == 0 and buffer.capacity >= size


def test_cache_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("METAJIT_CPU_CACHE_BYTES", "4096")
    assert host_allocator().limit_bytes == 4096


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
