"""Datasets and loaders: Jittor's ``Dataset.set_attrs(batch_size=..., shuffle=...)`` iterated
directly, and PyTorch's ``DataLoader(dataset, ...)``. Batches are stacked into Vars;
``num_workers > 0`` loads batches in worker processes (order kept); shuffling is
deterministic for a given ``seed`` and epoch.

A source read by iteration rather than by index (an `IterableDataset`, such as a
``metajit.data`` pipe) is batched as it yields; with workers, each worker process reads
its own share of it (see `IterableDataset`) and `get_worker_info` tells the source which.

PyTorch's dataset utilities build datasets from datasets: `Subset`, `random_split`,
`ConcatDataset` (``a + b``), `ChainDataset` (``a + b`` of iterable sources) and
`StackDataset`; batches are made by `metajit.collate`'s `default_collate`.
"""
import bisect
import collections
import itertools
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import numbers
import pickle
import random
import traceback
import warnings
import weakref

import numpy as np

from . import creation, distributed
from .collate import default_collate, default_convert
from .errors import MetajitError, MetajitIndexError, MetajitTypeError, MetajitValueError
from .sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler, as_generator)
from .var import Var


collate = default_collate  # metajit's earlier name, which the data pipes' collate uses


def _load_batch(dataset, indices):
    """The samples at ``indices``: by the dataset's ``__getitems__`` where it has one (PyTorch's
    batched fetch), else one ``dataset[i]`` each."""
    if callable(getattr(dataset, "__getitems__", None)):
        return dataset.__getitems__([int(i) for i in indices])
    return [dataset[int(i)] for i in indices]


class MetajitWorkerError(MetajitError, RuntimeError):
    """A DataLoader worker process failed in a way its own exception cannot report (it died,
    or its exception could not be rebuilt), or sent nothing within the loader's ``timeout``;
    the message says which."""


WorkerInfo = collections.namedtuple("WorkerInfo", "id num_workers seed dataset", defaults=(None,))
WorkerInfo.__doc__ = """Which DataLoader worker process this is: ``id`` in ``range(num_workers)``;
``seed`` seeded numpy's, Python's and metajit's generators in this worker; ``dataset`` is
this worker's copy of the loader's dataset (as PyTorch's, for a ``worker_init_fn`` to
configure)."""

_worker_info = None
_worker_info_asked = False  # whether the source being read in this worker asked for `get_worker_info`


