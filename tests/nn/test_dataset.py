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
