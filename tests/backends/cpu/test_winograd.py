"""Wide 3x3 stride-1 convolutions on the cpu backend as Winograd F(4x4, 3x3), against torch
(float64) as the oracle: outputs and input gradients, blocked and whole-phase runs, kept
transformed weights that follow every change of the weight, and which shapes stay on oneDNN."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn
from metajit.backends.cpu import blas, onednn, winograd

pytestmark = pytest.mark.skipif(onednn.library() is None or not blas.available(),
                                reason="oneDNN or OpenBLAS not installed")
torch = pytest.importorskip("torch")


def programs(kind):
    return [p for p in jt.plugins.current().programs.values() if isinstance(p, kind)]


def torch_conv(x, w, b, padding, upstream):
    """torch's float64 output and input gradient of sum(conv2d * upstream)."""
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    out = torch.nn.functional.conv2d(tx, torch.from_numpy(w.astype(np.float64)),
                                     None if b is None else torch.from_numpy(b.astype(np.float64)), padding=padding)
    out.backward(torch.from_numpy(upstream.astype(np.float64)))
    return out.detach().numpy(), tx.grad.numpy()


def assert_close(actual, expected):
    """Winograd's rounding: relative to the output's scale, like any float32 convolution."""
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("n,c,k,height,width,padding,bias", [
    (2, 32, 16, 32, 32, 1, True),       # tiles in one phase
    (1, 40, 24, 17, 23, 0, False),     # sizes that are not multiples of the 4x4 tile
    (2, 33, 17, 19, 13, (2, 1), True),  # odd channel counts, unequal padding
    (2, 32, 32, 64, 64, 1, False),     # enough tiles for each thread to run blocks
])
def test_winograd_convolution_and_input_gradient_match_torch(rng, n, c, k, height, width, padding, bias):
    x = rng.standard_normal((n, c, height, width)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if bias else None
    pads = padding if isinstance(padding, tuple) else (padding, padding)
    out_shape = (n, k, height + 2 * pads[0] - 2, width + 2 * pads[1] - 2)
    upstream = rng.standard_normal(out_shape).astype(np.float32)
    expected, expected_grad = torch_conv(x, w, b, pads, upstream)
    jx, jw = jt.array(x), jt.array(w)
    for _ in range(3):  # transformed weights: into scratch, into a kept copy, reused
        out = nn.conv2d(jx, jw, None if b is None else jt.array(b), 1, padding)
        (grad,) = jt.grad((out * jt.array(upstream)).sum(), [jx])
        assert_close(out.numpy(), expected)
        assert_close(grad.numpy(), expected_grad)
    # this test's programs (other tests leave theirs in the device's cache)
    ran = [p for p in programs(winograd.WinogradProgram) if p.call.inputs[0][1] in (x.shape, out_shape)]
    expected_names = {"conv2d_bias" if bias else "conv2d"} | (
        {"conv2d_backward_data"} if k >= winograd.MIN_CHANNELS else set())  # its input is the k channels
    assert {p.call.name for p in ran} >= expected_names
    # few tiles: the first call ran on oneDNN, the later ones on the kept transformed weights
    assert all(p.direct is None or p.weights.kept for p in ran)


@pytest.mark.parametrize("threads", [1, 3])
def test_any_thread_count_gives_the_same_convolution(rng, threads):
    x = rng.standard_normal((2, 32, 48, 48)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    expected, _ = torch_conv(x, w, None, (1, 1), np.zeros((2, 32, 48, 48), np.float32))
    saved = jt.flags.num_threads
    try:
        jt.flags.num_threads = threads
        assert_close(nn.conv2d(jt.array(x), jt.array(w), None, 1, 1).numpy(), expected)
    finally:
        jt.flags.num_threads = saved


def test_kept_transformed_weights_follow_every_change_of_the_weight(rng):
    """Few tiles: an unkept transform is not worth it (oneDNN runs), a kept one is; a
    replaced, in-place updated or freshly computed weight always gives the new result."""
    x_data = rng.standard_normal((1, 32, 14, 14)).astype(np.float32)
    w_data = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    x, w = jt.array(x_data).sync(), jt.array(w_data).sync()

    def check(weight, expected_weight):
        expected, _ = torch_conv(x_data, expected_weight, None, (1, 1), np.zeros((1, 32, 14, 14), np.float32))
        assert_close(nn.conv2d(x, weight, None, 1, 1).numpy(), expected)
    for _ in range(3):
        check(w, w_data)
    (program,) = [p for p in programs(winograd.WinogradProgram) if p.geometry[1] == 32 and p.geometry[5] == 14]
    assert program.direct is not None and program.weights.kept  # first call on oneDNN, then kept
    w.assign(jt.array(w_data * 2).sync())
    check(w, w_data * 2)
    w.mul_(-1.0)
    check(w, w_data * -2)
    for scale in (3.0, 3.0, 3.0):  # computed by the same realisation as the convolution
        check(w * scale, w_data * -2 * scale)


@pytest.mark.parametrize("c,k,size,stride,groups", [
    (8, 32, 32, 1, 1),    # too few input channels
    (32, 32, 4, 1, 1),    # too few tiles
    (32, 32, 32, 2, 1),   # strided
    (32, 32, 32, 1, 32),  # grouped
])
def test_convolutions_winograd_does_not_pay_for_stay_on_onednn(rng, c, k, size, stride, groups):
    x = jt.array(rng.standard_normal((1, c, size, size)).astype(np.float32))
    w = jt.array(rng.standard_normal((k, c // groups, 3, 3)).astype(np.float32))
    before = len(programs(winograd.WinogradProgram))
    nn.conv2d(x, w, None, stride, 1, 1, groups).sync()
    assert len(programs(winograd.WinogradProgram)) == before


def test_threads_sharing_one_winograd_program_get_their_own_results(rng):
    """Two threads run the same convolution shape with different weights, often enough for
    both weights to be kept: each gets its own result."""
    from tests.threads import run_in_threads
    x_data = rng.standard_normal((1, 32, 28, 28)).astype(np.float32)
    weights = [rng.standard_normal((32, 32, 3, 3)).astype(np.float32) for _ in range(2)]
    expected = [torch_conv(x_data, w, None, (1, 1), np.zeros((1, 32, 28, 28), np.float32))[0] for w in weights]
    x = jt.array(x_data).sync()
    held = [jt.array(w).sync() for w in weights]

    def run(index):
        return [nn.conv2d(x, held[index], None, 1, 1).numpy() for _ in range(6)]
    for index, values in enumerate(run_in_threads(run, 2)):
        for value in values:
            assert_close(value, expected[index])
