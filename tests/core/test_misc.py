"""jt.misc: Jittor's miscellaneous ops under its names, unbind/view_as/normalize/knn against numpy and torch."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


def test_misc_names_are_the_ops(rng):
    data = rng.standard_normal((4, 6)).astype(np.float32)
    x = jt.array(data)
    for got, want in ((jt.misc.repeat(x, 2, 1), np.tile(data, (2, 1))), (jt.misc.flip(x, 1), data[:, ::-1]),
                      (jt.misc.cumsum(x, 1), np.cumsum(data, 1)), (jt.misc.triu(x), np.triu(data)),
                      (jt.misc.diagonal(x), np.diagonal(data)), (jt.misc.chunk(x, 3, 1)[2], data[:, 4:])):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    for name in jt.misc.__all__:
        assert callable(getattr(jt.misc, name)), name


def test_unbind_view_as_normalize(rng):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    data[1] = 0.0  # a zero row: normalize divides by eps, not by 0
    pieces = jt.misc.unbind(jt.array(data), 1)
    assert len(pieces) == 4
    np.testing.assert_array_equal(pieces[2].numpy(), data[:, 2])
    assert jt.misc.view_as(jt.array(data), jt.zeros(2, 6)).shape == (2, 6)
    x = jt.array(data)
    got = jt.misc.normalize(x, dim=1)
    t = torch.tensor(data, requires_grad=True)
    want = torch.nn.functional.normalize(t, dim=1)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-6, atol=1e-7)
    (want * torch.arange(12.0).reshape(3, 4)).sum().backward()
    gradient = jt.grad((got * jt.array(np.arange(12.0, dtype=np.float32).reshape(3, 4))).sum(), x)
    np.testing.assert_allclose(gradient.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_knn_matches_brute_force(rng):
    queries, points = rng.standard_normal((2, 5, 3)).astype(np.float32), rng.standard_normal((2, 7, 3)).astype(np.float32)
    distances, indices = jt.misc.knn(jt.array(queries), jt.array(points), 3)
    squared = ((queries[:, :, None] - points[:, None]) ** 2).sum(-1)
    want = np.argsort(squared, -1, kind="stable")[..., :3]
    np.testing.assert_array_equal(indices.numpy(), want)
    np.testing.assert_allclose(distances.numpy(), np.take_along_axis(squared, want, -1), rtol=1e-4, atol=1e-5)
    with pytest.raises(jt.MetajitShapeError, match="points of dimension 3 and 2 differ"):
        jt.misc.knn(jt.array(queries), jt.array(points[..., :2]), 1)
