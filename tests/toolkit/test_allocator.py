"""The toolkit's caching allocator over raw allocate/free functions."""
import itertools
import threading

import pytest

from metajit.toolkit.allocator import (CachingAllocator, KeptCopies, Workspace, begin_sequence, mark_written,
                                      recorded_answers, size_class, unpin_kept_copies)
from tests.threads import run_in_threads


class Block:
    """A raw allocation of ``size`` bytes."""

    def __init__(self, size):
        self.size = size


class RawMemory:
    """Raw allocate/free that record every call (buffers are distinct objects)."""

    def __init__(self, fail_above=None):
        self.allocations, self.frees = [], []
        self.fail_above = fail_above

    def allocate(self, nbytes):
        live = sum(self.allocations) - sum(self.frees)
        if self.fail_above is not None and live + nbytes > self.fail_above:
            raise MemoryError("out of device memory")
        self.allocations.append(nbytes)
        return Block(nbytes)

    def free(self, buffer):
        self.frees.append(buffer.size)


def pool_over(raw, limit_bytes=1 << 20):
    return CachingAllocator(raw.allocate, raw.free, limit_bytes)


def test_size_classes_waste_at_most_a_quarter():
    for size in (513, 1000, 4097, 10 ** 6 + 1, 3 * 10 ** 7):
        capacity = size_class(size)
        assert size <= capacity <= size * 1.25 + 512
    assert size_class(0) == size_class(1) == 512


def test_freed_buffers_are_reused_by_the_same_size_class():
    raw = RawMemory()
    pool = pool_over(raw)
    first = pool.allocate(1000)
    pool.release(first)
    assert pool.allocate(900) is first
    assert raw.allocations == [1024] and raw.frees == []


def test_cache_beyond_its_limit_returns_buffers_with_the_raw_free():
    raw = RawMemory()
    pool = pool_over(raw, limit_bytes=4096)
    big = pool.allocate(10_000)
    pool.release(big)
    assert pool.cached_bytes == 0 and raw.frees == [big.size]


def test_peak_and_live_bytes_are_counted():
    pool = pool_over(RawMemory())
    a, b = pool.allocate(1024), pool.allocate(2048)
    pool.release(a)
    assert pool.allocated_bytes == 2048 and pool.peak_bytes == 3072
    pool.reset_peak()
    assert pool.peak_bytes == 2048
    pool.release(b)
    assert pool.allocated_bytes == 0 and pool.cached_bytes == 3072


def test_out_of_memory_empties_the_cache_and_retries():
    raw = RawMemory(fail_above=3000)
    pool = pool_over(raw)
    pool.release(pool.allocate(2048))   # cached, still held from the raw allocator
    buffer = pool.allocate(1500)        # needs the cached 2048 bytes returned first
    assert buffer.size == size_class(1500) and raw.frees == [2048]
    with pytest.raises(MemoryError):
        pool.allocate(4000)


def test_lowest_address_first_repeats_the_same_buffers_whatever_the_free_order():
    addresses = iter(range(0, 1 << 30, 4096))

    class Addressed(Block):
        def __init__(self, size):
            super().__init__(size)
            self.address = next(addresses)
    pool = CachingAllocator(Addressed, lambda buffer: None, 1 << 20, lowest_address_first=True)
    first = [pool.allocate(1000) for _ in range(4)]
    for order in (first, first[::-1], [first[2], first[0], first[3], first[1]]):
        for buffer in order:
            pool.release(buffer)
        assert [pool.allocate(1000) for _ in range(4)] == first
    for buffer in first:
        pool.release(buffer)
    pool.empty_cache()
    assert pool.cached_bytes == 0 and pool.free_lists == {}


class Versioned:
    """A source buffer with an address and a write version (`mark_written` renews it)."""

    def __init__(self, address):
        self.address, self.version = address, None


def copies_of_settled_weights():
    """``(pool, copies, weights)``: copies (at most two kept) of a source whose contents an
    earlier launch sequence wrote."""
    pool = pool_over(RawMemory())
    copies = KeptCopies(1000, pool, limit=2)
    weights = Versioned(4096)
    mark_written(weights)
    begin_sequence()
    return pool, copies, weights


