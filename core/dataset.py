"""Datasets and loaders: Jittor's ``Dataset.set_attrs(batch_size=..., shuffle=...)`` iterated
directly, and PyTorch's ``DataLoader(dataset, ...)``. Batches are stacked into Vars;
``num_workers > 0`` loads batches in worker processes (order kept); shuffling is
deterministic for a given ``seed`` and epoch.

A source read by iteration rather than by index (an `IterableDataset`, such as a
``metajit.data`` pipe) is batched as it yields; with workers, each worker process reads
its own share of it (see `IterableDataset`) and `get_worker_info` tells the source which.
"""
import collections
import itertools
import multiprocessing
import multiprocessing.connection
import pickle
import random
import traceback

import numpy as np

from . import distributed
from .errors import MetajitError, MetajitValueError
from .sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
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


class MetajitWorkerError(MetajitError, RuntimeError):
    """A DataLoader worker process failed in a way its own exception cannot report (it died,
    or its exception could not be rebuilt); the message carries the worker's traceback."""


WorkerInfo = collections.namedtuple("WorkerInfo", "id num_workers seed")
WorkerInfo.__doc__ = """Which DataLoader worker process this is: ``id`` in ``range(num_workers)``;
``seed`` seeded numpy's and Python's global generators in this worker."""

_worker_info = None


def get_worker_info():
    """In a DataLoader worker process reading an iterable source, its `WorkerInfo`; in the
    main process ``None`` (PyTorch's ``torch.utils.data.get_worker_info``)::

        info = get_worker_info()
        share = range(10) if info is None else range(info.id, 10, info.num_workers)
    """
    return _worker_info


class IterableDataset:
    """A source read by iteration (PyTorch's ``IterableDataset``): subclass with ``__iter__``
    yielding samples; `DataLoader` batches them in the order they come::

        class Counter(IterableDataset):
            def __iter__(self):
                return iter(range(10))

        for batch in DataLoader(Counter(), batch_size=4, num_workers=2):
            ...

    With ``num_workers > 0`` every worker process iterates its own copy. If the class sets
    ``shards_itself = True``, its ``__iter__`` keeps only its reader's share itself: its
    worker's (through `get_worker_info`) and, under MPI, its rank's. Otherwise worker ``w``
    of ``W`` on rank ``r`` of ``R`` keeps the samples ``k, k + n, k + 2n, ...`` of the full
    iteration, for ``k = w * R + r`` and ``n = R * W`` (a rank's workers together keep
    ``r, r + R, ...``), so each sample is loaded once. Under MPI ``batch_size`` is the global
    batch, as for indexed datasets: each rank batches ``batch_size / world_size`` of its
    share (the ranks' shares may differ by a sample, so by a batch).
    """

    shards_itself = False

    def __iter__(self):
        raise MetajitValueError(f"{type(self).__name__} must define __iter__")

    def for_epoch(self, shuffle, seed):
        """Called by the loader in the main process at the start of each epoch, before any
        worker starts; returns the iterable to read this epoch. ``shuffle`` is the loader's
        setting, ``seed`` its seed for this epoch (``None`` without one). A plain iterable
        source cannot be shuffled by the loader."""
        if shuffle:
            raise MetajitValueError(f"shuffle=True: {type(self).__name__} yields samples in its own order; "
                                    "shuffle inside its __iter__ or use a metajit.data pipe's .shuffle()")
        return self


def _groups(samples, size, drop_last):
    """Lists of ``size`` consecutive samples (the last shorter unless ``drop_last``)."""
    samples = iter(samples)
    while group := list(itertools.islice(samples, size)):
        if drop_last and len(group) < size:
            return
        yield group


def _reader_share(source, reader, readers):
    """The samples reader ``reader`` of ``readers`` (worker processes of every MPI rank) loads."""
    return iter(source) if getattr(source, "shards_itself", False) else \
        itertools.islice(source, reader, None, readers)


