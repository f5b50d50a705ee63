"""A size-class caching allocator over a backend's raw allocate/free functions.

Freed buffers go back to a free list of their size class (four classes per power of
two, so at most 25% is wasted) and are reused by the next allocation of that class; the
cache holds at most ``limit_bytes`` of freed buffers. Beyond that, buffers of the size
classes used least recently are returned with the raw free: a loop that moves on to new
sizes (another model, another batch size) keeps its own buffers cached instead of paying
a raw allocate and free (on a GPU, a device-wide synchronisation) at every step. With
``lowest_address_first``, a class hands out its lowest-addressed free buffer (buffers
have an ``address``) whatever order they were freed in: a computation repeated from the
same free buffers then gets the same addresses, so a device can replay it as recorded
(CUDA Graphs); otherwise the last freed (cheapest).

Reuse is *stream-ordered*: a buffer freed while queued work still reads it is handed
out only to work queued after that work — true for the host (launches run in order)
and for a device whose kernels and copies run on one stream. Example::

    allocator = CachingAllocator(lambda nbytes: driver.malloc(nbytes), driver.free,
                                 limit_bytes=1 << 30)
    buffer = allocator.allocate(1000)     # a 1024-byte class
    allocator.release(buffer)             # cached, not returned to the driver
"""
import collections
import contextlib
import heapq
import itertools
import threading

SMALLEST_CLASS = 512


