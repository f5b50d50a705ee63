"""Seeded shuffling. Each iteration (epoch) of a shuffling pipe draws a fresh order: from
its own seed and epoch number after ``set_seed(seed)`` (the same seed gives the same
sequence of orders), otherwise from numpy's global generator (which ``jt.set_seed``
seeds)::

    pipe = IterableWrapper(range(10)).shuffle(buffer_size=4).set_seed(0)
    first, second = list(pipe), list(pipe)  # two orders; the same two on every run

``set_shuffle(False)`` turns a shuffling pipe into a pass-through. `DataLoader` fixes each
epoch's order in the main process, so that all its worker processes agree on it.
"""
import random

import numpy as np

from ..errors import MetajitValueError
from .datapipe import IterDataPipe, check_count, functional_datapipe


class SeededShuffling:
    """What every shuffling pipe shares: the on/off switch, the seed, the epoch's generator.
    A subclass calls ``init_shuffling(seed)`` in its constructor and draws its order from
    ``epoch_random()`` once per iteration."""

    def init_shuffling(self, seed):
        self.shuffle_enabled = True
        self.set_seed(seed)

    def set_seed(self, seed):
        """Seed the orders: the n-th iteration from now uses an order fixed by ``(seed, n)``;
        ``None`` draws them from numpy's global generator. Returns the pipe."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise MetajitValueError(f"{type(self).__name__}.set_seed: the seed must be an int or None, got {seed!r}")
        self.seed, self.epoch, self.fixed_epoch_seed = seed, 0, None
        return self

    def set_shuffle(self, shuffle=True):
        """Shuffle (``True``) or pass the items through in order (``False``); returns the pipe."""
        self.shuffle_enabled = bool(shuffle)
        return self

    def _next_epoch_seed(self):
        if self.seed is None:
            return f"global:{np.random.randint(2**31)}"
        self.epoch += 1
        return f"seed:{self.seed}:{self.epoch - 1}"

    def fix_next_epoch(self, loader_seed=None):
        """Decide the next iteration's order now: from ``loader_seed`` (any hashable
        description, e.g. a DataLoader's ``(seed, position)``) if given, else as
        ``set_seed`` says. A copy of the pipe made after this (a forked worker) uses the
        same order."""
        self.fixed_epoch_seed = f"loader:{loader_seed}" if loader_seed is not None else self._next_epoch_seed()

    def epoch_random(self):
        """The generator of this iteration's order (a ``random.Random``)."""
        seed, self.fixed_epoch_seed = self.fixed_epoch_seed or self._next_epoch_seed(), None
        return random.Random(seed)


@functional_datapipe("shuffle")
class Shuffler(SeededShuffling, IterDataPipe):
    """The items in a random order, drawn from a buffer of ``buffer_size`` items (the whole
    source when it fits; a smaller buffer only moves items a limited distance)::

        sorted(IterableWrapper(range(5)).shuffle(seed=1)) == [0, 1, 2, 3, 4]  # True
    """

    def __init__(self, source_datapipe, buffer_size=10000, seed=None):
        self.source_datapipe = source_datapipe
        self.buffer_size = check_count("shuffle: buffer_size", buffer_size)
        self.init_shuffling(seed)

    def __iter__(self):
        if not self.shuffle_enabled:
            yield from self.source_datapipe
            return
        generator, buffer = self.epoch_random(), []
        for item in self.source_datapipe:
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            position = generator.randrange(self.buffer_size)
            yield buffer[position]
            buffer[position] = item
        generator.shuffle(buffer)
        yield from buffer

    def __len__(self):
        return len(self.source_datapipe)