def get_worker_info():
    """In a DataLoader worker process, its `WorkerInfo`; in the main process ``None``
    (PyTorch's ``torch.utils.data.get_worker_info``)::

        info = get_worker_info()
        share = range(10) if info is None else range(info.id, 10, info.num_workers)

    A source that asks for it before its first sample shards itself (see `IterableDataset`).
    """
    global _worker_info_asked
    _worker_info_asked = _worker_info is not None
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
    worker's (through `get_worker_info`) and, under MPI, its rank's. So does a source of
    the user's that calls `get_worker_info` in a worker before yielding its first sample
    (PyTorch's idiom; not a metajit data pipe, whose ``sharding_filter`` decides). Otherwise worker ``w``
    of ``W`` on rank ``r`` of ``R`` keeps the samples ``k, k + n, k + 2n, ...`` of the full
    iteration, for ``k = w * R + r`` and ``n = R * W`` (a rank's workers together keep
    ``r, r + R, ...``), so each sample is loaded once. Under MPI ``batch_size`` is the global
    batch, as for indexed datasets: each rank batches ``batch_size / world_size`` of its
    share (the ranks' shares may differ by a sample, so by a batch).
    """

    shards_itself = False

    def __iter__(self):
        raise MetajitValueError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        """``a + b``: the `ChainDataset` of the two, as PyTorch's."""
        return ChainDataset([self, other])

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
    """The samples reader ``reader`` of ``readers`` (worker processes of every MPI rank) loads:
    all that ``source`` yields when it shards itself, else every ``readers``-th from ``reader``."""
    global _worker_info_asked
    if getattr(source, "shards_itself", False):
        yield from source
        return
    if type(source).__module__.partition(".")[0] == "metajit":  # a data pipe: its sharding_filter decides
        yield from itertools.islice(source, reader, None, readers)
        return
    _worker_info_asked = False
    samples = iter(source)
    first = list(itertools.islice(samples, 1))
    if _worker_info_asked:  # PyTorch's idiom: it kept its worker's share with get_worker_info
        yield from first
        yield from samples
    else:
        yield from itertools.islice(itertools.chain(first, samples), reader, None, readers)


class _MainProcessGone(Exception):
    """The loader closed this worker's pipe: the worker exits quietly."""


def _receive(connection):
    try:
        return connection.recv()
    except (EOFError, OSError) as error:
        raise _MainProcessGone() from error


def _worker_loop(info, source, worker_init_fn, connection):
    """A worker process: seed its generators, run ``worker_init_fn(id)``, then serve the
    loader's requests until it sends ``None``:

    * ``("load", indices)``: reply ``("samples", [dataset[i] for i in indices])``;
    * ``("read", epoch, chunk_size, credit)``: send this worker's share of the iterable
      source in ``("samples", chunk)`` replies, then ``("done", None)``: ``source`` as given
      at the start when ``epoch`` is None, else ``dataset.for_epoch(*epoch)`` (persistent
      workers). At most ``credit`` chunks go unanswered by a ``("more", None)``;
      ``("stop", None)`` ends the read early with ``("stopped", None)``.

    An exception is sent as ``("error", (type, traceback))`` and ends the worker."""
    global _worker_info
    _worker_info = info
    np.random.seed(info.seed % 2**32)
    random.seed(info.seed)
    creation.seed(info.seed)
    try:
        if worker_init_fn is not None:
            worker_init_fn(info.id)
        while (request := _receive(connection)) is not None:
            kind, *arguments = request
            if kind == "load":
                connection.send(("samples", _load_batch(info.dataset, arguments[0])))
            elif kind == "read":
                epoch, chunk_size, credit = arguments
                _send_share(source if epoch is None else info.dataset.for_epoch(*epoch), info, chunk_size, credit,
                            connection)
            # ("more", None) and ("stop", None) left over from a finished read need nothing
    except _MainProcessGone:
        pass
    except BaseException as error:  # reported to the main process, which raises it
        try:
            connection.send(("error", (_picklable_type(error), traceback.format_exc())))
        except OSError:
            pass
    finally:
        connection.close()


def _send_share(source, info, chunk_size, credit, connection):
    """Send this worker's share of ``source`` in chunks, keeping to the loader's credit."""
    samples = _reader_share(source, info.id * distributed.world_size + distributed.rank,
                            distributed.world_size * info.num_workers)
    chunks = _groups(samples, chunk_size, False)
    while True:
        while credit == 0 or connection.poll():  # (a chunk is loaded only once it may be sent)
            if _receive(connection)[0] == "stop":
                connection.send(("stopped", None))
                return
            credit += 1
        chunk = next(chunks, None)
        if chunk is None:
            connection.send(("done", None))
            return
        connection.send(("samples", chunk))
        credit -= 1


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


def _terminate(processes, connections):
    for connection in connections:
        connection.close()
    for process in processes:
        if process.is_alive():
            process.terminate()
        process.join()


class _Workers:
    """A loader's worker processes (see `_worker_loop`), each with its own pipe; ``pending``
    counts each worker's unanswered ``load`` requests and ``reading`` holds the workers in
    the middle of a read."""

    def __init__(self, dataset, source, count, base_seed, worker_init_fn, context, timeout):
        self.count, self.timeout = count, timeout
        self.pending, self.reading = [0] * count, set()
        self.processes, self.connections = [], []
        self._finalizer = weakref.finalize(self, _terminate, self.processes, self.connections)
        for worker_id in range(count):
            mine, theirs = context.Pipe()
            info = WorkerInfo(worker_id, count, base_seed + worker_id, dataset)
            process = context.Process(target=_worker_loop, args=(info, source, worker_init_fn, theirs), daemon=True)
            try:
                process.start()
            except (pickle.PicklingError, AttributeError, TypeError) as error:
                self.close()
                raise MetajitValueError(
                    f"the {context.get_start_method()!r} multiprocessing_context sends the dataset and "
                    f"worker_init_fn to each worker by pickling, which failed: {error}; define them at module "
                    f"level, or use the 'fork' context (the default where the platform has it)") from error
            theirs.close()
            self.processes.append(process)
            self.connections.append(mine)

    def send(self, worker_id, kind, *arguments):
        if kind == "load":
            self.pending[worker_id] += 1
        elif kind == "read":
            self.reading.add(worker_id)
        try:
            self.connections[worker_id].send((kind, *arguments))
        except OSError:  # the worker has ended: its next reply (its error) or its death reports why
            pass

    def receive(self, worker_id):
        """Worker ``worker_id``'s next reply ``(kind, payload)``; raises its exception, or
        `MetajitWorkerError` if it died or sent nothing within the timeout."""
        connection, process = self.connections[worker_id], self.processes[worker_id]
        if not multiprocessing.connection.wait([connection, process.sentinel], self.timeout):
            raise MetajitWorkerError(f"DataLoader timed out after {self.timeout} seconds waiting for worker process "
                                     f"{worker_id}; give a larger timeout (0 waits as long as it takes)")
        if not connection.poll():
            raise MetajitWorkerError(f"DataLoader worker process {worker_id} exited unexpectedly with code "
                                     f"{process.exitcode}")
        kind, payload = connection.recv()
        if kind == "error":
            raise _worker_error(worker_id, *payload)
        if kind in ("done", "stopped"):
            self.reading.discard(worker_id)
        elif worker_id not in self.reading:
            self.pending[worker_id] -= 1
        return kind, payload

    def drain(self):
        """Take the replies still owed from an epoch left unfinished, so the workers can
        start the next one."""
        for worker_id in list(self.reading):
            self.send(worker_id, "stop")
            while self.receive(worker_id)[0] not in ("done", "stopped"):
                pass
        for worker_id in range(self.count):
            while self.pending[worker_id]:
                self.receive(worker_id)

    def close(self):
        """Stop the worker processes."""
        self._finalizer()


def _batches_from_workers(workers, batches, prefetch_factor):
    """The samples of each of ``batches`` (lists of indices), batch ``k`` loaded by worker
    ``k % n``, each worker at most ``prefetch_factor`` batches ahead."""
    ahead = min(len(batches), prefetch_factor * workers.count)
    for k in range(ahead):
        workers.send(k % workers.count, "load", batches[k])
    for k in range(len(batches)):
        _, samples = workers.receive(k % workers.count)
        if k + ahead < len(batches):
            workers.send(k % workers.count, "load", batches[k + ahead])
        yield samples


def _samples_from_workers(workers, epoch, chunk_size, prefetch_factor):
    """The samples of an iterable source read by the workers (see `_worker_loop`'s ``read``),
    taken from the workers in turn one chunk at a time (a fixed order for a deterministic
    source), each worker at most ``prefetch_factor`` chunks ahead."""
    for worker_id in range(workers.count):
        workers.send(worker_id, "read", epoch, chunk_size, prefetch_factor)
    active = list(range(workers.count))
    while active:
        for worker_id in list(active):
            kind, payload = workers.receive(worker_id)
            if kind == "samples":
                workers.send(worker_id, "more")
                yield from payload
            else:
                active.remove(worker_id)


def _multiprocessing_context(context, num_workers):
    """The context worker processes start from: ``context`` (a start method's name or a
    context), else ``"fork"`` where the platform has it (as PyTorch on Linux), so that a
    dataset need not be picklable."""
    if context is not None and num_workers == 0:
        raise MetajitValueError("multiprocessing_context can only be used with multi-process loading "
                                "(num_workers > 0), but got num_workers=0")
    methods = multiprocessing.get_all_start_methods()
    if context is None:
        return multiprocessing.get_context("fork" if "fork" in methods else None)
    if isinstance(context, str):
        if context not in methods:
            raise MetajitValueError(f"multiprocessing_context should specify a valid start method in {methods!r}, "
                                    f"but got multiprocessing_context={context!r}")
        return multiprocessing.get_context(context)
    if not isinstance(context, multiprocessing.context.BaseContext):
        raise MetajitTypeError(f"multiprocessing_context should be a start method's name ({methods!r}) or a "
                               f"multiprocessing context, but got multiprocessing_context={context!r}")
    return context


class _BatchIterator:
    """Shared batching logic of `Dataset` and `DataLoader`."""

    def __init__(self, dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn,
                 sampler=None, batch_sampler=None, *, generator=None, worker_init_fn=None, persistent_workers=False,
                 prefetch_factor=None, timeout=0, multiprocessing_context=None):
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
        if seed is not None and generator is not None:
            raise MetajitValueError("give a seed or a generator, not both: each decides the shuffle order")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.drop_last, self.num_workers, self.seed = drop_last, num_workers, seed
        self.collate_fn = collate_fn or (default_convert if batch_size is None else default_collate)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.generator = as_generator(generator)
        self._set_worker_options(worker_init_fn, persistent_workers, prefetch_factor, timeout,
                                 multiprocessing_context)
        self.epoch = 0

    def _set_worker_options(self, worker_init_fn, persistent_workers, prefetch_factor, timeout, context):
        # checked as PyTorch's DataLoader checks them
        if self.num_workers < 0:
            raise MetajitValueError("num_workers should be non-negative; use num_workers=0 to load in this process")
        if timeout < 0:
            raise MetajitValueError(f"timeout should be non-negative (0 waits as long as it takes), got {timeout}")
        if prefetch_factor is not None and self.num_workers == 0:
            raise MetajitValueError("prefetch_factor can only be given with multi-process loading: set "
                                    "num_workers > 0, or leave prefetch_factor as None")
        if prefetch_factor is not None and prefetch_factor < 1:
            raise MetajitValueError(f"prefetch_factor should be at least 1, got {prefetch_factor}")
        if persistent_workers and self.num_workers == 0:
            raise MetajitValueError("persistent_workers needs num_workers > 0")
        self.multiprocessing_context = _multiprocessing_context(context, self.num_workers)
        self.prefetch_factor = prefetch_factor or (2 if self.num_workers > 0 else None)
        self.worker_init_fn, self.persistent_workers, self.timeout = worker_init_fn, persistent_workers, timeout
        self._workers = None

    def _draw_seed(self):
        """A seed drawn from the loader's generator, else from numpy's global generator."""
        if self.generator is not None:
            return int(self.generator.integers(2 ** 31))
        # numpy's global generator: a script seeded by jt.set_global_seed shuffles alike on every run
        # (torch.manual_seed's way)
        return int(np.random.randint(2 ** 31))

    def _epoch_seed(self):
        """This epoch's seed: the loader's seed plus the epoch, else a draw (rank 0's under MPI,
        so that every rank agrees)."""
        if self.seed is not None:
            return self.seed + self.epoch
        seed = self._draw_seed()
        return distributed.mpi.broadcast_object(seed) if distributed.in_mpi else seed

    def batches(self):
        if self.batch_sampler is not None:
            return [list(batch) for batch in self.batch_sampler]
        if self.sampler is not None:
            return [list(batch) for batch in BatchSampler(self.sampler, self.batch_size, self.drop_last)]
        count = len(self.dataset)
        order = np.arange(count)
        if self.shuffle:
            np.random.default_rng(self._epoch_seed()).shuffle(order)
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
        # persistent workers prepare each epoch themselves: they need a seed all of them share
        needs_seed = self.shuffle or self.persistent_workers or self.seed is not None
        seed = self._epoch_seed() if needs_seed else None
        self.epoch += 1
        source = self.dataset.for_epoch(self.shuffle, seed)  # (persistent workers: only to check the options)
        batch_size = None if self.batch_size is None else _rank_batch_size(self.batch_size)
        if self.num_workers > 0:
            samples = self._from_workers(
                None if self.persistent_workers else source,
                lambda workers: _samples_from_workers(workers, (self.shuffle, seed) if self.persistent_workers
                                                      else None, batch_size or 1, self.prefetch_factor))
        else:
            samples = _reader_share(source, distributed.rank, distributed.world_size)
        if batch_size is None:
            for sample in _while_every_rank_has_one(samples):
                yield self.collate_fn(sample)
            return
        for group in _while_every_rank_has_one(_groups(samples, batch_size, self.drop_last)):
            yield self.collate_fn(group)

    def _iterate_indices(self):
        batches = self.batches()
        if self.num_workers <= 0:
            for indices in batches:
                yield self.collate_fn(_load_batch(self.dataset, indices))
            return
        for samples in self._from_workers(
                None, lambda workers: _batches_from_workers(workers, batches, self.prefetch_factor)):
            yield self.collate_fn(samples)

    def _from_workers(self, source, read):
        """What ``read(workers)`` yields from this epoch's worker processes: the persistent
        ones (started at the first epoch; what an unfinished epoch left is taken first) or
        new ones reading ``source``, stopped at the end of the epoch."""
        workers = self._workers
        if workers is not None:
            try:
                workers.drain()
            except Exception:  # (a failure in a batch nobody asked for: start afresh)
                workers.close()
                workers = None
        try:
            if workers is None:
                base_seed = self._draw_seed() if self.seed is None else self.seed + self.epoch
                workers = _Workers(self.dataset, source, self.num_workers, base_seed, self.worker_init_fn,
                                   self.multiprocessing_context, self.timeout or None)
                if self.persistent_workers:
                    self._workers = workers
            yield from read(workers)
        except GeneratorExit:  # the epoch was left unfinished: persistent workers drain at the next
            if not self.persistent_workers:
                workers.close()
            raise
        except BaseException:
            if workers is not None:
                workers.close()
            self._workers = None
            raise
        if not self.persistent_workers:
            workers.close()


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

    def __add__(self, other):
        """``a + b``: the `ConcatDataset` of the two, as PyTorch's."""
        return ConcatDataset([self, other])

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


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order (PyTorch's ``Subset``)::

        evens = Subset(data, range(0, len(data), 2))   # evens[1] is data[2]
    """

    def __init__(self, dataset, indices):
        super().__init__()
        self.dataset, self.indices = dataset, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]


class ConcatDataset(Dataset):
    """Indexed datasets one after another (PyTorch's ``ConcatDataset``; ``a + b`` of two
    datasets is one). ``cumulative_sizes[k]`` is how many items the first ``k + 1`` hold;
    negative indices count from the end::

        both = ConcatDataset([train, extra])   # both[len(train)] is extra[0]
    """

    def __init__(self, datasets):
        super().__init__()
        self.datasets = list(datasets)
        if not self.datasets:
            raise MetajitValueError("ConcatDataset: datasets should not be an empty iterable")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise MetajitTypeError(f"ConcatDataset does not support IterableDataset ({type(dataset).__name__} "
                                       f"is read by iteration): chain iterable sources with ChainDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    @staticmethod
    def cumsum(sequence):
        """The running total of the lengths of ``sequence``'s datasets."""
        return list(itertools.accumulate(len(dataset) for dataset in sequence))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise MetajitValueError(f"ConcatDataset: absolute value of index should not exceed dataset length: "
                                        f"index {index}, length {len(self)}")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise MetajitIndexError(f"ConcatDataset: index {index} is out of range for {len(self)} items")
        return self.datasets[which][index - (self.cumulative_sizes[which - 1] if which else 0)]


class ChainDataset(IterableDataset):
    """Iterable sources read one after another (PyTorch's ``ChainDataset``; ``a + b`` of two
    iterable sources is one)::

        for batch in DataLoader(ChainDataset([first_stream, second_stream]), batch_size=8):
            ...
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        for dataset in self.datasets:
            if not isinstance(dataset, IterableDataset):
                raise MetajitTypeError(f"ChainDataset only supports IterableDataset, got {type(dataset).__name__}: "
                                       f"join indexed datasets with ConcatDataset")

    def __iter__(self):
        for dataset in self.datasets:
            yield from dataset

    def __len__(self):
        return sum(len(dataset) for dataset in self.datasets)


class StackDataset(Dataset):
    """Datasets of equal length read side by side (PyTorch's ``StackDataset``): item ``i``
    is the tuple of their items ``i``, or with keywords the dict::

        StackDataset(images, texts)[0]             # (images[0], texts[0])
        StackDataset(image=images, text=texts)[0]  # {"image": images[0], "text": texts[0]}
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        if args and kwargs:
            raise MetajitValueError("StackDataset: give the datasets either by position (items are tuples) or by "
                                    "keyword (items are dicts), not both")
        if not args and not kwargs:
            raise MetajitValueError("StackDataset: at least one dataset should be passed")
        self.datasets = args or kwargs
        lengths = [len(dataset) for dataset in (args or kwargs.values())]
        if len(set(lengths)) > 1:
            raise MetajitValueError(f"StackDataset: size mismatch between datasets: lengths {lengths}")
        self._length = lengths[0]

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {key: dataset[index] for key, dataset in self.datasets.items()}
        return tuple(dataset[index] for dataset in self.datasets)


def _split_lengths(lengths, count):
    """`random_split`'s lengths as integers: fractions summing to 1 become
    ``floor(count * fraction)``, the remainder added one by one from the first (PyTorch's
    rule); integer lengths must be non-negative and sum to ``count``."""
    for k, length in enumerate(lengths):
        if not isinstance(length, numbers.Real) or isinstance(length, bool):
            raise MetajitTypeError(f"random_split: lengths must be numbers, got {length!r} at index {k}")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for k, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise MetajitValueError(f"random_split: fraction at index {k} is not between 0 and 1 (got {fraction})")
        lengths = [math.floor(count * fraction) for fraction in lengths]
        for k in range(count - sum(lengths)):
            lengths[k % len(lengths)] += 1
        for k, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {k} is 0. This might result in an empty dataset.",
                              stacklevel=3)
    if sum(lengths) != count:
        raise MetajitValueError(f"random_split: sum of input lengths does not equal the length of the input dataset: "
                                f"{lengths} sums to {sum(lengths)}, the dataset has {count} items; give integer "
                                f"lengths summing to {count}, or fractions summing to 1")
    for k, length in enumerate(lengths):
        if not isinstance(length, numbers.Integral):
            raise MetajitTypeError(f"random_split: lengths must be integers, or fractions summing to 1; got "
                                   f"{length!r} at index {k}")
        if length < 0:
            raise MetajitValueError(f"random_split: length at index {k} is negative ({length})")
    return [int(length) for length in lengths]


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping `Subset` s of the given ``lengths`` in a random
    order (PyTorch's ``random_split``). ``lengths`` are integers summing to ``len(dataset)``,
    or fractions summing to 1 (each split gets ``floor(len * fraction)`` items and the
    remainder goes one item each to the first splits). ``generator`` draws the order (see
    `metajit.sampler.as_generator`: a numpy ``Generator``, an int seed, or a
    ``torch.Generator`` by its ``initial_seed()``); by default numpy's global generator,
    which ``jt.manual_seed`` seeds::

        train, val = random_split(data, [0.8, 0.2], generator=torch.Generator().manual_seed(42))
    """
    lengths, generator = _split_lengths(list(lengths), len(dataset)), as_generator(generator)
    order = (np.random if generator is None else generator).permutation(sum(lengths)).tolist()
    return [Subset(dataset, order[end - length:end]) for end, length in zip(itertools.accumulate(lengths), lengths)]


class DataLoader(_BatchIterator):
    """PyTorch-style loader over any object with ``__getitem__`` and ``__len__``, or over an
    `IterableDataset` (a ``metajit.data.IterDataPipe`` is one)::

        loader = DataLoader(IterableWrapper(range(100)).map(float), batch_size=10, num_workers=2)

    Over an iterable source, ``shuffle=True`` asks the source to shuffle (see
    `IterableDataset.for_epoch`) and ``batch_size=None`` passes its samples through one by
    one (for a source that batches itself), each through ``collate_fn``: by default
    `default_convert`, which makes their numpy arrays Vars (PyTorch's rule). With a batch
    size, ``collate_fn`` defaults to `default_collate`.

    PyTorch's options, checked as PyTorch checks them:

    * ``generator`` draws each epoch's shuffle order and the workers' seeds, instead of
      numpy's global generator: a ``numpy.random.Generator``, an int (the seed of a new
      one), or a ``torch.Generator`` (its ``initial_seed()``). Loaders with equal generators
      shuffle alike; ``seed`` (metajit's) instead fixes each epoch's order as ``seed + epoch``.
    * ``num_workers > 0`` loads in worker processes, started from ``multiprocessing_context``
      (``"fork"``, ``"spawn"``, ``"forkserver"`` or a context; by default ``"fork"`` where
      the platform has it, so that neither the dataset nor ``worker_init_fn`` is pickled);
      each worker calls ``worker_init_fn(worker_id)`` first. Batches come in order
      (``in_order`` is accepted).
    * ``prefetch_factor`` batches per worker are requested ahead (default 2).
    * ``persistent_workers=True`` keeps the workers alive from one epoch to the next (each
      keeps its copy of the dataset, and its ``worker_init_fn`` runs once).
    * ``timeout`` > 0: seconds to wait for a batch from a worker before raising
      `MetajitWorkerError`.
    * ``pin_memory`` (and ``pin_memory_device``) are accepted and change nothing: batches
      are made in host memory, from which each device backend copies them itself.

    ::

        loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=4, generator=0,
                            persistent_workers=True, worker_init_fn=lambda worker_id: ...)
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, num_workers=0, seed=None,
                 collate_fn=None, sampler=None, batch_sampler=None, *, pin_memory=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, prefetch_factor=None,
                 persistent_workers=False, pin_memory_device="", in_order=True):
        super().__init__(dataset, batch_size, shuffle, drop_last, num_workers, seed, collate_fn, sampler,
                         batch_sampler, generator=generator, worker_init_fn=worker_init_fn,
                         persistent_workers=persistent_workers, prefetch_factor=prefetch_factor, timeout=timeout,
                         multiprocessing_context=multiprocessing_context)
        self.pin_memory, self.pin_memory_device, self.in_order = pin_memory, pin_memory_device, in_order
