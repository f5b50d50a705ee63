"""Sharding: every item exactly once across the shards, explicitly, by simulated MPI rank
(OpenMPI's environment variables) and by simulated DataLoader worker."""
import collections

import pytest

import metajit as jt
from metajit import dataset
from metajit.data import IterableWrapper, mpi_rank_and_world_size


def assert_each_item_once(shards, items):
    counts = collections.Counter(item for shard in shards for item in shard)
    assert sorted(counts) == sorted(items) and set(counts.values()) <= {1}


@pytest.mark.parametrize("count,num_shards", [(0, 3), (10, 1), (10, 3), (7, 7), (5, 8)])
def test_explicit_shards_cover_every_item_once(count, num_shards):
    shards = [IterableWrapper(range(count)).shard(num_shards, index) for index in range(num_shards)]
    assert_each_item_once([list(shard) for shard in shards], range(count))
    assert [len(shard) for shard in shards] == [len(list(shard)) for shard in shards]
    assert list(shards[0]) == list(range(count))[::num_shards]


def test_explicit_shard_arguments_are_checked():
    with pytest.raises(jt.MetajitValueError, match=r"shard_index must be in range\(2\), got 2"):
        IterableWrapper([]).shard(2, 2)
    with pytest.raises(jt.MetajitValueError, match="num_shards must be an int >= 1"):
        IterableWrapper([]).shard(0, 0)


@pytest.fixture
def mpi_environment(monkeypatch):
    def set_rank(rank, size):
        monkeypatch.setenv("OMPI_COMM_WORLD_RANK", str(rank))
        monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", str(size))
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK", raising=False)
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    return set_rank


def test_rank_and_world_size_come_from_openmpi_variables(mpi_environment, monkeypatch):
    assert mpi_rank_and_world_size() == (0, 1)
    mpi_environment(2, 4)
    assert mpi_rank_and_world_size() == (2, 4)
    mpi_environment(4, 4)
    with pytest.raises(jt.MetajitValueError, match="the rank must be in range"):
        mpi_rank_and_world_size()
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    with pytest.raises(jt.MetajitValueError, match="OMPI_COMM_WORLD_SIZE=None do not describe"):
        mpi_rank_and_world_size()


def test_sharding_filter_by_rank_covers_every_item_once(mpi_environment):
    def pipe():  # each rank's process builds the same pipe
        return IterableWrapper(range(23)).shuffle(seed=5).sharding_filter().map(lambda x: x * 10)
    assert sorted(pipe()) == [x * 10 for x in range(23)]  # a single process reads everything
    shards = []
    for rank in range(3):
        mpi_environment(rank, 3)
        shards.append(list(pipe()))
        assert len(pipe()) == len(shards[-1])
    assert_each_item_once(shards, [x * 10 for x in range(23)])


def test_sharding_filter_by_worker_within_rank(mpi_environment, monkeypatch):
    pipe = IterableWrapper(range(30)).sharding_filter()
    shards = []
    for rank in range(2):
        mpi_environment(rank, 2)
        for worker in range(3):
            monkeypatch.setattr(dataset, "_worker_info", dataset.WorkerInfo(worker, 3, 0))
            shards.append(list(pipe))
    assert_each_item_once(shards, range(30))
    assert shards[1 * 3 + 2] == list(range(5, 30, 6))  # rank 1, worker 2: share 5 of 6
    assert pipe.shards_by_worker and not IterableWrapper([]).shard(2, 0).shards_by_worker
