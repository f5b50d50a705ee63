"""Pipes feeding `metajit.dataset`: an iter pipe is an ``IterableDataset``, so
``DataLoader(pipe, ...)`` reads it (with worker processes too), and `DataPipeDataset`
wraps any pipe as a Jittor-style ``Dataset``::

    pipe = IterableWrapper(range(100)).shuffle().sharding_filter().map(load_sample)
    for images, labels in DataLoader(pipe, batch_size=32, num_workers=4):
        ...
    for images, labels in DataPipeDataset(pipe).set_attrs(batch_size=32, shuffle=True):
        ...
"""
import numpy as np

from .. import distributed
from ..dataset import DataLoader, Dataset
from ..errors import MetajitValueError
from .datapipe import IterDataPipe, MapDataPipe, datapipe_graph
from .shuffle import SeededShuffling, Shuffler


def _seed_shared_by_ranks():
    """Rank 0's draw from numpy's global generator, on every MPI rank."""
    return distributed.mpi.broadcast_object(int(np.random.randint(2**31)))


def prepare_epoch(pipe, shuffle, seed):
    """What `DataLoader` reads from ``pipe`` in one epoch, prepared in the main process
    before any worker starts: with ``shuffle`` every shuffling stage is switched on (a
    ``shuffle()`` stage is appended if there is none), and each stage's order for the epoch
    is fixed now, so that all workers agree on it: from ``seed`` (the loader's seed for
    this epoch) if given, else from the stage's own seed, else from numpy's global
    generator (under MPI, rank 0's draw, so that all ranks agree too)::

        epoch_pipe = prepare_epoch(IterableWrapper(range(8)), shuffle=True, seed=0)
    """
    shufflers = [node for node in datapipe_graph(pipe) if isinstance(node, SeededShuffling)]
    if shuffle and not shufflers:
        pipe = Shuffler(pipe)
        shufflers = [pipe]
    rank_seed = None
    if seed is None and distributed.in_mpi and any(shuffler.seed is None for shuffler in shufflers):
        rank_seed = _seed_shared_by_ranks()
    for position, shuffler in enumerate(shufflers):
        if shuffle:
            shuffler.set_shuffle(True)
        if seed is not None:
            shuffler.fix_next_epoch(("loader", seed, position))
        elif shuffler.seed is None and rank_seed is not None:
            shuffler.fix_next_epoch(("ranks", rank_seed, position))
        else:
            shuffler.fix_next_epoch()
    return pipe


class DataPipeDataset(Dataset):
    """A Jittor-style `Dataset` over a pipe, configured with ``set_attrs`` and iterated for
    batches. A map pipe is read by index (``shuffle`` permutes the indices); an iter pipe is
    read as `DataLoader` reads it (``shuffle`` switches its shuffling stages on)::

        dataset = DataPipeDataset(SequenceWrapper(samples).map(augment))
        for images, labels in dataset.set_attrs(batch_size=32, shuffle=True, num_workers=2):
            ...
    """

    def __init__(self, datapipe, **attributes):
        if not isinstance(datapipe, (IterDataPipe, MapDataPipe)):
            raise MetajitValueError(f"DataPipeDataset wraps an IterDataPipe or a MapDataPipe, not a "
                                    f"{type(datapipe).__name__}; wrap plain data in IterableWrapper or SequenceWrapper")
        self.datapipe = datapipe
        super().__init__(**attributes)

    def __len__(self):
        return len(self.datapipe)

    def __getitem__(self, index):
        if isinstance(self.datapipe, IterDataPipe):
            raise MetajitValueError("DataPipeDataset over an IterDataPipe is read by iteration: iterate the "
                                    "dataset for batches, or wrap a MapDataPipe to index it")
        return self.datapipe[index]

    def _batch_iterator(self):
        # Dataset batches itself by index; an iter pipe is read the way DataLoader reads it.
        if isinstance(self.datapipe, MapDataPipe):
            return super()._batch_iterator()
        if self._iterator is None:
            self._iterator = DataLoader(self.datapipe, self.batch_size, self.shuffle, self.drop_last,
                                        self.num_workers, self.seed, sampler=self.sampler)
        return self._iterator