def size_class(nbytes):
    """The capacity an allocation of ``nbytes`` is rounded up to."""
    if nbytes <= SMALLEST_CLASS:
        return SMALLEST_CLASS
    step = 1 << max(nbytes.bit_length() - 3, 0)
    return -(-nbytes // step) * step


class CachingAllocator:
    """Reuses freed buffers of the same size class; see the module docstring.

    ``raw_allocate(capacity)`` returns a new buffer (any object) of ``capacity`` bytes and
    may raise; ``raw_free(buffer)`` returns one. ``allocated_bytes`` counts live capacity,
    ``peak_bytes`` its high-water mark since the last `reset_peak`, ``cached_bytes`` the
    freed capacity kept for reuse. Safe to use from several threads.
    """

    def __init__(self, raw_allocate, raw_free, limit_bytes=1 << 30, lowest_address_first=False):
        self.raw_allocate = raw_allocate
        self.raw_free = raw_free
        self.limit_bytes = limit_bytes
        self.lowest_address_first = lowest_address_first
        self.free_lists = {}  # capacity -> buffers (a heap of (address, tie-break, buffer) when ordered)
        self.recent_classes = collections.OrderedDict()  # capacities, least recently used first
        self.tie_break = itertools.count()
        self.capacities = {}  # request size -> size class (a training step asks the same sizes again)
        self.live = {}        # buffer -> capacity
        self.cached_bytes = 0
        self.allocated_bytes = 0
        self.peak_bytes = 0
        self.lock = threading.Lock()

    def allocate(self, nbytes):
        """A buffer of at least ``nbytes`` bytes, reused from the cache when possible."""
        capacity = self.capacities.get(nbytes)
        if capacity is None:
            capacity = self.capacities[nbytes] = size_class(nbytes)
        with self.lock:
            self._used(capacity)
            free = self.free_lists.get(capacity)
            if free:
                self.cached_bytes -= capacity
                buffer = heapq.heappop(free)[2] if self.lowest_address_first else free.pop()
                return self._count(buffer, capacity)
        try:
            buffer = self.raw_allocate(capacity)
        except MemoryError:
            self.empty_cache()  # cached buffers of other classes may make room
            buffer = self.raw_allocate(capacity)
        with self.lock:
            return self._count(buffer, capacity)

    def _count(self, buffer, capacity):
        """Record ``buffer`` as live (the caller holds the lock); returns it."""
        self.live[buffer] = capacity
        self.allocated_bytes += capacity
        if self.allocated_bytes > self.peak_bytes:
            self.peak_bytes = self.allocated_bytes
        return buffer

    def release(self, buffer):
        """Return ``buffer`` to its free list; when the cache then holds more than its
        limit, buffers of the least recently used size classes go to the raw free (this
        one only if it alone is over the limit).

        Never raises for a buffer this allocator handed out (finalisers call it, also at
        interpreter exit)."""
        with self.lock:
            capacity = self.live.pop(buffer)
            self.allocated_bytes -= capacity
            if capacity > self.limit_bytes:
                evicted = [buffer]
            else:
                self._used(capacity)
                free = self.free_lists.setdefault(capacity, [])
                if self.lowest_address_first:
                    heapq.heappush(free, (buffer.address, next(self.tie_break), buffer))
                else:
                    free.append(buffer)
                self.cached_bytes += capacity
                evicted = self._evict_beyond_limit() if self.cached_bytes > self.limit_bytes else []
        for entry in evicted:
            self.raw_free(entry)

    def _used(self, capacity):
        """Mark size class ``capacity`` the most recently used (the caller holds the lock)."""
        try:
            self.recent_classes.move_to_end(capacity)
        except KeyError:
            self.recent_classes[capacity] = None

    def _evict_beyond_limit(self):
        """Take cached buffers of the least recently used classes out until the cache is
        within its limit (the caller holds the lock and frees them); returns them."""
        evicted = []
        for capacity in self.recent_classes:
            free = self.free_lists.get(capacity)
            while free and self.cached_bytes > self.limit_bytes:
                entry = free.pop()  # the last element: a heap stays a heap
                evicted.append(entry[2] if self.lowest_address_first else entry)
                self.cached_bytes -= capacity
            if not free:
                self.free_lists.pop(capacity, None)
            if self.cached_bytes <= self.limit_bytes:
                break
        return evicted

    def empty_cache(self):
        """Return every cached free buffer with the raw free."""
        with self.lock:
            free_lists, self.free_lists = self.free_lists, {}
            self.cached_bytes = 0
        for buffers in free_lists.values():
            for entry in buffers:
                self.raw_free(entry[2] if self.lowest_address_first else entry)

    def reset_peak(self):
        """Start a new high-water mark at the bytes live now."""
        self.peak_bytes = self.allocated_bytes


class Workspace:
    """Scratch memory shared by the library programs of one thread (oneDNN reorder buffers,
    a cuDNN workspace): programs run one at a time per thread (per stream), so one buffer,
    grown to the largest request, serves all of them instead of one buffer per program.

    ``allocator`` is a `CachingAllocator`; `reserve` returns a buffer of at least
    ``nbytes`` that stays valid until the next larger `reserve` on the same thread. Example::

        workspace = Workspace(allocator)
        buffer = workspace.reserve(program.scratch_bytes)
    """

    def __init__(self, allocator):
        self.allocator = allocator
        self.local = threading.local()

    def reserve(self, nbytes, grow=True):
        """This thread's scratch buffer, grown (the old one released) to at least ``nbytes``;
        None instead of growing when ``grow`` is False (a caller that queued launches on the
        present buffer keeps it valid)."""
        current = getattr(self.local, "buffer", None)
        if current is not None and self.local.nbytes >= nbytes:
            return current
        if not grow:
            return None
        if current is not None:
            self.allocator.release(current)
        self.local.buffer, self.local.nbytes = self.allocator.allocate(nbytes), nbytes
        return self.local.buffer

    def current(self):
        """This thread's scratch buffer as it is now (None before its first `reserve`)."""
        return getattr(self.local, "buffer", None)


# Buffer versions: a backend buffer with a ``version`` attribute (the cpu's host buffers)
# gets a new one whenever it is chosen to receive new contents, so that a library program
# may keep data derived from it (a weight in a library's blocked layout) while it holds.
_write_versions = itertools.count(1)
_sequences = threading.local()


def mark_written(raw):
    """Give ``raw`` a new version: it is about to receive new contents."""
    if hasattr(raw, "version"):
        raw.version = next(_write_versions)


def begin_sequence():
    """Note (per thread) that the launches queued from now on are one new sequence."""
    _sequences.start = next(_write_versions)


def settled_version(raw):
    """``raw``'s version when an earlier launch sequence wrote it (its contents then stay
    as they are while the version holds), else None: a buffer chosen for the current
    sequence may still hold its previous contents when a launch reads it."""
    version = getattr(raw, "version", None)
    start = getattr(_sequences, "start", None)
    if version is None or start is None or version >= start:
        return None
    return version


class KeptCopies:
    """Data a library program derives from an input buffer (a weight in the library's
    blocked layout, its Winograd transform), kept per source buffer while that buffer holds
    the same contents (its `settled_version`): inference derives each weight's copy once
    instead of at every call.

    A copy is made on the second call with the same contents, so training, whose weights
    change at every step, never holds one. One program serves every call of its shape, so
    copies are kept per source buffer, at most ``limit``, each ``nbytes`` from
    ``allocator``. Example::

        kept = copies.lookup(weights)
        if kept is None:          # derive into scratch, as without a cache
            ...
        else:
            buffer, current = kept  # derive into ``buffer`` unless it is ``current``

    A launch queued to run later (in a backend's launch sequence) reads a current copy
    through `pin`: until the thread calls `unpin_kept_copies`, the copy is not reused for
    another source, even when another thread's call drops it.

    ``guard`` is the lock under which the callers ask and derive (their program's lock: no
    one pins a copy half derived); `recorded_answers` logs what `pin` and
    `derives_in_scratch` answered, for a caller that asks again under ``guard`` later.
    """

    def __init__(self, nbytes, allocator, limit=64, guard=None):
        self.nbytes, self.allocator, self.limit = nbytes, allocator, limit
        self.guard = guard if guard is not None else threading.Lock()
        self.seen = {}  # source address -> version at its last call
        self.kept = {}  # source address -> (version, buffer holding the derived copy)
        self.pins = {}  # id(buffer) -> queued launches reading it
        self.dropped = {}  # id(buffer) -> a pinned buffer no longer kept: released when unpinned
        self.lock = threading.Lock()

    def pin(self, source):
        """The buffer holding the copy derived from ``source``'s present contents, kept
        from reuse until this thread's `unpin_kept_copies`; None when there is no such copy
        (nothing is derived or allocated: `lookup` does that)."""
        with self.lock:
            address = source.address
            kept = self.kept.get(address)
            if kept is None or kept[0] != settled_version(source):
                return _answered(self, KeptCopies.pin, source, None)
            self.kept[address] = self.kept.pop(address)  # the most recently used
            buffer = kept[1]
            self.pins[id(buffer)] = self.pins.get(id(buffer), 0) + 1
        pinned = getattr(_pins, "held", None)
        if pinned is None:
            pinned = _pins.held = []
        pinned.append((self, buffer))
        return _answered(self, KeptCopies.pin, source, buffer)

    def peek(self, question, source):
        """What ``question`` (`pin` or `derives_in_scratch`) would answer for ``source``
        now, with none of its effects: nothing pinned, dropped or noted as seen."""
        with self.lock:
            _, _, kept, current, seen = self._standing(source)
            if question is KeptCopies.pin:
                return kept[1] if current else None
            return not current and not seen

    def hold(self, buffer):
        """Keep ``buffer`` (a copy `pin` gave) from being released until `release`: a
        caller that keeps a launch built on it (a kept batch) reads it again later."""
        with self.lock:
            self.pins[id(buffer)] = self.pins.get(id(buffer), 0) + 1

    def release(self, buffer):
        """Let go of a `hold` on ``buffer``."""
        self._unpin(buffer)

    def holds_current(self, source, buffer):
        """Whether ``buffer`` (held: `hold`) is still the copy kept for ``source``'s present
        contents, as `pin` would find it. It takes no lock: a held copy is never rewritten
        nor released, and a copy another call is deriving is another buffer."""
        kept = self.kept.get(source.address)
        return kept is not None and kept[1] is buffer and kept[0] == settled_version(source)

    def _unpin(self, buffer):
        with self.lock:
            count = self.pins.pop(id(buffer)) - 1
            if count:
                self.pins[id(buffer)] = count
            elif self.dropped.pop(id(buffer), None) is not None:
                self.allocator.release(buffer)

    def _drop(self, buffer):
        """Stop keeping ``buffer`` (the lock held): released now, or once no queued launch reads it."""
        if id(buffer) in self.pins:
            self.dropped[id(buffer)] = buffer
        else:
            self.allocator.release(buffer)

    def forget(self, source):
        """Drop the copy kept for ``source`` (a derivation into it did not finish)."""
        with self.lock:
            kept = self.kept.pop(source.address, None)
            if kept is not None:
                self._drop(kept[1])

    def lookup(self, source):
        """For this call on buffer ``source``: ``(buffer, current)`` when a copy is kept
        (``current``: it already holds the data derived from the present contents, else the
        caller derives into it now), or None when the caller derives into its own scratch."""
        with self.lock:
            address, version = source.address, settled_version(source)
            kept = self.kept.pop(address, None)
            if kept is not None:
                if kept[0] == version:
                    self.kept[address] = kept
                    return kept[1], True
                self._drop(kept[1])
            result = None
            if version is not None and self.seen.get(address) == version:
                if len(self.kept) >= self.limit:
                    self._drop(self.kept.pop(next(iter(self.kept)))[1])
                buffer = self.allocator.allocate(self.nbytes)
                self.kept[address] = (version, buffer)
                result = buffer, False
            self._note_seen(address, version)
            return result

    def derives_in_scratch(self, source):
        """For a call on buffer ``source`` that `pin` found no current copy for: True when
        `lookup` would answer None (the caller derives into its own scratch: training, whose
        weights change at every step), with the same bookkeeping, so the call may run
        queued; False when `lookup` would make or find a copy (the caller then calls it).
        The sighting counts when asked: a caller answered True must queue its launch."""
        with self.lock:
            address, version, kept, current, seen = self._standing(source)
            if current or seen:
                return _answered(self, KeptCopies.derives_in_scratch, source, False)
            if kept is not None:
                self._drop(self.kept.pop(address)[1])
            self._note_seen(address, version)
            return _answered(self, KeptCopies.derives_in_scratch, source, True)

    def _standing(self, source):
        """``(address, settled version, kept entry, whether that entry is current, whether a
        call saw this version before)`` of ``source`` (the lock held)."""
        address, version = source.address, settled_version(source)
        kept = self.kept.get(address)
        return (address, version, kept, kept is not None and kept[0] == version,
                version is not None and self.seen.get(address) == version)

    def _note_seen(self, address, version):
        """Remember that a call found ``address`` at ``version`` (the lock held)."""
        self.seen.pop(address, None)
        self.seen[address] = version
        if len(self.seen) > 4 * self.limit:
            del self.seen[next(iter(self.seen))]


_pins = threading.local()  # per thread: (KeptCopies, buffer) pinned by launches it queued
_answers = threading.local()  # per thread: the log of `recorded_answers`, or None


def _answered(copies, question, source, answer):
    """``answer``, logged where this thread records answers (`recorded_answers`)."""
    log = getattr(_answers, "log", None)
    if log is not None:
        log.append((copies, question, source, answer))
    return answer


@contextlib.contextmanager
def recorded_answers():
    """Log, while the block runs on this thread, every answer of `KeptCopies.pin` and
    `KeptCopies.derives_in_scratch` as ``(copies, question, source, answer)``: asking
    ``question(copies, source)`` again under ``copies.guard`` tells whether the data a
    launch was built on is still current. Yields the log::

        with recorded_answers() as log:
            calls = program.native_calls(inputs, outputs)
    """
    outer = getattr(_answers, "log", None)
    _answers.log = log = []
    try:
        yield log
    finally:
        _answers.log = outer


def unpin_kept_copies():
    """Let go of the copies this thread's queued launches pinned (`KeptCopies.pin`): call
    it once they have run, or will not."""
    pinned = getattr(_pins, "held", None)
    if pinned:
        _pins.held = []
        for copies, buffer in pinned:
            copies._unpin(buffer)
