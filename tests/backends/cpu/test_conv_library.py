"""Convolution as a library op on the cpu backend (oneDNN) against its meta-op composition
on the reference backend: values, first and second order gradients, device switches."""
import ctypes
import threading

import numpy as np
import pytest

import metajit as jt
from metajit import nn
from metajit.backends.cpu import onednn
from tests.threads import run_in_threads

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")

GEOMETRIES = [  # (batch, channels, size, out_channels, kernel, stride, padding, dilation, groups)
    (2, 3, 9, 4, 3, 1, 1, 1, 1), (2, 4, 10, 6, 3, 2, 1, 1, 2), (1, 3, 11, 2, 5, 2, 2, 2, 1),
    (2, 6, 7, 6, 3, 1, 1, 1, 6), (3, 2, 8, 5, 1, 1, 0, 1, 1), (2, 3, 9, 4, (3, 1), (2, 1), (1, 0), 1, 1),
]


def names(launched):
    return [getattr(entry.kernel, "name", "fused") for entry in launched]


def conv_and_grads(device, x_data, w_data, upstream, geometry, order=1, b_data=None):
    """conv2d output, then d(sum(out * upstream))/d(x, w[, bias]) (and the second-order
    counterparts for x and w when ``order`` is 2), computed on ``device``."""
    stride, padding, dilation, groups = geometry
    jt.set_device(device)
    x, w = jt.array(x_data), jt.array(w_data)
    b = None if b_data is None else jt.array(b_data)
    out = nn.conv2d(x, w, b, stride, padding, dilation, groups)
    loss = (out * jt.array(upstream)).sum()
    gx, gw, *gb = jt.grad(loss, [x, w] + ([] if b is None else [b]))
    results = [out, gx, gw] + gb
    if order == 2:
        results += jt.grad((gx * gx).sum() + (gw * gw).sum(), [x, w])
    with jt.debug.record_kernels() as launched:
        values = [r.numpy() for r in results]
    return values, names(launched)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("batch,channels,size,out_channels,kernel,stride,padding,dilation,groups", GEOMETRIES)
def test_library_convolution_matches_composition(rng, batch, channels, size, out_channels, kernel,
                                                 stride, padding, dilation, groups, with_bias):
    kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x_data = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
    w_data = rng.standard_normal((out_channels, channels // groups) + kernel).astype(np.float32)
    b_data = rng.standard_normal(out_channels).astype(np.float32) if with_bias else None
    geometry = (stride, padding, dilation, groups)
    out_shape = nn.conv2d(jt.array(x_data), jt.array(w_data), None, *geometry).shape
    upstream = rng.standard_normal(out_shape).astype(np.float32)
    library, launched = conv_and_grads("cpu", x_data, w_data, upstream, geometry, b_data=b_data)
    forward = "conv2d_bias" if with_bias else "conv2d"
    assert {forward, "conv2d_backward_data", "conv2d_backward_weights"} <= set(launched)
    composed, launched = conv_and_grads("reference", x_data, w_data, upstream, geometry, b_data=b_data)
    assert not {"conv2d", "conv2d_bias"} & set(launched)
    for ours, expected in zip(library, composed):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_second_order_gradients_go_through_the_composition(rng):
    x_data = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w_data = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    upstream = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    geometry = (1, 1, 1, 1)
    library, _ = conv_and_grads("cpu", x_data, w_data, upstream, geometry, order=2)
    composed, _ = conv_and_grads("reference", x_data, w_data, upstream, geometry, order=2)
    for ours, expected in zip(library, composed):
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)


def test_graph_built_on_cpu_realises_on_a_device_without_the_claim(rng):
    x_data = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w_data = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    jt.set_device("cpu")
    out = nn.conv2d(jt.array(x_data), jt.array(w_data), None, 1, 1)
    jt.set_device("reference")
    with jt.debug.record_kernels() as launched:
        value = out.numpy()
    assert "conv2d" not in names(launched)
    jt.set_device("cpu")
    expected = nn.conv2d(jt.array(x_data), jt.array(w_data), None, 1, 1).numpy()
    np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4)


def test_float64_convolution_uses_the_composition(rng):
    x = jt.array(rng.standard_normal((1, 2, 5, 5)))
    w = jt.array(rng.standard_normal((3, 2, 3, 3)))
    assert x.dtype == "float64"
    out = nn.conv2d(x, w, None, 1, 1)
    with jt.debug.record_kernels() as launched:
        out.sync()
    assert "conv2d" not in names(launched)


