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


@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("bii->bi", [(2, 3, 3)]),
    ("i,i", [(4,), (4,)]), ("ij->ji", [(3, 4)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]), ("ii", [(3, 3)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]), ("i,j->ij", [(3,), (2,)]), ("ijk,k->ij", [(2, 3, 4), (4,)])])
def test_einsum(rng, equation, shapes):
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    check(lambda *a: jt.einsum(equation, *a), lambda *a: torch.einsum(equation, *a), *arrays)


def test_einsum_refuses_bad_terms():
    with pytest.raises(jt.MetajitShapeError, match="term 'ijk' has 3 letters"):
        jt.einsum("ijk->i", jt.ones((2, 2)))
    with pytest.raises(jt.MetajitShapeError, match="letter 'j' has sizes 3 and 4"):
        jt.einsum("ij,jk->ik", jt.ones((2, 3)), jt.ones((4, 2)))


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    ours = jt.meshgrid(jt.array([1, 2, 3]), jt.array([4, 5]), jt.array([6, 7, 8, 9]), indexing=indexing)
    theirs = torch.meshgrid(torch.tensor([1, 2, 3]), torch.tensor([4, 5]), torch.tensor([6, 7, 8, 9]),
                            indexing=indexing)
    for got, want in zip(ours, theirs):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted(rng, right):
    sequence = np.sort(rng.standard_normal((2, 10)).astype(np.float32), 1)
    values = rng.standard_normal((2, 6)).astype(np.float32)
    values[0, 0], values[1, 1] = sequence[0, 3], sequence[1, 0]
    got = jt.searchsorted(jt.array(sequence), jt.array(values), right=right)
    want = torch.searchsorted(torch.tensor(sequence), torch.tensor(values), right=right)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_histc_and_bincount(rng):
    data = rng.standard_normal(200).astype(np.float32)
    data[:3] = [1.0, -1.0, 5.0]
    for bins, low, high in ((10, -1, 1), (7, 0, 0), (4, -3, 3)):
        np.testing.assert_array_equal(jt.array(data).histc(bins, low, high).numpy(),
                                      torch.histc(torch.tensor(data), bins, low, high).numpy())
    values = rng.integers(0, 6, 30)
    np.testing.assert_array_equal(jt.array(values).bincount(minlength=9).numpy(), np.bincount(values, minlength=9))
    np.testing.assert_allclose(jt.bincount(jt.array(values), jt.array(data[:30])).numpy(),
                               np.bincount(values, data[:30]), rtol=1e-5, atol=1e-6)
    with pytest.raises(jt.MetajitShapeError, match="non-negative"):
        jt.array(np.array([1, -2])).bincount()


def test_cross(rng):
    a, b = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(2))
    check(lambda x, y: x.cross(y), lambda x, y: torch.linalg.cross(x, y), a, b)
    check(lambda x, y: jt.cross(x, y, 0), lambda x, y: torch.linalg.cross(x, y, dim=0), a.T.copy(), b.T.copy())


def test_erfinv_values_edges_and_gradient():
    y = np.array([-1, -0.999999, -0.9, -0.5, 0, 1e-8, 0.3, 0.99, 0.9999, 1, 1.5, np.nan], np.float32)
    np.testing.assert_allclose(jt.array(y).erfinv().numpy(), torch.erfinv(torch.tensor(y)).numpy(),
                               rtol=3e-6, atol=0, equal_nan=True)
    inner = np.linspace(-0.95, 0.95, 11).astype(np.float32)
    check(lambda v: v.erfinv(), lambda v: torch.erfinv(v), inner)


def test_scatter_and_scatter_add(rng, x):
    src = rng.standard_normal((4, 4)).astype(np.float32)
    distinct = np.array([[0, 1, 2, 3], [4, 3, 2, 1], [1, 0, 4, 2], [3, 4, 0, 1]])
    colliding = np.array([[0, 0, 1, 1], [2, 2, 2, 2], [4, 3, 4, 3], [1, 1, 1, 1]])
    check(lambda a, s: a.scatter(1, jt.array(distinct), s), lambda a, s: a.scatter(1, torch.tensor(distinct), s), x, src)
    check(lambda a, s: a.scatter_add(1, jt.array(colliding), s),
          lambda a, s: a.scatter_add(1, torch.tensor(colliding), s), x, src)
    check(lambda a: jt.scatter(a, 0, jt.array(distinct[:2, :3] % 4), 7.0),
          lambda a: a.scatter(0, torch.tensor(distinct[:2, :3] % 4), 7.0), x)
    y = jt.array(x)
    y.scatter_add_(0, jt.array(colliding % 4), jt.array(src))
    np.testing.assert_allclose(y.numpy(), torch.tensor(x).scatter_add(0, torch.tensor(colliding % 4),
                                                                      torch.tensor(src)).numpy(), rtol=1e-6)
    with pytest.raises(jt.MetajitIndexError, match="index 5 is out of range for dimension 1 of size 5"):
        jt.array(x).scatter(1, jt.array(np.array([[5]])), 1.0)


