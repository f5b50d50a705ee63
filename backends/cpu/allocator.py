"""A caching allocator of 64-byte aligned host buffers, by size class.

Freed buffers go back to a free list of their size class (four classes per power of
two, so at most 25% is wasted) and are reused by the next allocation of that class;
the cache holds at most ``METAJIT_CPU_CACHE_BYTES`` (default 1 GiB), beyond which
freed buffers are returned to the system.
"""
import os

import numpy as np

ALIGNMENT = 64
SMALLEST_CLASS = 512


class HostBuffer:
    """An aligned allocation: ``array`` (uint8 view), its ``address`` and ``capacity``."""

    __slots__ = ("array", "address", "capacity")

    def __init__(self, capacity):
        raw = np.empty(capacity + ALIGNMENT, dtype=np.uint8)
        offset = (-raw.ctypes.data) % ALIGNMENT
        self.array = raw[offset:offset + capacity]
        self.address = raw.ctypes.data + offset
        self.capacity = capacity


def size_class(nbytes):
    """The capacity an allocation of ``nbytes`` is rounded up to."""
    if nbytes <= SMALLEST_CLASS:
        return SMALLEST_CLASS
    step = 1 << max(nbytes.bit_length() - 3, 0)
    return -(-nbytes // step) * step


class CachingAllocator:
    """Reuses freed buffers of the same size class; see the module docstring."""

    def __init__(self, limit_bytes=None):
        if limit_bytes is None:
            limit_bytes = int(os.environ.get("METAJIT_CPU_CACHE_BYTES", 1 << 30))
        self.limit_bytes = limit_bytes
        self.free_lists = {}
        self.capacities = {}  # request size -> size class (a training step asks the same sizes again)
        self.cached_bytes = 0
        self.allocated_bytes = 0

    def allocate(self, nbytes):
        """A buffer of at least ``nbytes`` bytes, reused from the cache when possible."""
        capacity = self.capacities.get(nbytes)
        if capacity is None:
            capacity = self.capacities[nbytes] = size_class(nbytes)
        free = self.free_lists.get(capacity)
        if free:
            self.cached_bytes -= capacity
            buffer = free.pop()
        else:
            buffer = HostBuffer(capacity)
        self.allocated_bytes += capacity
        return buffer

    def release(self, buffer):
        """Return ``buffer`` to its free list, or drop it when the cache is full."""
        self.allocated_bytes -= buffer.capacity
        if self.cached_bytes + buffer.capacity <= self.limit_bytes:
            self.free_lists.setdefault(buffer.capacity, []).append(buffer)
            self.cached_bytes += buffer.capacity

    def empty_cache(self):
        """Drop every cached free buffer."""
        self.free_lists.clear()
        self.cached_bytes = 0
