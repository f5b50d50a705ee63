"""Samplers (Jittor's and PyTorch's): the orders they produce, with Jittor's set_attrs and
PyTorch's DataLoader, against torch.utils.data where the order is deterministic."""
import collections

import numpy as np
import pytest

import metajit as jt
from metajit.dataset import (BatchSampler, DataLoader, RandomSampler, SequentialSampler, SubsetRandomSampler,
                             TensorDataset, WeightedRandomSampler)

torch = pytest.importorskip("torch")


@pytest.fixture
def data():
    return TensorDataset(np.arange(10, dtype=np.float32), np.arange(10, dtype=np.int32) * 2)


def firsts(batches):
    return [batch[0].numpy().tolist() for batch in batches]


def test_sequential_and_batch_samplers_match_torch(data):
    assert list(SequentialSampler(data)) == list(torch.utils.data.SequentialSampler(range(10)))
    for drop_last in (False, True):
        ours = list(BatchSampler(SequentialSampler(data), 3, drop_last))
        theirs = list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 3, drop_last))
        assert ours == theirs and len(BatchSampler(SequentialSampler(data), 3, drop_last)) == len(theirs)


def test_random_samplers_permute_or_draw_and_follow_set_seed(data):
    jt.set_seed(5)
    first = list(RandomSampler(data))
    assert sorted(first) == list(range(10))
    jt.set_seed(5)
    assert list(RandomSampler(data)) == first
    drawn = list(RandomSampler(data, replacement=True, num_samples=25, generator=np.random.default_rng(0)))
    assert len(drawn) == 25 and all(0 <= i < 10 for i in drawn)
    subset = list(SubsetRandomSampler(data, [1, 4, 7]))  # Jittor's signature
    assert sorted(subset) == [1, 4, 7] and sorted(SubsetRandomSampler([2, 3])) == [2, 3]  # PyTorch's
    with pytest.raises(jt.MetajitValueError, match="exceeds the dataset"):
        RandomSampler(data, num_samples=11)


def test_weighted_sampler_follows_its_weights():
    sampler = WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=np.random.default_rng(1))
    counts = collections.Counter(sampler)
    assert counts[0] == 0 and 0.7 < counts[2] / 4000 < 0.8
    assert sorted(WeightedRandomSampler([1, 1, 0, 2], 3, replacement=False)) in ([0, 1, 3],)
    with pytest.raises(jt.MetajitValueError, match="only 2 nonzero weights"):
        WeightedRandomSampler([1, 0, 2], 3, replacement=False)
    with pytest.raises(jt.MetajitValueError, match="non-negative"):
        WeightedRandomSampler([1, -1], 2)


def test_samplers_drive_jittor_datasets_and_pytorch_loaders(data):
    assert firsts(data.set_attrs(batch_size=4, sampler=SequentialSampler(data))) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader = DataLoader(data, batch_size=2, sampler=SubsetRandomSampler([3, 5, 9]))
    batches = firsts(loader)
    assert len(loader) == 2 and sorted(sum(batches, [])) == [3, 5, 9]
    by_batches = DataLoader(data, batch_sampler=BatchSampler(SequentialSampler(data), 4, drop_last=True))
    assert len(by_batches) == 2 and firsts(by_batches) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    labels = [batch[1].numpy().tolist() for batch in by_batches]
    assert labels == [[0, 2, 4, 6], [8, 10, 12, 14]]
    with pytest.raises(jt.MetajitValueError, match="shuffle=True cannot be combined with a sampler"):
        DataLoader(data, shuffle=True, sampler=SequentialSampler(data))