def test_kept_copies_are_made_on_the_second_call_and_dropped_when_the_source_changes():
    raw = RawMemory()
    pool = pool_over(raw)
    copies = KeptCopies(1000, pool, limit=2)
    weights = Versioned(4096)
    mark_written(weights)
    begin_sequence()
    assert copies.lookup(weights) is None  # first sighting: derive into scratch
    buffer, current = copies.lookup(weights)
    assert not current  # the caller fills the copy now
    assert copies.lookup(weights) == (buffer, True)
    mark_written(weights)
    assert copies.lookup(weights) is None  # written in this sequence: not settled yet
    begin_sequence()
    assert copies.lookup(weights) is None  # a new version: seen once
    assert copies.lookup(weights)[1] is False
    assert pool.allocated_bytes == size_class(1000)


def test_derives_in_scratch_answers_as_lookup_would_and_keeps_its_bookkeeping():
    """A queued launch asks `derives_in_scratch` where `pin` found no copy: True where
    `lookup` would answer None (the weights of a training step, new at every step), with
    the sighting recorded, so a second call with the same contents still makes the copy."""
    pool = pool_over(RawMemory())
    copies = KeptCopies(1000, pool, limit=2)
    weights = Versioned(4096)
    for _ in range(3):  # training: new contents at every step
        mark_written(weights)
        begin_sequence()
        assert copies.pin(weights) is None and copies.derives_in_scratch(weights)
    assert pool.allocated_bytes == 0
    assert not copies.derives_in_scratch(weights)  # the same contents again: this call makes the copy
    buffer, current = copies.lookup(weights)
    assert not current and copies.pin(weights) is buffer
    unpin_kept_copies()
    assert not copies.derives_in_scratch(weights)  # current: pin gives it
    mark_written(weights)
    begin_sequence()
    assert copies.derives_in_scratch(weights) and copies.pin(weights) is None
    assert pool.allocated_bytes == 0  # the stale copy was dropped


def test_kept_copies_stay_within_their_limit():
    pool = pool_over(RawMemory())
    copies = KeptCopies(1000, pool, limit=2)
    sources = [Versioned(4096 * i) for i in range(1, 5)]
    for source in sources:
        mark_written(source)
    begin_sequence()
    for _ in range(3):
        for source in sources:
            copies.lookup(source)
    assert len(copies.kept) == 2 and pool.allocated_bytes == 2 * size_class(1000)


def test_pin_gives_only_a_copy_derived_from_the_present_contents_and_forget_drops_it():
    pool, copies, weights = copies_of_settled_weights()
    assert copies.pin(weights) is None and copies.lookup(weights) is None  # pin derives nothing
    buffer, _ = copies.lookup(weights)
    assert copies.pin(weights) is buffer
    unpin_kept_copies()
    mark_written(weights)
    begin_sequence()
    assert copies.pin(weights) is None  # the contents changed
    copies.lookup(weights)
    buffer, current = copies.lookup(weights)
    assert not current
    copies.forget(weights)  # the derivation did not finish
    assert copies.pin(weights) is None and pool.allocated_bytes == 0
    assert copies.lookup(weights)[1] is False  # derived again


def one_copy_kept_of_two_sources():
    """``(pool, copies, first, second, kept)``: copies kept for one source at most, the
    first source's made (``kept``), the second source's contents settled too."""
    pool = pool_over(RawMemory())
    copies = KeptCopies(1000, pool, limit=1)
    first, second = Versioned(4096), Versioned(8192)
    for source in (first, second):
        mark_written(source)
    begin_sequence()
    copies.lookup(first)
    kept, _ = copies.lookup(first)
    return pool, copies, first, second, kept


