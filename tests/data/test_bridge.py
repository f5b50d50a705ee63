"""Pipes feeding metajit.dataset: DataLoader (two worker processes included: every item
exactly once, shuffles agreed between workers, seeded epochs) and the Jittor-style Dataset."""
import collections
import json
import os

import numpy as np
import pytest

import metajit as jt
from metajit import distributed
from metajit.data import DataPipeDataset, IterableWrapper, SequenceWrapper, Shuffler, prepare_epoch
from metajit.dataset import DataLoader, get_worker_info


def tag_with_worker(x):
    info = get_worker_info()
    return x, -1 if info is None else info.id


def loaded(loader):
    """(item, worker) pairs of a loader over tag_with_worker samples."""
    return [(x, w) for items, workers in loader for x, w in zip(items.numpy().tolist(), workers.numpy().tolist())]


def test_two_workers_each_read_their_share_of_a_sharded_pipe():
    reads = collections.Counter()

    def count_read(x):  # runs in the worker that reads x: a fork copy of this closure
        reads[x] += 1
        return x

    pipe = IterableWrapper(range(21)).sharding_filter().map(count_read).map(tag_with_worker)
    loader = DataLoader(pipe, batch_size=4, num_workers=2)
    pairs = loaded(loader)
    assert sorted(x for x, _ in pairs) == list(range(21)) and len(loader) == 6
    assert all(worker == x % 2 for x, worker in pairs)  # worker k keeps items k, k + 2, ...
    assert not reads  # the reads happened in the workers, never here


def test_workers_share_an_unsharded_pipe_by_position():
    pipe = IterableWrapper(range(15)).map(tag_with_worker)
    pairs = loaded(DataLoader(pipe, batch_size=3, num_workers=2))
    assert sorted(x for x, _ in pairs) == list(range(15)) and {w for _, w in pairs} == {0, 1}


def test_workers_agree_on_each_epochs_shuffle_and_seeds_repeat_epochs():
    def epochs(seed, count=2):
        pipe = IterableWrapper(range(30)).shuffle(buffer_size=8).sharding_filter().map(tag_with_worker)
        loader = DataLoader(pipe, batch_size=5, num_workers=2, seed=seed)
        return [[x for x, _ in loaded(loader)] for _ in range(count)]
    first = epochs(seed=3)
    assert all(sorted(order) == list(range(30)) for order in first)  # each item exactly once
    assert first[0] != first[1] and first == epochs(seed=3) and first != epochs(seed=4)


def test_a_pipes_own_seed_drives_the_loader_without_one():
    def batches(workers):
        loader = DataLoader(IterableWrapper(range(12)).shuffle(seed=9).sharding_filter(), batch_size=12,
                            num_workers=workers)
        return [batch.numpy().tolist() for batch in loader]
    shuffled = list(IterableWrapper(range(12)).shuffle(seed=9))
    assert batches(0) == [shuffled]
    # both workers shuffle alike and keep every other item; the first worker's chunk comes first
    assert batches(2) == [shuffled[0::2] + shuffled[1::2]]


def test_loader_shuffle_switches_shuffling_on_or_adds_it():
    off = IterableWrapper(range(20)).shuffle(seed=0).set_shuffle(False)
    assert [b.numpy().tolist() for b in DataLoader(off, batch_size=20)] == [list(range(20))]
    switched = [b.numpy().tolist() for b in DataLoader(off, batch_size=20, shuffle=True, seed=1)][0]
    added = [b.numpy().tolist() for b in DataLoader(IterableWrapper(range(20)), batch_size=20, shuffle=True,
                                                     seed=1)][0]
    assert sorted(switched) == sorted(added) == list(range(20)) and switched != list(range(20))


def test_prepare_epoch_fixes_the_order_before_the_pipe_is_copied():
    pipe = IterableWrapper(range(10)).shuffle()
    assert prepare_epoch(pipe, shuffle=False, seed=5) is pipe
    order = list(pipe)
    prepare_epoch(pipe, shuffle=False, seed=5)
    assert list(pipe) == order
    added = prepare_epoch(IterableWrapper(range(10)), shuffle=True, seed=5)
    assert isinstance(added, Shuffler) and sorted(added) == list(range(10))


