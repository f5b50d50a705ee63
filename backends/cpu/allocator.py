"""64-byte aligned host buffers, cached by the toolkit's size-class allocator.

The cache holds at most ``METAJIT_CPU_CACHE_BYTES`` of freed buffers (default: a quarter
of the machine's memory, at least 1 GiB: enough to keep a training step's arena of
intermediates, whose pages would otherwise be mapped and faulted in again at every step);
beyond that, freed buffers are left to numpy's memory management.
"""
import os

import numpy as np

from metajit.toolkit.allocator import CachingAllocator

ALIGNMENT = 64


def aligned(nbytes):
    """``nbytes`` rounded up to a multiple of `ALIGNMENT` (so the next part starts aligned)."""
    return -(-nbytes // ALIGNMENT) * ALIGNMENT


class HostBuffer:
    """An aligned allocation: ``array`` (uint8 view), its ``address`` and ``capacity``;
    ``version`` changes whenever its contents are about to be replaced
    (`metajit.toolkit.allocator.mark_written`), so derived data can be cached by it;
    ``is_view``: a part of another buffer (`view`: the executor's arena places there only
    intermediates that no one reads after their realisation)."""

    __slots__ = ("array", "address", "capacity", "version", "is_view")

    def __init__(self, capacity):
        raw = np.empty(capacity + ALIGNMENT, dtype=np.uint8)
        offset = (-raw.ctypes.data) % ALIGNMENT
        self.array = raw[offset:offset + capacity]
        self.address = raw.ctypes.data + offset
        self.capacity = capacity
        self.version = 0
        self.is_view = False

    @classmethod
    def view(cls, buffer, offset, nbytes):
        """A `HostBuffer` over bytes ``[offset, offset + nbytes)`` of ``buffer`` (sharing
        its memory; nothing is allocated)."""
        view = cls.__new__(cls)
        view.array = buffer.array[offset:offset + nbytes]
        view.address = buffer.address + offset
        view.capacity = nbytes
        view.version = 0
        view.is_view = True
        return view


def _drop(buffer):
    """Raw free of a `HostBuffer`: numpy releases the memory with the last reference."""


def default_cache_bytes():
    """The default cache limit: a quarter of the machine's memory, at least 1 GiB."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not reported on this platform
        physical = 0
    return max(1 << 30, physical // 4)


def host_allocator(limit_bytes=None):
    """A `CachingAllocator` of `HostBuffer` s (limit: ``METAJIT_CPU_CACHE_BYTES``)."""
    if limit_bytes is None:
        limit_bytes = int(os.environ.get("METAJIT_CPU_CACHE_BYTES", default_cache_bytes()))
    return CachingAllocator(HostBuffer, _drop, limit_bytes)