def _worker_loop(source, info, chunk_size, connection):
    """A worker process: read this worker's share of ``source`` and send it in chunks."""
    global _worker_info
    _worker_info = info
    np.random.seed(info.seed % 2**32)
    random.seed(info.seed)
    try:
        samples = _reader_share(source, info.id * distributed.world_size + distributed.rank,
                                distributed.world_size * info.num_workers)
        for chunk in _groups(samples, chunk_size, False):
            connection.send(("samples", chunk))
        connection.send(("done", None))
    except BaseException as error:  # reported to the main process, which raises it
        connection.send(("error", (_picklable_type(error), traceback.format_exc())))
    finally:
        connection.close()


def _picklable_type(error):
    """``type(error)`` if the main process can receive it (an importable class), else
    `MetajitWorkerError`."""
    try:
        pickle.loads(pickle.dumps(type(error)))
        return type(error)
    except Exception:
        return MetajitWorkerError


def _worker_error(worker_id, error_type, worker_traceback):
    message = f"{error_type.__name__} in DataLoader worker process {worker_id}:\n{worker_traceback}"
    try:
        return error_type(message)
    except Exception:
        return MetajitWorkerError(message)


def _samples_from_workers(source, num_workers, chunk_size, seed):
    """The samples of ``source`` read by ``num_workers`` forked processes, taken from the
    workers in turn one chunk at a time (a fixed order for a deterministic source)."""
    context = multiprocessing.get_context("fork")
    workers = []
    try:
        for worker_id in range(num_workers):
            receiver, sender = context.Pipe(duplex=False)
            info = WorkerInfo(worker_id, num_workers, seed + worker_id)
            process = context.Process(target=_worker_loop, args=(source, info, chunk_size, sender), daemon=True)
            process.start()
            sender.close()
            workers.append((worker_id, process, receiver))
        active = list(workers)
        while active:
            for worker in list(active):
                worker_id, process, receiver = worker
                multiprocessing.connection.wait([receiver, process.sentinel])
                if not receiver.poll():
                    raise MetajitWorkerError(f"DataLoader worker process {worker_id} exited with code "
                                             f"{process.exitcode} before sending its samples")
                kind, payload = receiver.recv()
                if kind == "samples":
                    yield from payload
                elif kind == "done":
                    active.remove(worker)
                else:
                    raise _worker_error(worker_id, *payload)
    finally:
        for _, process, receiver in workers:
            receiver.close()
            if process.is_alive():
                process.terminate()
            process.join()


