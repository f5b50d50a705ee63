"""Long rows sort with the bitonic network: indices equal torch's stable sort at ties, nans,
infinities and integer extremes; values and gradients flow as for short rows."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit import tensor_ops
from metajit.bitonic import sorting_order

LONG = 61  # not a power of two: the network pads


@pytest.fixture(autouse=True)
def short_rows_take_the_network(monkeypatch):
    """Rows longer than 16 sort with the network (the same code at a test's size)."""
    monkeypatch.setattr(tensor_ops, "RANKED_SORT_MAX", 16)


def rows(dtype, count, rng):
    """Rows with many ties and the dtype's extremes (nan and infinities for floats)."""
    if np.issubdtype(dtype, np.floating):
        values = rng.integers(-3, 4, (3, count)).astype(dtype)
        values[0, ::7] = np.nan
        values[1, ::5] = np.inf
        values[1, 1::5] = -np.inf
        values[2, :3] = [np.finfo(dtype).max, np.finfo(dtype).min, np.finfo(dtype).tiny][:count]
        return values
    if dtype == np.bool_:
        return rng.integers(0, 2, (3, count)).astype(bool)
    values = rng.integers(-3, 4, (3, count)).astype(dtype)
    values[0, :2] = [np.iinfo(dtype).max, np.iinfo(dtype).min][:count]
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("descending", [False, True])
def test_long_rows_sort_as_torchs_stable_sort(dtype, descending):
    data = rows(dtype, LONG, np.random.default_rng(3))
    values, indices = jt.array(data).sort(-1, descending=descending)
    expected = torch.sort(torch.from_numpy(data), dim=-1, descending=descending, stable=True)
    np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())
    np.testing.assert_array_equal(values.numpy(), expected.values.numpy())


@pytest.mark.parametrize("count", [1, 2, 3, 16, 17, 100])
def test_the_network_alone_at_any_length(count):
    data = rows(np.float32, count, np.random.default_rng(count))
    for descending in (False, True):
        expected = torch.sort(torch.from_numpy(data), dim=-1, descending=descending, stable=True).indices
        np.testing.assert_array_equal(sorting_order(jt.array(data), descending).numpy(), expected.numpy())


def test_long_rows_along_another_dim_topk_and_gradients():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((LONG, 2, 3)).astype(np.float32)
    x, reference = jt.array(data), torch.tensor(data, requires_grad=True)
    values, indices = x.topk(5, dim=0)
    expected = reference.topk(5, dim=0)
    np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())
    weights = rng.standard_normal((5, 2, 3)).astype(np.float32)
    (expected.values * torch.tensor(weights)).sum().backward()
    gradient = jt.grad((values * jt.array(weights)).sum(), x)
    np.testing.assert_allclose(gradient.numpy(), reference.grad.numpy())
    np.testing.assert_array_equal(x.argsort(0).numpy(), torch.from_numpy(data).argsort(dim=0, stable=True).numpy())


def test_top_one_is_the_first_maximum_with_nans_first():
    data = np.array([[1, 3, 3, np.nan], [2, 5, 5, 1]], np.float32)
    ours, theirs = jt.array(data).topk(1), torch.from_numpy(data).topk(1)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
    assert ours.indices.dtype == jt.int64
