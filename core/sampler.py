"""Samplers: the order in which a dataset's items are read (Jittor's
``jittor.dataset`` samplers, PyTorch's ``torch.utils.data`` ones). Pass one as
``dataset.set_attrs(sampler=...)`` (Jittor) or ``DataLoader(dataset, sampler=...)`` /
``batch_sampler=...`` (PyTorch)::

    loader = jt.dataset.DataLoader(data, batch_size=8, sampler=RandomSampler(data))

Random samplers draw from ``generator`` (see `as_generator`: a ``numpy.random.Generator``,
an int seed or a ``torch.Generator``) or, by default, numpy's global generator, which
``jt.set_seed`` and ``jt.manual_seed`` seed.
"""
import collections.abc
import numbers

import numpy as np

from .errors import MetajitTypeError, MetajitValueError


def as_generator(generator):
    """A ``generator`` argument (of `DataLoader`, the random samplers, `random_split`) as a
    ``numpy.random.Generator``: one as it is, an int as its seed, an object with
    ``initial_seed()`` (a ``torch.Generator``) by that seed; ``None`` stays ``None`` (numpy's
    global generator). Equal generators draw alike::

        as_generator(torch.Generator().manual_seed(5))   # default_rng(5)
    """
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    if callable(getattr(generator, "initial_seed", None)):
        return np.random.default_rng(int(generator.initial_seed()))
    raise MetajitTypeError(f"generator must be a numpy.random.Generator, an int seed or a torch.Generator, "
                           f"got {type(generator).__name__}")


def _random(generator):
    return generator if generator is not None else np.random


def _check_draws(sampler, num_samples, replacement):
    """PyTorch's checks of a random sampler's ``num_samples`` and ``replacement``."""
    if not isinstance(replacement, bool):
        raise MetajitTypeError(f"{sampler}: replacement should be a boolean value, but got replacement={replacement!r}")
    if not isinstance(num_samples, numbers.Integral) or isinstance(num_samples, bool) or num_samples <= 0:
        raise MetajitValueError(f"{sampler}: num_samples should be a positive integer value, but got "
                                f"num_samples={num_samples!r}")


class Sampler:
    """Base class: iterate dataset indices; ``len`` is how many."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """``0, 1, ..., len(dataset) - 1``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        return iter(range(len(self.dataset)))

    def __len__(self):
        return len(self.dataset)


class RandomSampler(Sampler):
    """A random permutation of the dataset, or with ``replacement`` ``num_samples`` draws."""

    def __init__(self, dataset, replacement=False, num_samples=None, generator=None):
        _check_draws("RandomSampler", len(dataset) if num_samples is None else num_samples, replacement)
        if num_samples is not None and not replacement and num_samples > len(dataset):
            raise MetajitValueError(f"RandomSampler: num_samples={num_samples} exceeds the dataset's "
                                    f"{len(dataset)} items without replacement")
        self.dataset, self.replacement, self.generator = dataset, replacement, as_generator(generator)
        self.num_samples = num_samples

    def __len__(self):
        return len(self.dataset) if self.num_samples is None else self.num_samples

    def __iter__(self):
        random, count = _random(self.generator), len(self.dataset)
        if self.replacement:
            return iter(random.integers(0, count, len(self)).tolist() if hasattr(random, "integers")
                        else random.randint(0, count, len(self)).tolist())
        return iter(random.permutation(count)[:len(self)].tolist())


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in random order. Jittor's ``SubsetRandomSampler(dataset, indices)``
    and PyTorch's ``SubsetRandomSampler(indices, generator=None)`` are both accepted."""

    def __init__(self, *arguments, generator=None):
        if len(arguments) == 2 and not isinstance(arguments[1], collections.abc.Iterable):
            arguments, generator = arguments[:1], arguments[1]  # PyTorch's generator given by position
        self.indices = list(arguments[-1])
        self.generator = as_generator(generator)

    def __len__(self):
        return len(self.indices)

    def __iter__(self):
        order = _random(self.generator).permutation(len(self.indices))
        return iter([self.indices[k] for k in order])


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        _check_draws("WeightedRandomSampler", num_samples, replacement)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or not np.isfinite(weights).all() \
                or weights.sum() <= 0:
            raise MetajitValueError("WeightedRandomSampler: weights must be a non-empty 1-d sequence of "
                                    "finite non-negative numbers with a positive sum")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise MetajitValueError(f"WeightedRandomSampler: {num_samples} samples without replacement but "
                                    f"only {np.count_nonzero(weights)} nonzero weights")
        self.weights, self.num_samples = weights / weights.sum(), num_samples
        self.replacement, self.generator = replacement, as_generator(generator)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        chosen = _random(self.generator).choice(len(self.weights), self.num_samples, self.replacement, self.weights)
        return iter(chosen.tolist())


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of ``batch_size`` (the last shorter unless
    ``drop_last``)."""

    def __init__(self, sampler, batch_size, drop_last=False):
        if batch_size < 1:
            raise MetajitValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __len__(self):
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch


class DistributedSampler(Sampler):
    """PyTorch's ``DistributedSampler``: rank ``rank`` of ``num_replicas`` (by default this
    process's MPI rank and the world size, `metajit.distributed`) reads every
    ``num_replicas``-th index of one order shared by all ranks, padded by repeating its
    start (or cut, with ``drop_last``) so every rank reads ``len(self)`` items. With
    ``shuffle`` the order is a permutation drawn from ``seed + epoch``: call
    `set_epoch` at each epoch's start for a new one. Example::

        sampler = DistributedSampler(data)
        loader = DataLoader(data, batch_size=32, sampler=sampler)   # 32 per rank
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        from . import distributed
        num_replicas = distributed.world_size if num_replicas is None else num_replicas
        rank = distributed.rank if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise MetajitValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas - 1}] "
                                    f"(num_replicas={num_replicas})")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        count = len(dataset)
        self.num_samples = count // num_replicas if drop_last else -(-count // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """Use the permutation of ``seed + epoch`` from the next iteration on."""
        self.epoch = epoch

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        count = len(self.dataset)
        order = np.random.default_rng(self.seed + self.epoch).permutation(count) if self.shuffle else np.arange(count)
        if self.total_size > count:  # pad with the order's start, repeated as often as needed
            order = np.resize(order, self.total_size)
        return iter(order[:self.total_size][self.rank::self.num_replicas].tolist())