class _BatchIterator:
    """Shared batching logic of `Dataset` and `DataLoader`."""

    def __init__(self, dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn,
                 sampler=None, batch_sampler=None):
        iterable = isinstance(dataset, IterableDataset)
        if batch_size is None and not iterable:
            raise MetajitValueError("batch_size=None (samples passed through unbatched) needs an iterable source "
                                    "such as a metajit.data pipe; give an indexed dataset a batch_size")
        if batch_size is not None and batch_size < 1:
            raise MetajitValueError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle and (sampler is not None or batch_sampler is not None):
            raise MetajitValueError("shuffle=True cannot be combined with a sampler: the sampler decides the order")
        if iterable and (sampler is not None or batch_sampler is not None):
            raise MetajitValueError(f"{type(dataset).__name__} is read by iteration, in its own order: a sampler "
                                    "needs a dataset indexed with __getitem__")
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
            if self.seed is None and distributed.in_mpi:  # every rank shuffles alike
                self.seed = distributed.mpi.broadcast_object(int(np.random.randint(2 ** 31)))
            # without a seed of its own, numpy's global generator draws the order: a script
            # seeded by jt.set_global_seed shuffles alike on every run (torch.manual_seed's way)
            seed = int(np.random.randint(2 ** 31)) if self.seed is None else self.seed + self.epoch
            np.random.default_rng(seed).shuffle(order)
        self.epoch += 1
        stop = count - count % self.batch_size if self.drop_last else count
        batches = [order[start:start + self.batch_size] for start in range(0, stop, self.batch_size)]
        return _rank_shares(batches, self.batch_size) if distributed.in_mpi else batches

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._source_length()
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        count = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.batch_size is None:
            return count
        if self.sampler is None and distributed.in_mpi and not self.drop_last and \
                0 < count % self.batch_size < distributed.world_size:
            return count // self.batch_size  # a last batch too small to share is dropped
        return _batch_count(count, self.batch_size, self.drop_last)

    def _source_length(self):
        """Batches (samples without a batch_size) an iterable source gives this rank per epoch."""
        count = len(self.dataset)
        if not getattr(self.dataset, "shards_itself", False):
            count = len(range(distributed.rank, count, distributed.world_size))
        if self.batch_size is None:
            return count
        return _batch_count(count, _rank_batch_size(self.batch_size), self.drop_last)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._iterate_source()
        return self._iterate_indices()

    def _iterate_source(self):
        seed = None if self.seed is None else self.seed + self.epoch
        if seed is None and self.shuffle:  # (as `_iterate_indices`: the global generator seeds it)
            seed = int(np.random.randint(2 ** 31))
        self.epoch += 1
        source = self.dataset.for_epoch(self.shuffle, seed)
        batch_size = None if self.batch_size is None else _rank_batch_size(self.batch_size)
        if self.num_workers > 0:
            worker_seed = int(np.random.randint(2**31)) if seed is None else seed
            samples = _samples_from_workers(source, self.num_workers, batch_size or 1, worker_seed)
        else:
            samples = _reader_share(source, distributed.rank, distributed.world_size)
        if batch_size is None:
            yield from _while_every_rank_has_one(samples)
            return
        for group in _while_every_rank_has_one(_groups(samples, batch_size, self.drop_last)):
            yield self.collate_fn(group)

    def _iterate_indices(self):
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


def _batch_count(count, batch_size, drop_last):
    return count // batch_size if drop_last else -(-count // batch_size)


def _rank_batch_size(batch_size):
    """This MPI rank's part of a global batch (Jittor's rule: ``batch_size`` is the global
    batch, each rank takes ``batch_size / world_size`` of it); ``batch_size`` outside MPI."""
    ranks = distributed.world_size
    if batch_size % ranks:
        raise MetajitValueError(f"under MPI with {ranks} ranks, batch_size {batch_size} must be a multiple of "
                                f"{ranks}: it is the global batch, and each rank takes batch_size / {ranks} of it")
    return batch_size // ranks


def _rank_shares(batches, batch_size):
    """This MPI rank's part of each global batch (see `_rank_batch_size`); a last, smaller
    batch is split as evenly as possible, or dropped when it has fewer samples than ranks."""
    ranks = distributed.world_size
    _rank_batch_size(batch_size)  # a batch_size that the ranks cannot share is an error
    return [np.array_split(batch, ranks)[distributed.rank] for batch in batches if len(batch) >= ranks]


def _while_every_rank_has_one(items):
    """``items`` while every MPI rank still has one: an iterable source's shares may differ
    by a sample, and a rank taking one more step would run collectives the others do not
    (one tiny all-reduce per item agrees; outside MPI the items pass as they are)."""
    if not distributed.in_mpi:
        yield from items
        return
    iterator = iter(items)
    while True:
        item = next(iterator, _END)
        if not distributed.mpi.all_reduce(np.array([item is not _END], dtype=np.int32), "min")[0]:
            return
        yield item


_END = object()


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
    """PyTorch-style loader over any object with ``__getitem__`` and ``__len__``, or over an
    `IterableDataset` (a ``metajit.data.IterDataPipe`` is one)::

        loader = DataLoader(IterableWrapper(range(100)).map(float), batch_size=10, num_workers=2)

    Over an iterable source, ``shuffle=True`` asks the source to shuffle (see
    `IterableDataset.for_epoch`) and ``batch_size=None`` passes its samples through as they
    come (for a source that batches itself).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, num_workers=0, seed=None,
                 collate_fn=None, sampler=None, batch_sampler=None):
        super().__init__(dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn, sampler,
                         batch_sampler)