def test_a_pipe_can_batch_itself_for_the_loader():
    pipe = IterableWrapper([(np.full(2, i), i) for i in range(5)]).batch(2).collate()
    batches = list(DataLoader(pipe, batch_size=None, num_workers=2))
    assert [labels.numpy().tolist() for _, labels in batches] == [[0, 1], [2, 3], [4]]


def test_jittor_style_dataset_over_a_map_pipe():
    dataset = DataPipeDataset(SequenceWrapper(list(range(10))).map(lambda i: (np.float32(i), i * i)))
    batches = list(dataset.set_attrs(batch_size=4))
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 4, 9], [16, 25, 36, 49], [64, 81]]
    assert dataset[3][1] == 9 and len(dataset) == 10 and dataset.batch_len() == 3
    shuffled = [b[0].numpy().tolist() for b in dataset.set_attrs(shuffle=True, seed=2)]
    assert sorted(sum(shuffled, [])) == list(range(10)) and sum(shuffled, []) != list(range(10))


def test_jittor_style_dataset_over_an_iter_pipe_with_workers():
    dataset = DataPipeDataset(IterableWrapper(range(12)).sharding_filter().map(tag_with_worker))
    pairs = loaded(dataset.set_attrs(batch_size=5, shuffle=True, seed=0, num_workers=2))
    assert sorted(x for x, _ in pairs) == list(range(12)) and {w for _, w in pairs} == {0, 1}
    assert dataset.batch_len() == 3
    with pytest.raises(jt.MetajitValueError, match="read by iteration"):
        dataset[0]
    with pytest.raises(jt.MetajitValueError, match="wraps an IterDataPipe or a MapDataPipe, not a list"):
        DataPipeDataset([1, 2])


class RankZeroDraw:
    """A stand-in communicator: every rank receives rank 0's draw, 1234, and the other
    ranks always agree (an all-reduce returns this rank's value)."""

    def broadcast_object(self, value, root=0):
        return 1234

    def all_reduce(self, array, op):
        return array


def simulate_rank(monkeypatch, rank, world_size):
    monkeypatch.setattr(distributed, "in_mpi", True)
    monkeypatch.setattr(distributed, "mpi", RankZeroDraw())
    monkeypatch.setattr(distributed, "rank", rank)
    monkeypatch.setattr(distributed, "world_size", world_size)


def test_mpi_ranks_agree_on_an_unseeded_shuffle(monkeypatch):
    """Two simulated ranks with different global generators cut the same order, because
    prepare_epoch takes rank 0's draw."""
    simulate_rank(monkeypatch, 0, 2)
    orders = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        orders.append(list(prepare_epoch(IterableWrapper(range(20)).shuffle(), shuffle=False, seed=None)))
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(20))
    seeded = IterableWrapper(range(20)).shuffle(seed=3)
    prepare_epoch(seeded, shuffle=False, seed=None)  # a stage's own seed needs no broadcast
    assert list(seeded) == list(IterableWrapper(range(20)).shuffle(seed=3))


@pytest.mark.parametrize("sharded", [True, False])
def test_under_simulated_mpi_each_rank_and_worker_loads_its_share_in_global_batches(monkeypatch, sharded):
    items = []
    for rank in range(2):
        simulate_rank(monkeypatch, rank, 2)
        pipe = IterableWrapper(range(22)).shuffle()
        pipe = pipe.sharding_filter() if sharded else pipe
        loader = DataLoader(pipe.map(tag_with_worker), batch_size=4, num_workers=2)
        batches = [items.numpy().tolist() for items, _ in loader]
        assert {len(batch) for batch in batches[:-1]} == {2} and len(loader) == len(batches) == 6
        items += sum(batches, [])
    assert sorted(items) == list(range(22))
    with pytest.raises(jt.MetajitValueError, match="batch_size 3 must be a multiple of 2"):
        list(DataLoader(IterableWrapper(range(4)), batch_size=3))


def test_a_two_rank_job_loads_every_item_once_per_epoch():
    from tests.distributed.conftest import mpirun
    result = mpirun(os.path.join(os.path.dirname(__file__), "scripts", "pipe_shards.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    orders = []
    for line in result.stdout.strip().splitlines():
        ranks = json.loads(line)
        items = []
        for *batches, length in ranks:
            assert len(batches) == length and all(len(batch) == 2 for batch in batches[:-1])
            items += sum(batches, [])
        assert sorted(items) == list(range(30))
        orders.append(items)
    assert len(orders) == 2 and orders[0] != orders[1]
