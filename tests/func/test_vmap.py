"""vmap against torch.vmap and numpy: every meta-op's batching rule, in_dims/out_dims,
nesting, pytrees, randomness and the errors."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.func import vmap


def both(function_jt, function_torch, *arrays, **options):
    ours = vmap(function_jt, **options)(*[jt.array(a) if isinstance(a, np.ndarray) else a for a in arrays])
    theirs = torch.vmap(function_torch, **options)(*[torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                                                     for a in arrays])
    return ours, theirs


def assert_close(ours, theirs, rtol=1e-5):
    if isinstance(theirs, (tuple, list)):
        for o, t in zip(ours, theirs):
            assert_close(o, t, rtol)
        return
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-6)


def test_elementwise_reduce_and_broadcast(rng):
    x, w = rng.standard_normal((6, 4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    assert_close(*both(lambda a, b: (jt.exp(a) * b + 1).sum(axis=1), lambda a, b: (torch.exp(a) * b + 1).sum(1),
                       x, w, in_dims=(0, None)))
    assert_close(*both(lambda a: a.max(0), lambda a: a.max(0).values, x))
    assert_close(*both(lambda a: a.mean(), lambda a: a.mean(), x))
    assert_close(*both(lambda a: jt.broadcast_to(a[0], (5, 3)), lambda a: a[0].expand(5, 3), x))


def test_indexing_reshape_transpose_and_gathers(rng):
    x = rng.standard_normal((5, 4, 6)).astype(np.float32)
    index = np.array([3, 0, 2], dtype=np.int64)
    assert_close(*both(lambda a: a.transpose(1, 0)[1:, ::2].reshape(-1), lambda a: a.transpose(1, 0)[1:, ::2].reshape(-1), x))
    assert_close(*both(lambda a: a[:, jt.array(index)], lambda a: a[:, torch.from_numpy(index)], x))
    assert_close(*both(lambda a, i: a[i], lambda a, i: a[i], x, np.array([1, 3, 0, 2, 1], dtype=np.int64)))
    assert_close(*both(lambda a: jt.concat([a, a * 2], dim=1), lambda a: torch.cat([a, a * 2], 1), x))


def test_scatter_and_its_gradient(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    index = rng.integers(0, 3, (4, 6)).astype(np.int64)
    ours = vmap(lambda a, i: jt.zeros(3).scatter_add(0, i, a))(jt.array(x), jt.array(index))
    expected = np.zeros((4, 3), np.float32)
    for row in range(4):
        np.add.at(expected[row], index[row], x[row])
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)


def test_matmul_and_linear_layers(rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    assert_close(*both(lambda a, b: a @ b, lambda a, b: a @ b, x, w, in_dims=(0, None)))
    weights = rng.standard_normal((3, 5, 7)).astype(np.float32)
    assert_close(*both(lambda a, b: a @ b, lambda a, b: a @ b, x, weights, in_dims=(None, 0)))


def test_convolution_through_its_decomposition(rng):
    images = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    kernel = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    ours = vmap(lambda image: jt.nn.conv2d(image[None], jt.array(kernel), padding=1)[0])(jt.array(images))
    expected = torch.nn.functional.conv2d(torch.from_numpy(images), torch.from_numpy(kernel), padding=1)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_in_and_out_dims_nesting_and_pytrees(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    assert_close(*both(lambda a: a * 2, lambda a: a * 2, x, in_dims=2, out_dims=1))
    ours = vmap(vmap(lambda a: a.sum()))(jt.array(x))
    np.testing.assert_allclose(ours.numpy(), x.sum(2), rtol=1e-5)
    outer = vmap(vmap(lambda a, b: a * b, in_dims=(0, None)), in_dims=(None, 0))(jt.array(x[0]), jt.array(x[1]))
    np.testing.assert_allclose(outer.numpy(), x[0][None, :, :] * x[1][:, None, :], rtol=1e-6)
    tree = vmap(lambda d: {"sum": d["a"] + d["b"][0], "pair": (d["a"], 3)})({"a": jt.array(x[0]), "b": [jt.array(x[1])]})
    np.testing.assert_allclose(tree["sum"].numpy(), x[0] + x[1])
    assert tree["pair"][1] == 3


def test_outputs_that_do_not_depend_on_the_batch_are_expanded():
    constant = jt.array([1.0, 2.0])
    out = vmap(lambda a: constant * 2)(jt.zeros((4, 3)))
    np.testing.assert_allclose(out.numpy(), np.tile([2.0, 4.0], (4, 1)))


def test_randomness_rules():
    x = jt.zeros((6, 100))
    with pytest.raises(jt.MetajitValueError, match="randomness='different'"):
        vmap(lambda a: a + jt.rand(100))(x)
    same = vmap(lambda a: a + jt.rand(100), randomness="same")(x).numpy()
    assert np.all(same == same[0])
    different = vmap(lambda a: a + jt.rand(100), randomness="different")(x).numpy()
    assert len({tuple(row) for row in different}) == 6


def test_mistakes_are_clear_errors():
    with pytest.raises(jt.MetajitShapeError, match="different sizes"):
        vmap(lambda a, b: a + b)(jt.zeros((3, 2)), jt.zeros((4, 2)))
    with pytest.raises(jt.MetajitValueError, match="was read"):
        vmap(lambda a: a * a.sum().item())(jt.zeros((3, 2)))
    with pytest.raises(jt.MetajitShapeError, match="out of range"):
        vmap(lambda a: a, in_dims=3)(jt.zeros((3, 2)))
    with pytest.raises(jt.MetajitValueError, match="cannot be batched"):
        vmap(lambda a: jt.code(a.shape, a.dtype, [a], cpu_src="@out(0) = 1;"))(jt.zeros((3, 2)))