def test_a_pinned_copy_dropped_by_another_call_is_released_only_once_unpinned():
    pool, copies, first, second, kept = one_copy_kept_of_two_sources()
    assert copies.pin(first) is kept  # a queued launch will read it
    copies.lookup(second)
    replacement, _ = copies.lookup(second)  # evicts first's copy (limit 1) while it is pinned
    assert replacement is not kept and pool.allocated_bytes == 2 * size_class(1000)
    unpin_kept_copies()  # the launch ran
    assert pool.allocated_bytes == size_class(1000)
    assert copies.pin(first) is None


def test_a_held_copy_stays_current_until_its_source_changes_and_outlives_a_drop_until_released():
    """A kept launch batch holds the copies it reads (`hold`) and checks them without a
    lock at each use (`holds_current`); a held copy another call drops is released only
    once the batch lets go of it."""
    pool, copies, first, second, kept = one_copy_kept_of_two_sources()
    copies.hold(kept)
    assert copies.holds_current(first, kept) and not copies.holds_current(second, kept)
    copies.lookup(second)
    copies.lookup(second)  # evicts first's copy (limit 1) while it is held
    assert not copies.holds_current(first, kept) and pool.allocated_bytes == 2 * size_class(1000)
    copies.release(kept)
    assert pool.allocated_bytes == size_class(1000)
    mark_written(second)
    begin_sequence()
    replacement = copies.pin(second) or copies.lookup(second)
    assert replacement is None  # the new contents are seen once: nothing kept for them yet
    held, _ = copies.lookup(second)
    copies.hold(held)
    assert copies.holds_current(second, held)
    mark_written(second)  # written again: the held copy is stale, though still kept
    assert not copies.holds_current(second, held)
    copies.release(held)


def test_recorded_answers_log_what_pin_and_derives_in_scratch_answered_on_this_thread():
    pool, copies, weights = copies_of_settled_weights()
    with recorded_answers() as log:
        assert copies.pin(weights) is None and copies.derives_in_scratch(weights)
        copies.lookup(weights)  # (not a question a queued launch asks)
        other = Versioned(8192)
        run_in_threads(lambda _: copies.derives_in_scratch(other), 1)  # logged on its thread only
    assert log == [(copies, KeptCopies.pin, weights, None), (copies, KeptCopies.derives_in_scratch, weights, True)]
    buffer, _ = copies.lookup(weights)
    with recorded_answers() as log:
        assert copies.pin(weights) is buffer
    unpin_kept_copies()
    assert log == [(copies, KeptCopies.pin, weights, buffer)]
    assert isinstance(copies.guard, type(threading.Lock()))  # asked again under it


def test_workspace_reserve_without_growing_keeps_the_buffer_it_handed_out():
    pool = pool_over(RawMemory())
    workspace = Workspace(pool)
    assert workspace.reserve(100, grow=False) is None  # nothing reserved yet
    small = workspace.reserve(100)
    assert workspace.reserve(64, grow=False) is small
    assert workspace.reserve(5000, grow=False) is None and workspace.reserve(64) is small
    assert workspace.reserve(5000) is not small


@pytest.mark.parametrize("ordered", [False, True])
def test_a_full_cache_returns_the_least_recently_used_classes_not_the_buffers_in_use(ordered):
    raw = RawMemory()
    addresses = itertools.count(4096, 4096)

    def allocate(nbytes):
        block = raw.allocate(nbytes)
        block.address = next(addresses)
        return block
    pool = CachingAllocator(allocate, raw.free, limit_bytes=8192, lowest_address_first=ordered)
    old = [pool.allocate(2048) for _ in range(4)]  # a finished loop's buffers fill the cache
    for buffer in old:
        pool.release(buffer)
    assert pool.cached_bytes == 8192 and raw.frees == []
    for step in range(5):  # a new loop of other sizes: its buffers stay cached after the first step
        current = [pool.allocate(3072), pool.allocate(1024)]
        for buffer in current:
            pool.release(buffer)
    assert raw.allocations.count(3072) == 1 and raw.allocations.count(1024) == 1
    assert sorted(raw.frees) == [2048, 2048]  # the old class made room, once
    assert pool.cached_bytes == 8192
    assert pool.allocate(3000) is current[0]
