"""Samplers: the order in which a dataset's items are read (Jittor's
``jittor.dataset`` samplers, PyTorch's ``torch.utils.data`` ones). Pass one as
``dataset.set_attrs(sampler=...)`` (Jittor) or ``DataLoader(dataset, sampler=...)`` /
``batch_sampler=...`` (PyTorch)::

    loader = jt.dataset.DataLoader(data, batch_size=8, sampler=RandomSampler(data))

Random samplers draw from ``generator`` (a ``numpy.random.Generator``) or, by default,
numpy's global generator, which ``jt.set_seed`` seeds.
"""
import numpy as np

from .errors import MetajitValueError


def _random(generator):
    return generator if generator is not None else np.random


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
        if num_samples is not None and not replacement and num_samples > len(dataset):
            raise MetajitValueError(f"RandomSampler: num_samples={num_samples} exceeds the dataset's "
                                    f"{len(dataset)} items without replacement")
        self.dataset, self.replacement, self.generator = dataset, replacement, generator
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
    and PyTorch's ``SubsetRandomSampler(indices)`` are both accepted."""

    def __init__(self, *arguments, generator=None):
        self.indices = list(arguments[-1])
        self.generator = generator

    def __len__(self):
        return len(self.indices)

    def __iter__(self):
        order = _random(self.generator).permutation(len(self.indices))
        return iter([self.indices[k] for k in order])


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or not np.isfinite(weights).all() \
                or weights.sum() <= 0:
            raise MetajitValueError("WeightedRandomSampler: weights must be a non-empty 1-d sequence of "
                                    "finite non-negative numbers with a positive sum")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise MetajitValueError(f"WeightedRandomSampler: {num_samples} samples without replacement but "
                                    f"only {np.count_nonzero(weights)} nonzero weights")
        self.weights, self.num_samples = weights / weights.sum(), num_samples
        self.replacement, self.generator = replacement, generator

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
