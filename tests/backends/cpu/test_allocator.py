"""The caching allocator: alignment, reuse by size class, bounded cache, flat peak memory."""
import gc

import numpy as np

import metajit as jt
from metajit.backends.cpu import allocator as cpu_allocator  # the process-wide pool
from metajit.backends.cpu.allocator import CachingAllocator, size_class


def test_buffers_are_64_byte_aligned():
    pool = CachingAllocator()
    for size in (0, 1, 63, 1000, 12345, 1 << 20):
        assert pool.allocate(size).address % 64 == 0


def test_size_classes_waste_at_most_a_quarter():
    for size in (513, 1000, 4097, 10 ** 6 + 1, 3 * 10 ** 7):
        capacity = size_class(size)
        assert size <= capacity <= size * 1.25 + 512


def test_freed_buffers_are_reused_and_cache_is_bounded():
    pool = CachingAllocator(limit_bytes=4096)
    first = pool.allocate(1000)
    pool.release(first)
    assert pool.allocate(900) is first
    big = pool.allocate(10_000)
    pool.release(big)
    assert pool.cached_bytes == 0


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
