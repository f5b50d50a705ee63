"""Datasets and loaders: batching, shuffling by seed, drop_last, workers, collation."""
import numpy as np
import pytest

import metajit as jt
from metajit.dataset import DataLoader, Dataset, TensorDataset


class Squares(Dataset):
    def __init__(self, count, **attributes):
        super().__init__(**attributes)
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.array([index], np.float32), {"square": index * index}


def test_jittor_style_set_attrs_batches_in_order():
    batches = list(Squares(10).set_attrs(batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    assert batches[1][1]["square"].numpy().tolist() == [16, 25, 36, 49]
    assert Squares(10).set_attrs(batch_size=4, drop_last=True).batch_len() == 2


def test_shuffle_is_deterministic_per_seed_and_epoch():
    data = TensorDataset(np.arange(20))
    first = [b[0].numpy().tolist() for b in data.set_attrs(batch_size=5, shuffle=True, seed=3)]
    again = [b[0].numpy().tolist() for b in TensorDataset(np.arange(20)).set_attrs(
        batch_size=5, shuffle=True, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(20))
    second_epoch = [b[0].numpy().tolist() for b in data]
    assert second_epoch != first


def test_shuffle_without_a_seed_follows_the_global_seed():
    """As torch.manual_seed does for torch's loader: jt.set_global_seed makes the shuffled
    order repeat from run to run, and the epochs still differ."""
    def two_epochs():
        jt.set_global_seed(7)
        loader = DataLoader(TensorDataset(np.arange(12)), batch_size=4, shuffle=True)
        return [[b[0].numpy().tolist() for b in loader] for _ in range(2)]
    first, again = two_epochs(), two_epochs()
    assert first == again and first[0] != first[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_with_workers_keeps_order(workers):
    loader = DataLoader(Squares(9), batch_size=2, num_workers=workers)
    squares = [s for _, d in loader for s in d["square"].numpy().tolist()]
    assert squares == [i * i for i in range(9)] and len(loader) == 5


def test_bad_configuration_is_reported():
    with pytest.raises(jt.MetajitValueError, match="batch_size"):
        DataLoader(Squares(3), batch_size=0)
    with pytest.raises(jt.MetajitValueError, match="__len__"):
        len(Dataset())


class Countdown(jt.dataset.IterableDataset):
    """An iterable source; reports which worker read each sample."""

    def __init__(self, count):
        self.count = count

    def __iter__(self):
        info = jt.dataset.get_worker_info()
        for value in range(self.count, 0, -1):
            yield value, -1 if info is None else info.id


class FailsAtThree(jt.dataset.IterableDataset):
    def __iter__(self):
        yield from (1, 2)
        raise ZeroDivisionError("three")


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_sources_are_batched_and_each_worker_reads_its_share(workers):
    loader = DataLoader(Countdown(9), batch_size=2, num_workers=workers)
    values, readers = zip(*[(v, w) for values, ids in loader for v, w in zip(values.numpy().tolist(),
                                                                         ids.numpy().tolist())])
    assert sorted(values) == list(range(1, 10))
    if workers:
        # worker k reads samples k, k + 2, ... of 9, 8, ..., 1; chunks of 2 come from the workers in turn
        assert values == (9, 7, 8, 6, 5, 3, 4, 2, 1)
        assert {value: reader for value, reader in zip(values, readers)} == \
            {value: (9 - value) % 2 for value in range(1, 10)}
    else:
        assert values == tuple(range(9, 0, -1)) and set(readers) == {-1}


def test_iterable_source_options_and_errors():
    assert list(DataLoader(Countdown(3), batch_size=None)) == [(3, -1), (2, -1), (1, -1)]
    assert len(list(DataLoader(Countdown(5), batch_size=2, drop_last=True))) == 2
    with pytest.raises(jt.MetajitValueError, match="shuffle=True: Countdown yields samples in its own order"):
        list(DataLoader(Countdown(3), shuffle=True))
    with pytest.raises(jt.MetajitValueError, match="sampler needs a dataset indexed"):
        DataLoader(Countdown(3), sampler=[0, 1])
    with pytest.raises(jt.MetajitValueError, match="batch_size=None"):
        DataLoader(Squares(3), batch_size=None)
    with pytest.raises(ZeroDivisionError, match="(?s)in DataLoader worker process 0:.*three"):
        list(DataLoader(FailsAtThree(), batch_size=1, num_workers=2))
