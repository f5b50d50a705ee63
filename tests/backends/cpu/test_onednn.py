"""oneDNN GEMM wrapper: every operand/output layout against numpy, and the numpy fallback."""
import numpy as np
import pytest

import metajit as jt
from metajit.backends.cpu import onednn

needs_onednn = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")


def strided(rng, shape, layout):
    """A float32 array of ``shape`` stored row-major, column-major or with padded rows."""
    if layout == "row":
        return rng.standard_normal(shape).astype(np.float32)
    if layout == "column":
        return rng.standard_normal(shape[::-1]).astype(np.float32).T
    padded = rng.standard_normal((shape[0], shape[1] + 3)).astype(np.float32)
    return padded[:, 1:shape[1] + 1]


@needs_onednn
@pytest.mark.parametrize("a_layout", ["row", "column", "padded"])
@pytest.mark.parametrize("b_layout", ["row", "column", "padded"])
@pytest.mark.parametrize("out_layout", ["row", "column"])
@pytest.mark.parametrize("m,k,n", [(7, 5, 3), (1, 9, 4), (6, 1, 1), (33, 17, 65)])
def test_sgemm_matches_numpy_for_every_layout(rng, a_layout, b_layout, out_layout, m, k, n):
    a, b = strided(rng, (m, k), a_layout), strided(rng, (k, n), b_layout)
    out = np.full((m, n), np.nan, np.float32) if out_layout == "row" else np.full((n, m), np.nan, np.float32).T
    onednn.sgemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("a_shape,b_shape", [
    ((4, 6, 5), (5, 3)), ((4, 6, 5), (4, 5, 3)), ((1, 6, 5), (4, 5, 3)), ((2, 1, 6, 5), (3, 5, 2)),
    ((300, 1, 10), (300, 10, 1)), ((3, 64, 40), (3, 40, 64)),
])
def test_batched_sgemm_broadcasts_like_numpy(rng, a_shape, b_shape):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    expected = a @ b
    out = np.empty(expected.shape, np.float32)
    onednn.batched_sgemm(a, b, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_sgemm_with_empty_reduction_gives_zeros():
    if onednn.library() is None:
        pytest.skip("oneDNN not installed")
    out = np.full((3, 2), np.nan, np.float32)
    onednn.sgemm(np.zeros((3, 0), np.float32), np.zeros((0, 2), np.float32), out)
    assert (out == 0).all()


def test_matmul_falls_back_to_numpy_without_onednn(rng, monkeypatch):
    monkeypatch.setattr(onednn, "_library", None)
    a = rng.standard_normal((2, 9, 7)).astype(np.float32)
    b = rng.standard_normal((7, 4)).astype(np.float32)
    product = jt.array(a) @ jt.array(b)
    np.testing.assert_allclose(product.numpy(), a @ b, rtol=1e-5, atol=1e-5)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(onednn, "_library", onednn._UNLOADED)
    monkeypatch.setenv("METAJIT_ONEDNN_LIBRARY", "0")
    assert onednn.library() is None
