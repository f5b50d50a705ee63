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
