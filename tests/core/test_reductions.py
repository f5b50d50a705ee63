"""Reductions against numpy: every subset of axes, keepdims, negative axes, empty inputs."""
import itertools

import numpy as np
import pytest

import metajit as jt

SHAPE = (2, 3, 4)
AXIS_SUBSETS = [None, 0, -1, (0, 2), (1,), (0, 1, 2), ()]


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean"])
@pytest.mark.parametrize("axes", AXIS_SUBSETS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_matches_numpy(name, axes, keepdims, rng):
    data = rng.uniform(0.5, 1.5, size=SHAPE).astype(np.float32)
    numpy_name = {"max": "amax", "min": "amin"}.get(name, name)
    expected = getattr(np, numpy_name)(data, axis=axes, keepdims=keepdims)
    result = getattr(jt.array(data), name)(dim=axes, keepdims=keepdims)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)


def test_jittor_and_torch_dim_spellings():
    x = jt.array(np.arange(24.0).reshape(SHAPE))
    np.testing.assert_array_equal(x.sum(1).numpy(), np.arange(24.0).reshape(SHAPE).sum(1))
    np.testing.assert_array_equal(x.sum(0, 2).numpy(), np.arange(24.0).reshape(SHAPE).sum((0, 2)))
    assert jt.sum(x, dims=[0, 1], keepdims=True).shape == (1, 1, 4)
    assert x.mean(axis=-1, keepdim=True).shape == (2, 3, 1)


def test_integer_and_bool_sums_accumulate_in_int64():
    x = jt.array(np.full((4,), 2**30, dtype=np.int32))
    assert x.sum().dtype == "int64"
    assert x.sum().item() == 2**32
    assert (jt.array([1.0, -1.0, 2.0]) > 0).sum().item() == 2


def test_any_all():
    x = jt.array([[0, 1], [0, 0]])
    np.testing.assert_array_equal(x.any(1).numpy(), [True, False])
    np.testing.assert_array_equal(x.all(0).numpy(), [False, False])
    assert jt.array([True, True]).all().item() is True


def test_empty_reductions_give_identities_or_raise_like_numpy():
    empty = jt.zeros((0, 3))
    np.testing.assert_array_equal(empty.sum(0).numpy(), [0, 0, 0])
    np.testing.assert_array_equal(empty.prod(0).numpy(), [1, 1, 1])
    assert empty.sum().item() == 0
    for reduce, numpy_reduce in ((lambda v: v.max(), np.max), (lambda v: v.min(0), lambda a: a.min(0)),
                                 (lambda v: jt.max(v.transpose(), 1), lambda a: a.T.max(1))):
        with pytest.raises(ValueError):
            numpy_reduce(np.zeros((0, 3)))
        with pytest.raises(jt.MetajitValueError, match="zero-size dimension.*test_reductions.py"):
            reduce(empty)
    assert empty.max(1).shape == np.zeros((0, 3)).max(1).shape == (0,)


def test_reductions_accept_python_lists():
    data = [[1.0, 5.0], [3.0, 2.0]]
    for name in ("sum", "prod", "max", "min", "mean", "any", "all"):
        np.testing.assert_allclose(getattr(jt, name)(data, 1).numpy(), getattr(np, name)(data, 1))
    np.testing.assert_allclose(jt.norm([3.0, 4.0]).item(), 5.0)
    np.testing.assert_allclose(jt.var([1.0, 2.0, 4.0]).item(), np.var([1.0, 2.0, 4.0], ddof=1), rtol=1e-6)
    assert jt.argmax([1, 5, 2])[0].item() == 1


def test_max_propagates_nan():
    assert np.isnan(jt.array([1.0, np.nan, 3.0]).max().item())


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_argmax_argmin_return_indices_and_values(dim, rng):
    data = rng.integers(0, 4, size=(3, 5)).astype(np.float32)
    index, value = jt.array(data).argmax(dim)
    np.testing.assert_array_equal(index.numpy(), np.argmax(data, axis=dim))
    np.testing.assert_array_equal(value.numpy(), np.max(data, axis=dim))
    index, value = jt.argmin(jt.array(data), dim, keepdims=True)
    np.testing.assert_array_equal(index.numpy(), np.argmin(data, axis=dim)[..., None]
                                  if dim != 0 else np.argmin(data, axis=0)[None])


def test_argmax_finds_first_nan_like_numpy():
    data = np.array([1.0, np.nan, 5.0, np.nan], dtype=np.float32)
    assert jt.array(data).argmax(0)[0].item() == np.argmax(data)
    assert jt.array(data).argmax()[0].item() == 1


@pytest.mark.parametrize("p", [1, 2, 3, float("inf"), float("-inf"), 0, "fro"])
def test_norm(p, rng):
    data = rng.standard_normal((3, 4))
    numpy_ord = 2 if p == "fro" else p
    expected = np.linalg.norm(data.reshape(-1), ord=numpy_ord)
    np.testing.assert_allclose(jt.array(data).norm(p).item(), expected, rtol=1e-10)
    np.testing.assert_allclose(jt.norm(jt.array(data), p, dim=1).numpy(),
                               np.linalg.norm(data, ord=numpy_ord, axis=1), rtol=1e-10)


@pytest.mark.parametrize("p", [0.5, 1, 1.5, 2, 3, float("inf"), float("-inf"), 0, -1.5])
def test_norm_gradients_match_torch_at_zero_norms_and_zero_elements(p):
    torch = pytest.importorskip("torch")
    rows = np.array([[0.0, 0.0, 0.0], [0.0, -2.0, 0.5], [3.0, -4.0, 1.0], [-1e-30, 0.0, 1e-30],
                     [np.inf, -np.inf, 2.0]])
    x, t = jt.array(rows), torch.tensor(rows, requires_grad=True)
    norms, torch_norms = jt.norm(x, p, dim=1), torch.linalg.vector_norm(t, p, dim=1)
    np.testing.assert_allclose(norms.numpy(), torch_norms.detach().numpy(), rtol=1e-12)
    weights = np.array([1.0, -2.0, 0.5, 3.0, 1.0])
    (torch_norms * torch.tensor(weights)).sum().backward()
    want = np.zeros(rows.shape) if t.grad is None else t.grad.numpy()  # None: p = 0 has no gradient
    np.testing.assert_allclose(jt.grad((norms * jt.array(weights)).sum(), x).numpy(), want, rtol=1e-10, atol=1e-300)


def test_var_std_unbiased_by_default(rng):
    data = rng.standard_normal((4, 5))
    x = jt.array(data)
    np.testing.assert_allclose(x.var().item(), data.var(ddof=1))
    np.testing.assert_allclose(x.std(dim=0).numpy(), data.std(axis=0, ddof=1))
    np.testing.assert_allclose(x.var(1, unbiased=False, keepdims=True).numpy(),
                               data.var(axis=1, keepdims=True))


def test_every_axis_subset_of_4d(rng):
    data = rng.standard_normal((2, 3, 1, 2))
    for count in range(5):
        for axes in itertools.combinations(range(4), count):
            np.testing.assert_allclose(jt.array(data).sum(dims=axes).numpy(), data.sum(axis=axes),
                                       rtol=1e-12, atol=1e-12)
