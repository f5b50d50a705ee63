"""Max pooling as the library op ``max_pool2d`` on the cpu backend (oneDNN, inference)
against torch: geometries, NaN and infinities, chains with convolutions; gradients keep
the composition."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends.cpu import chaining, onednn

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")

GEOMETRIES = [  # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((1, 32, 14, 14), 3, 1, 1, 1, True),      # GoogLeNet's branch pooling
    ((2, 20, 13, 11), 3, 2, 0, 1, True),      # a last partial window
    ((1, 20, 12, 12), 3, 2, 0, 1, False),     # a window row left out (negative right padding)
    ((1, 3, 9, 9), 2, 2, 1, 1, False),
    ((1, 17, 10, 10), 3, 2, 1, 2, False),     # dilated
    ((1, 16, 7, 9), (2, 3), (1, 2), (1, 0), 1, True),
    ((0, 4, 8, 8), 2, 2, 0, 1, False),        # an empty batch
]


def launched_names(launched):
    return [getattr(entry.kernel, "name", "fused") for entry in launched]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil_mode", GEOMETRIES)
def test_library_max_pool_matches_torch(rng, shape, kernel, stride, padding, dilation, ceil_mode):
    x = rng.standard_normal(shape).astype(np.float32)
    with jt.debug.record_kernels() as launched, jt.no_grad():
        ours = nn.max_pool2d(jt.array(x), kernel, stride, padding, dilation, ceil_mode).numpy()
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding, dilation,
                                              ceil_mode=ceil_mode).numpy()
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)
    if x.size:
        assert launched_names(launched) == ["max_pool2d"]


@pytest.mark.parametrize("chained_source", [False, True])
def test_nan_and_infinite_windows_as_torch(rng, chained_source):
    # a window with a NaN gives NaN, one holding only -inf gives -inf (not the lowest float)
    x = rng.standard_normal((1, 24, 9, 9)).astype(np.float32)
    x[0, 3, 2, 2], x[0, 20, 8, 8], x[0, 5, 0, 0], x[0, 6, 4, 4] = np.nan, np.nan, -np.inf, np.inf
    x[0, 7, :2, :2] = -np.inf
    w = np.eye(24, dtype=np.float32).reshape(24, 24, 1, 1)
    with jt.no_grad():
        source = jt.array(x)
        if chained_source:  # the pooling then reads oneDNN's blocked layout
            source = nn.conv2d(source, jt.array(w), jt.zeros(24))
        ours = nn.max_pool2d(source, 3, 1, 1, ceil_mode=True).numpy()
    source = torch.from_numpy(x)
    if chained_source:  # a NaN or infinite pixel makes every channel NaN there (0 * NaN in the sums)
        source = torch.nn.functional.conv2d(source, torch.from_numpy(w))
    expected = torch.nn.functional.max_pool2d(source, 3, 1, 1, ceil_mode=True).numpy()
    assert np.isnan(expected).sum() >= 13
    assert chained_source or expected[0, 7, 0, 0] == -np.inf
    np.testing.assert_array_equal(ours, expected)


def test_pooling_between_convolutions_is_chained(rng, monkeypatch):
    seen = []
    found = chaining.modes_for
    monkeypatch.setattr(chaining, "modes_for", lambda launches, key: seen.append(found(launches, key)) or seen[-1])
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w1 = rng.standard_normal((32, 16, 1, 1)).astype(np.float32)
    w2 = rng.standard_normal((24, 32, 1, 1)).astype(np.float32)
    with jt.no_grad():  # (the pooled map held by no Var: a held one is kept, in the plain layout)
        pooled = nn.max_pool2d(nn.relu(nn.conv2d(jt.array(x), jt.array(w1), jt.zeros(32))), 3, 1, 1, ceil_mode=True)
        ours = nn.conv2d(pooled, jt.array(w2), jt.zeros(24))
        del pooled
        ours = ours.numpy()
    F = torch.nn.functional
    t = F.max_pool2d(F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(w1))), 3, 1, 1, ceil_mode=True)
    np.testing.assert_allclose(ours, F.conv2d(t, torch.from_numpy(w2)).numpy(), rtol=1e-4, atol=1e-4)
    assert sum(1 for source, readers in seen[-1].values() if source and readers) == 1  # the pooling


def test_training_keeps_the_composition_and_torch_gradients(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ours = jt.array(x)
    ours.requires_grad = True
    with jt.debug.record_kernels() as launched:
        y = nn.max_pool2d(ours, 3, 2, 1)
        (gx,) = jt.grad((y * y).sum(), [ours])
        gx.numpy()
    assert "max_pool2d" not in launched_names(launched)
    tx = torch.from_numpy(x).requires_grad_()
    (torch.nn.functional.max_pool2d(tx, 3, 2, 1) ** 2).sum().backward()
    np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_exact_tilings_keep_the_composition(rng):
    # VGG's 2x2 stride-2 windows: one pass without bounds checks beats the library call
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    with jt.debug.record_kernels() as launched, jt.no_grad():
        ours = nn.max_pool2d(jt.array(x), 2).numpy()
    assert "max_pool2d" not in launched_names(launched)
    np.testing.assert_array_equal(ours, torch.nn.functional.max_pool2d(torch.from_numpy(x), 2).numpy())


AVERAGE_GEOMETRIES = [  # (shape, kernel, stride, padding, ceil_mode, count_include_pad, runs the library op)
    ((1, 32, 14, 14), 3, 1, 1, False, True, True),     # Inception's branch pooling
    ((2, 20, 13, 11), 3, 2, 1, True, False, True),     # a last partial window, padding not counted
    ((2, 20, 12, 11), 3, 2, 1, True, True, False),     # ... counted, a window past the padding: composed
    ((1, 17, 17, 17), 5, 3, 0, False, True, True),     # Inception's auxiliary head
    ((1, 6, 10, 9), (2, 3), (1, 2), (1, 0), False, False, True),
    ((1, 8, 12, 12), 2, 2, 0, False, True, False),     # DenseNet's exact 2x2 tiling: composed
]


@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode,count_include_pad,library", AVERAGE_GEOMETRIES)
def test_library_avg_pool_matches_torch(rng, shape, kernel, stride, padding, ceil_mode, count_include_pad, library):
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[3], x.flat[40] = np.nan, np.inf
    with jt.debug.record_kernels() as launched, jt.no_grad():
        ours = nn.avg_pool2d(jt.array(x), kernel, stride, padding, ceil_mode, count_include_pad).numpy()
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), kernel, stride, padding, ceil_mode,
                                              count_include_pad).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert ("avg_pool2d" in launched_names(launched)) == library


def test_windows_lying_in_the_padding_keep_the_composition(rng):
    # a dilated window that misses the input: torch gives -inf there, a library pooling
    # would give the lowest float
    x = rng.standard_normal((1, 2, 2, 5)).astype(np.float32)
    with jt.debug.record_kernels() as launched, jt.no_grad():
        ours = nn.max_pool2d(jt.array(x), 2, 1, 1, 3).numpy()
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 1, 1, 3).numpy()
    assert np.isneginf(expected).any()
    np.testing.assert_array_equal(ours, expected)
    assert "max_pool2d" not in launched_names(launched)


def test_a_pooling_after_a_relu_convolution_does_not_look_for_nan(rng, monkeypatch):
    """A ReLU post-op's output holds no NaN and no -inf, so the pooling after it skips its
    scan for them (`chaining.clamped_sources`); after a convolution without one it scans."""
    scanned = []
    floats = onednn._floats
    monkeypatch.setattr(onednn, "_floats", lambda buffer, nbytes: scanned.append(nbytes) or floats(buffer, nbytes))
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 1, 1)).astype(np.float32)
    F = torch.nn.functional
    for relu in (True, False):
        scanned.clear()
        with jt.no_grad():
            h = nn.conv2d(jt.array(x), jt.array(w), jt.zeros(16))
            ours = nn.max_pool2d(nn.relu(h) if relu else h, 3, 2, 1).numpy()
        t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w))
        np.testing.assert_allclose(ours, F.max_pool2d(F.relu(t) if relu else t, 3, 2, 1).numpy(), rtol=1e-5, atol=1e-5)
        assert bool(scanned) != relu