def test_program_reports_onednn_implementation(rng):
    x = jt.array(rng.standard_normal((2, 8, 12, 12)).astype(np.float32))
    w = jt.array(rng.standard_normal((8, 8, 3, 3)).astype(np.float32))
    out = nn.conv2d(x, w, None, 1, 1)
    out.sync()
    from metajit import plugins
    programs = [p for p in plugins.current().programs.values() if isinstance(p, onednn.ConvolutionProgram)]
    assert programs and all(p.implementation for p in programs)


def test_convolutions_share_one_scratch_workspace_per_thread(rng):
    """oneDNN's blocked-layout copies live in one per-thread workspace, not one buffer per
    program; convolutions in two threads at once still match the composition."""
    from metajit.backends import cpu
    shapes = [(2, 8, 12, 16), (2, 16, 10, 8), (1, 3, 20, 4)]
    data = [(rng.standard_normal((n, c, s, s)).astype(np.float32),
             rng.standard_normal((o, c, 3, 3)).astype(np.float32)) for n, c, s, o in shapes]
    expected = []
    jt.set_device("reference")
    for x, w in data:
        expected.append(nn.conv2d(jt.array(x), jt.array(w), None, 1, 1).numpy())
    jt.set_device("cpu")
    for x, w in data:
        nn.conv2d(jt.array(x), jt.array(w), None, 1, 1).sync()
    programs = [p for p in jt.plugins.current().programs.values() if isinstance(p, onednn.ConvolutionProgram)]
    assert all(p.workspace is cpu._workspace for p in programs)
    def run(index):
        for _ in range(5):
            x, w = data[index]
            value = nn.conv2d(jt.array(x), jt.array(w), None, 1, 1).numpy()
        return value
    results = dict(enumerate(run_in_threads(run, len(data))))
    for index, value in results.items():
        np.testing.assert_allclose(value, expected[index], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape,w_shape", [((2, 0, 5, 5), (3, 0, 3, 3)), ((0, 2, 5, 5), (3, 2, 3, 3))])
def test_empty_convolutions_agree_with_the_composition(x_shape, w_shape):
    """Zero input channels or an empty batch: the cpu backend gives what the composition
    gives on the reference (the bias over zeros; numpy's einsum as the oracle)."""
    bias = np.arange(3, dtype=np.float32)
    expected = np.einsum("nchw,oc->nohw", np.zeros((x_shape[0], x_shape[1], 3, 3), np.float32),
                         np.zeros((3, x_shape[1]), np.float32)) + bias.reshape(1, 3, 1, 1)
    for device in ("cpu", "reference"):
        jt.set_device(device)
        out = nn.conv2d(jt.zeros(x_shape), jt.zeros(w_shape), jt.array(bias))
        np.testing.assert_array_equal(out.numpy(), expected)
    jt.set_device("cpu")


def _weight_caches():
    return [p.weights for p in jt.plugins.current().programs.values()
            if isinstance(p, onednn.ConvolutionProgram) and p.weights is not None]


def test_unchanged_weights_keep_their_library_layout_and_changed_ones_are_seen(rng):
    """Inference reuses a weight's blocked-layout copy from the third call on; a new weight
    value (replaced, updated in place, or computed in the same realisation, whose buffer may
    still hold an older value when the copy would be made) always gives the new result."""
    import torch
    x_data = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    w_data = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    x, w = jt.array(x_data).sync(), jt.array(w_data).sync()

    def check(weight, expected_weight):
        want = torch.nn.functional.conv2d(torch.from_numpy(x_data), torch.from_numpy(expected_weight), padding=1)
        np.testing.assert_allclose(nn.conv2d(x, weight, None, 1, 1).numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    for _ in range(4):
        check(w, w_data)
    assert any(cache.kept for cache in _weight_caches())
    w.assign(jt.array(w_data * 2).sync())
    check(w, w_data * 2)
    w.mul_(-1.0)
    check(w, w_data * -2)
    kept = sum(len(cache.kept) for cache in _weight_caches())
    for step in range(4):  # training-like: a new weight every call, never copied
        w.assign(jt.array(w_data + step).sync())
        check(w, w_data + step)
    assert sum(len(cache.kept) for cache in _weight_caches()) <= kept
    for scale in (3.0, 3.0, 3.0, 5.0):  # the weight computed by the same realisation
        check(w * scale, (w_data + 3) * scale)


def test_each_thread_gives_onednn_its_thread_count():
    # omp_set_num_threads is a per-thread setting: a second thread must set its own
    gomp = ctypes.CDLL("libgomp.so.1")
    onednn.set_threads(1)
    seen = []

    def other():
        onednn.set_threads(1)
        seen.append(gomp.omp_get_max_threads())
    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen == [1] and gomp.omp_get_max_threads() == 1
    onednn.set_threads(jt.flags.num_threads)
