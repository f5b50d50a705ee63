"""Sharding: each of several readers keeps its own share of a pipe, every item going to
exactly one of them (items ``k, k + n, k + 2n, ...`` to reader ``k`` of ``n``).

``shard(num_shards, shard_index)`` takes an explicit share. ``sharding_filter()`` takes
this process's share at iteration time: by MPI rank (``mpirun -np N``: ``jt.rank`` of
``jt.world_size``) and, inside it, by DataLoader worker process::

    pipe = IterableWrapper(files).sharding_filter().map(decode)  # decode only this reader's files
    loader = DataLoader(pipe, batch_size=32, num_workers=4)

Put ``sharding_filter`` early (before expensive stages) and after any ``shuffle`` (whose
order all readers share).
"""
import itertools

from .. import distributed
from ..dataset import get_worker_info
from ..errors import MetajitValueError
from .datapipe import IterDataPipe, check_count, functional_datapipe

class _Share(IterDataPipe):
    """Base of the sharding pipes: the share ``shard_position()`` names."""

    def shard_position(self):
        """``(num_shards, shard_index)`` of this reader."""
        raise NotImplementedError

    def __iter__(self):
        num_shards, shard_index = self.shard_position()
        return itertools.islice(self.source_datapipe, shard_index, None, num_shards)

    def __len__(self):
        num_shards, shard_index = self.shard_position()
        return len(range(shard_index, len(self.source_datapipe), num_shards))


@functional_datapipe("shard")
class Shard(_Share):
    """Share ``shard_index`` of ``num_shards``: items ``shard_index, shard_index + num_shards, ...``::

        list(IterableWrapper(range(7)).shard(3, 1))  # [1, 4]
    """

    def __init__(self, source_datapipe, num_shards, shard_index):
        self.source_datapipe = source_datapipe
        self.num_shards = check_count("shard: num_shards", num_shards)
        if not isinstance(shard_index, int) or not 0 <= shard_index < num_shards:
            raise MetajitValueError(f"shard: shard_index must be in range({num_shards}), got {shard_index!r}")
        self.shard_index = shard_index

    def shard_position(self):
        return self.num_shards, self.shard_index


@functional_datapipe("sharding_filter")
class ShardingFilter(_Share):
    """This process's share, decided when iterating: MPI rank ``r`` of ``R`` and DataLoader
    worker ``w`` of ``W`` read share ``w * R + r`` of ``R * W`` (so a rank's workers
    together read the rank's share, ``r, r + R, ...``, whatever ``W``); a single process
    outside a DataLoader worker reads everything::

        list(IterableWrapper(range(4)).sharding_filter())  # [0, 1, 2, 3]; on rank 1 of 2: [1, 3]
    """

    keeps_reader_share = True

    def __init__(self, source_datapipe):
        self.source_datapipe = source_datapipe

    def shard_position(self):
        rank, world_size = distributed.rank, distributed.world_size
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        return world_size * num_workers, worker_id * world_size + rank
