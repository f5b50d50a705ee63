"""Datasets and loaders: Jittor's ``Dataset.set_attrs(batch_size=..., shuffle=...)`` iterated
directly, and PyTorch's ``DataLoader(dataset, ...)``. Batches are stacked into Vars;
``num_workers > 0`` loads batches in worker processes (order kept); shuffling is
deterministic for a given ``seed`` and epoch.
"""
import multiprocessing

import numpy as np

from .errors import MetajitValueError
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .var import Var


def collate(items):
    """Stack a list of samples (arrays, numbers, Vars, or tuples/dicts of them) into Vars."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        return type(first)(collate([item[k] for item in items]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: collate([item[key] for item in items]) for key in first}
    if isinstance(first, Var):
        return Var(np.stack([item.numpy() for item in items]))
    return Var(np.stack([np.asarray(item) for item in items]))


def _load_batch(dataset, indices):
    return [dataset[int(i)] for i in indices]


class _BatchIterator:
    """Shared batching logic of `Dataset` and `DataLoader`."""

    def __init__(self, dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn,
                 sampler=None, batch_sampler=None):
        if batch_size < 1:
            raise MetajitValueError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle and (sampler is not None or batch_sampler is not None):
            raise MetajitValueError("shuffle=True cannot be combined with a sampler: the sampler decides the order")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers, self.seed = drop_last, num_workers, seed
        self.collate_fn = collate_fn or collate
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.epoch = 0

    def batches(self):
        if self.batch_sampler is not None:
            return [list(batch) for batch in self.batch_sampler]
        if self.sampler is not None:
            return [list(batch) for batch in BatchSampler(self.sampler, self.batch_size, self.drop_last)]
        count = len(self.dataset)
        order = np.arange(count)
        if self.shuffle:
            seed = None if self.seed is None else self.seed + self.epoch
            np.random.default_rng(seed).shuffle(order)
        self.epoch += 1
        stop = count - count % self.batch_size if self.drop_last else count
        return [order[start:start + self.batch_size] for start in range(0, stop, self.batch_size)]

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        count = len(self.dataset) if self.sampler is None else len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self):
        batches = self.batches()
        if self.num_workers <= 0:
            for indices in batches:
                yield self.collate_fn(_load_batch(self.dataset, indices))
            return
        context = multiprocessing.get_context("fork")
        with context.Pool(self.num_workers) as pool:
            results = [pool.apply_async(_load_batch, (self.dataset, indices)) for indices in batches]
            for result in results:
                yield self.collate_fn(result.get())


class Dataset:
    """Jittor-style dataset: subclass with ``__getitem__`` and ``__len__`` (or set
    ``total_len``), configure with `set_attrs`, iterate for batches::

        for images, labels in MyDataset().set_attrs(batch_size=32, shuffle=True):
            ...
    """

    def __init__(self, batch_size=16, shuffle=False, drop_last=False, num_workers=0, seed=None, sampler=None):
        self.total_len = None
        self._iterator = None
        self.set_attrs(batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                       num_workers=num_workers, seed=seed, sampler=sampler)

    def set_attrs(self, **attributes):
        """Set any of batch_size, shuffle, drop_last, num_workers, seed, total_len, sampler
        (a `metajit.sampler.Sampler`); returns self."""
        for key, value in attributes.items():
            setattr(self, key, value)
        self._iterator = None
        return self

    def __len__(self):
        if self.total_len is None:
            raise MetajitValueError(f"{type(self).__name__} must define __len__ or set total_len")
        return self.total_len

    def __getitem__(self, index):
        raise MetajitValueError(f"{type(self).__name__} must define __getitem__")

    def _batch_iterator(self):
        if self._iterator is None:
            self._iterator = _BatchIterator(self, self.batch_size, self.shuffle, self.drop_last,
                                            self.num_workers, self.seed, None, self.sampler)
        return self._iterator

    def __iter__(self):
        return iter(self._batch_iterator())

    def batch_len(self):
        """The number of batches per epoch."""
        return len(self._batch_iterator())


class TensorDataset(Dataset):
    """Samples are rows of the given arrays: ``TensorDataset(images, labels)``."""

    def __init__(self, *arrays, **attributes):
        super().__init__(**attributes)
        self.arrays = [a.numpy() if isinstance(a, Var) else np.asarray(a) for a in arrays]
        if len({len(a) for a in self.arrays}) > 1:
            raise MetajitValueError(f"TensorDataset arrays differ in length: {[len(a) for a in self.arrays]}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class DataLoader(_BatchIterator):
    """PyTorch-style loader over any object with ``__getitem__`` and ``__len__``."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, num_workers=0, seed=None,
                 collate_fn=None, sampler=None, batch_sampler=None):
        super().__init__(dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn, sampler,
                         batch_sampler)
