"""Sharding: every item exactly once across the shards, explicitly, by simulated MPI rank
and by simulated DataLoader worker (a real two-rank job is in test_bridge.py)."""
import collections

import pytest

import metajit as jt
from metajit import dataset, distributed
from metajit.data import IterableWrapper


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
def simulate_rank(monkeypatch):
    """Make this process look like rank ``rank`` of an MPI job of ``size`` processes."""
    def set_rank(rank, size):
        monkeypatch.setattr(distributed, "rank", rank)
        monkeypatch.setattr(distributed, "world_size", size)
    return set_rank


def test_sharding_filter_by_rank_covers_every_item_once(simulate_rank):
    def pipe():  # each rank's process builds the same pipe
        return IterableWrapper(range(23)).shuffle(seed=5).sharding_filter().map(lambda x: x * 10)
    assert sorted(pipe()) == [x * 10 for x in range(23)]  # a single process reads everything
    shards = []
    for rank in range(3):
        simulate_rank(rank, 3)
        shards.append(list(pipe()))
        assert len(pipe()) == len(shards[-1])
    assert_each_item_once(shards, [x * 10 for x in range(23)])


def test_sharding_filter_by_worker_within_rank(simulate_rank, monkeypatch):
    pipe = IterableWrapper(range(30)).sharding_filter()
    shards = []
    for rank in range(2):
        simulate_rank(rank, 2)
        for worker in range(3):
            monkeypatch.setattr(dataset, "_worker_info", dataset.WorkerInfo(worker, 3, 0))
            shards.append(list(pipe))
    assert_each_item_once(shards, range(30))
    assert shards[1 * 3 + 2] == list(range(5, 30, 6))  # rank 1, worker 2: share 2 * 2 + 1 of 6
    assert sorted(shards[3] + shards[4] + shards[5]) == list(range(1, 30, 2))  # rank 1's workers: rank 1's share
    assert pipe.shards_itself and not IterableWrapper([]).shard(2, 0).shards_itself