def test_masked_select_and_unique(x):
    mask = x > 0
    np.testing.assert_array_equal(jt.array(x).masked_select(jt.array(mask)).numpy(), x[mask])
    np.testing.assert_array_equal(jt.masked_select(jt.array(x), jt.array(mask[0])).numpy(),
                                  torch.tensor(x).masked_select(torch.tensor(mask[0])).numpy())
    values = np.array([[3, 1, 2], [3, 1, 5]])
    got = jt.array(values).unique(return_inverse=True, return_counts=True)
    want = torch.unique(torch.tensor(values), return_inverse=True, return_counts=True)
    for ours, theirs in zip(got, want):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    rows = np.array([[1, 2], [0, 1], [1, 2]])
    np.testing.assert_array_equal(jt.unique(jt.array(rows), dim=0).numpy(), torch.unique(torch.tensor(rows), dim=0).numpy())


def test_scatter_checks_a_device_index_when_it_realises(x):
    computed = (jt.array(np.array([[1, 2]])) * 4).int64()  # 8 is out of range for size 5
    with pytest.raises(jt.MetajitIndexError, match="index 8 is out of range for dimension 1 of size 5"):
        jt.array(x).scatter_add(1, computed, jt.array(np.ones((1, 2), np.float32))).numpy()


def test_bmm_baddbmm_addmm_match_torch(rng):
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
    bias = rng.standard_normal((3, 5)).astype(np.float32)
    check(jt.bmm, torch.bmm, a, b)
    check(lambda x, y: jt.nn.bmm(x, y), torch.bmm, a, b)
    check(lambda c, x, y: jt.baddbmm(c, x, y, beta=0.5, alpha=2.0),
          lambda c, x, y: torch.baddbmm(c, x, y, beta=0.5, alpha=2.0), bias, a, b)
    check(lambda c, x, y: c.addmm(x, y, alpha=-1), lambda c, x, y: c.addmm(x, y, alpha=-1), bias, a[0], b[0])
    with_nan = np.full((3, 5), np.nan, np.float32)  # beta = 0 ignores the input, nan included
    np.testing.assert_allclose(jt.baddbmm(jt.array(with_nan), jt.array(a), jt.array(b), beta=0).numpy(),
                               torch.baddbmm(torch.tensor(with_nan), torch.tensor(a), torch.tensor(b), beta=0).numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(jt.MetajitShapeError, match=r"bmm expects \(B, n, m\) and \(B, m, p\) .* \(3, 4\)"):
        jt.bmm(jt.array(a[0]), jt.array(b))


def test_pytorch_in_place_methods_against_torch(rng):
    torch = pytest.importorskip("torch")
    data = rng.standard_normal((2, 3)).astype(np.float32)
    other = rng.standard_normal(3).astype(np.float32)
    for name, args, kwargs in (("add_", (other,), {"alpha": 2.0}), ("sub_", (1.5,), {}), ("mul_", (other,), {}),
                               ("div_", (other,), {}), ("pow_", (2.0,), {}), ("zero_", (), {}),
                               ("fill_", (0.25,), {}), ("copy_", (other,), {})):
        ours, theirs = jt.array(data), torch.tensor(data)
        converted = [jt.array(a) if isinstance(a, np.ndarray) else a for a in args]
        assert getattr(ours, name)(*converted, **kwargs) is ours
        getattr(theirs, name)(*[torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, err_msg=name)
    source = jt.array(other)
    target = jt.array(data)
    target.copy_(source * 2.0)
    np.testing.assert_allclose(jt.grad(target.sum(), source).numpy(), np.full(3, 4.0))
    integers = jt.array(np.arange(3, dtype=np.int32))
    assert integers.add_(2).dtype == "int32" and integers.numpy().tolist() == [2, 3, 4]
    with pytest.raises(jt.MetajitDtypeError, match="div_: the result is float32"):
        integers.div_(2)
    assert jt.zeros((2, 3, 4)).dim() == 3 and jt.zeros((2, 3, 4)).mT.shape == (2, 4, 3)
