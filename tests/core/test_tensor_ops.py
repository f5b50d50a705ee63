"""masked_fill, index_select, gather, tril/triu, diag, trace, outer, roll: values and
gradients against torch (an independent oracle), in-place spellings, bad input."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


def check(function, torch_function, *arrays, grad=True):
    """Values and (for float inputs) the gradient of sum(out * weight) against torch."""
    inputs = [jt.array(a) for a in arrays]
    result = function(*inputs)
    tensors = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    expected = torch_function(*tensors)
    np.testing.assert_allclose(result.numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    if not grad:
        return
    weight = np.random.default_rng(7).standard_normal(tuple(expected.shape)).astype(np.float32)
    (expected * torch.tensor(weight)).sum().backward()
    floats = [(v, t) for v, t, a in zip(inputs, tensors, arrays) if a.dtype.kind == "f"]
    grads = jt.grad((result * jt.array(weight)).sum(), [v for v, _ in floats])
    for got, (_, tensor) in zip(grads, floats):
        np.testing.assert_allclose(got.numpy(), tensor.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture
def x(rng):
    return rng.standard_normal((4, 5)).astype(np.float32)


def test_masked_fill(x):
    check(lambda a: a.masked_fill(a < 0, 0.25), lambda a: a.masked_fill(a < 0, 0.25), x)
    row = np.array([True, False, True, False, False])
    check(lambda a: jt.masked_fill(a, jt.array(row), -1.0), lambda a: a.masked_fill(torch.tensor(row), -1.0), x)


def test_index_select(x):
    index = np.array([3, 0, 3, -1], np.int64)
    check(lambda a: a.index_select(1, jt.array(index)), lambda a: a.index_select(1, torch.tensor(index % 5)), x)
    check(lambda a: jt.index_select(a, 0, jt.array(index[:2])), lambda a: a.index_select(0, torch.tensor(index[:2])), x)
    with pytest.raises(jt.MetajitIndexError, match="index 5 is out of range for dimension 1 of size 5"):
        jt.array(x).index_select(1, jt.array(np.array([5])))


@pytest.mark.parametrize("dim,shape", [(0, (2, 5)), (1, (4, 7)), (-1, (3, 2))])
def test_gather(x, rng, dim, shape):
    index = rng.integers(0, x.shape[dim], shape)
    check(lambda a: a.gather(dim, jt.array(index)), lambda a: a.gather(dim, torch.tensor(index)), x)


def test_gather_checks_its_index(x):
    with pytest.raises(jt.MetajitIndexError, match="index 9 is out of range for dimension 1 of size 5"):
        jt.array(x).gather(1, jt.array(np.array([[0, 9]])))
    computed = (jt.array(np.array([[1, 2]])) * 4).int64()  # a device-side index: checked when realised
    with pytest.raises(jt.MetajitIndexError, match="index 8 is out of range for dimension 1 of size 5"):
        jt.array(x).gather(1, computed).numpy()
    with pytest.raises(jt.MetajitShapeError, match="gather: index shape"):
        jt.array(x).gather(1, jt.array(np.zeros((5, 2), np.int64)))


@pytest.mark.parametrize("diagonal", [-2, 0, 1, 4])
def test_triangles_and_diagonals(x, diagonal):
    check(lambda a: a.tril(diagonal), lambda a: a.tril(diagonal), x)
    check(lambda a: jt.triu(a, diagonal), lambda a: a.triu(diagonal), x)
    check(lambda a: a.diag(diagonal), lambda a: a.diag(diagonal), x)
    check(lambda a: a[0].diag(diagonal), lambda a: a[0].diag(diagonal), x)
    batch = np.stack([x, -x])
    check(lambda a: a.tril(diagonal), lambda a: a.tril(diagonal), batch)


def test_trace_and_outer(x):
    check(lambda a: a.trace(), lambda a: a.trace(), x)
    check(lambda a, b: a.outer(b), lambda a, b: a.outer(b), x[0], x[1, :3])
    with pytest.raises(jt.MetajitShapeError, match="outer expects 1-d Vars"):
        jt.outer(jt.array(x), jt.array(x[0]))


@pytest.mark.parametrize("shifts,dims", [(2, 1), (-1, 0), ((1, -3), (0, 1)), (7, None), (13, 1)])
def test_roll(x, shifts, dims):
    check(lambda a: a.roll(shifts, dims), lambda a: a.roll(shifts, dims), x)


def test_in_place_spellings(x):
    y = jt.array(x)
    assert y.clamp_(-0.5, 0.5) is y
    np.testing.assert_array_equal(y.numpy(), np.clip(x, -0.5, 0.5))
    y.masked_fill_(y > 0.25, 9.0)
    np.testing.assert_array_equal(y.numpy(), np.where(np.clip(x, -0.5, 0.5) > 0.25, 9.0, np.clip(x, -0.5, 0.5)))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_and_cumprod(x, dim):
    check(lambda a: a.cumsum(dim), lambda a: a.cumsum(dim), x)
    check(lambda a: jt.cumprod(a, dim), lambda a: a.cumprod(dim), (x * 0.5 + 1).astype(np.float32))
    ints = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(jt.array(ints).cumsum(1).numpy(), np.cumsum(ints, 1))
    np.testing.assert_array_equal(jt.array(ints > 0).cumsum(1).numpy(), np.cumsum(ints > 0, 1))


def sorted_input(rng):
    data = rng.standard_normal((3, 9)).astype(np.float32)
    data[0, 2] = np.nan
    data[1, 1] = data[1, 4] = data[1, 7]  # ties keep their order (stable)
    data[2, :4] = [0.0, -0.0, np.inf, -np.inf]
    return data


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [1, 0])
def test_sort_and_argsort_match_torch_stable_sort(rng, descending, dim):
    data = sorted_input(rng)
    values, indices = jt.array(data).sort(dim, descending=descending)
    want_values, want_indices = torch.sort(torch.tensor(data), dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(values.numpy(), want_values.numpy())
    np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
    assert indices.dtype == "int64"
    np.testing.assert_array_equal(jt.argsort(jt.array(data), dim, descending).numpy(), want_indices.numpy())
    finite = np.nan_to_num(data, posinf=3.0, neginf=-3.0)
    check(lambda a: a.sort(dim, descending)[0], lambda a: torch.sort(a, dim=dim, descending=descending, stable=True)[0],
          finite)


def test_topk_and_kthvalue(rng):
    data = rng.standard_normal((5, 6)).astype(np.float32)
    for largest in (True, False):
        values, indices = jt.array(data).topk(3, 0, largest=largest)
        want = torch.topk(torch.tensor(data), 3, 0, largest=largest)
        np.testing.assert_array_equal(values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
    check(lambda a: a.topk(2)[0], lambda a: torch.topk(a, 2)[0], data)
    values, indices = jt.array(data).kthvalue(4, 1, keepdim=True)
    want = torch.kthvalue(torch.tensor(data), 4, 1, keepdim=True)
    np.testing.assert_array_equal(values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
    with pytest.raises(jt.MetajitShapeError, match="topk: k=7 is out of range"):
        jt.array(data).topk(7)
