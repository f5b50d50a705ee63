"""Residual additions as convolution post-ops on the cpu backend (`conv2d_bias_add`,
``conv2d_bias_add_relu``): against torch, in oneDNN's and Winograd's programs, chained in
oneDNN's blocked layout, and left as additions where they must not fuse."""
import contextlib

import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends.cpu import chaining, onednn, winograd

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")
F = torch.nn.functional

GEOMETRIES = [  # (shape, kernel, padding, groups)
    ((1, 16, 14, 14), 1, 0, 1), ((2, 24, 9, 9), 3, 1, 1), ((1, 32, 9, 9), 3, 1, 32), ((1, 5, 7, 7), 3, 1, 1),
    ((8, 64, 28, 28), 3, 1, 1),  # Winograd's shape
]


def operands(rng, shape, kernel, groups):
    channels = shape[1]
    return (rng.standard_normal(shape).astype(np.float32),
            (rng.standard_normal((channels, channels // groups, kernel, kernel)) / kernel).astype(np.float32),
            rng.standard_normal(channels).astype(np.float32), rng.standard_normal(shape).astype(np.float32))


def close(ours, expected):
    """Within rounding: Winograd's differs from a direct convolution by ~1e-6 of the scale."""
    expected = expected.detach().numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=2e-5 * max(np.abs(expected).max(), 1.0))


def kind(var):
    node = var._node
    return node.attrs[0] if node.op == "library" else node.op


@pytest.mark.parametrize("shape,kernel,padding,groups", GEOMETRIES)
@pytest.mark.parametrize("relu", [False, True])
def test_residual_post_op_matches_torch(rng, shape, kernel, padding, groups, relu):
    x, w, b, r = operands(rng, shape, kernel, groups)
    with jt.no_grad():
        out = nn.conv2d(jt.array(x), jt.array(w), jt.array(b), 1, padding, 1, groups) + jt.array(r)
        out = nn.relu(out) if relu else out
        assert kind(out) == ("conv2d_bias_add_relu" if relu else "conv2d_bias_add")
        ours = out.numpy()
    expected = F.conv2d(*map(torch.from_numpy, (x, w, b)), 1, padding, 1, groups) + torch.from_numpy(r)
    expected = F.relu(expected) if relu else expected
    close(ours, expected)


def test_winograd_adds_the_residual(rng, monkeypatch):
    ran = []
    made = winograd.WinogradProgram.__init__
    monkeypatch.setattr(winograd.WinogradProgram, "__init__",
                        lambda self, call, *rest: ran.append(call.name) or made(self, call, *rest))
    x, w, b, r = operands(rng, (8, 64, 20, 20), 3, 1)
    with jt.no_grad():
        ours = nn.relu(jt.array(r) + nn.conv2d(jt.array(x), jt.array(w), jt.array(b), padding=1)).numpy()
    assert "conv2d_bias_add_relu" in ran
    expected = F.relu(F.conv2d(*map(torch.from_numpy, (x, w, b)), padding=1) + torch.from_numpy(r))
    close(ours, expected)


def test_residual_blocks_chain_in_the_blocked_layout(rng, monkeypatch):
    """Two MobileNetV2-style residual blocks: the first block's sum is read by the second
    block's expansion (as its source) and by its projection (as its residual), both in
    oneDNN's layout."""
    seen = []
    found = chaining.modes_for
    monkeypatch.setattr(chaining, "modes_for", lambda launches, key: seen.append(found(launches, key)) or seen[-1])
    channels, hidden = 32, 64
    x = rng.standard_normal((1, channels, 14, 14)).astype(np.float32)
    weights = [[(rng.standard_normal((o, i, k, k)) / np.sqrt(i * k * k)).astype(np.float32),
                rng.standard_normal(o).astype(np.float32)]
               for o, i, k in ((hidden, channels, 1), (channels, hidden, 1))] * 2

    def blocks(conv, relu, value):
        for first in (0, 2):
            (w1, b1), (w2, b2) = weights[first], weights[first + 1]
            value = value + conv(relu(conv(value, w1, b1)), w2, b2)
        return value
    with jt.no_grad():
        ours = blocks(lambda v, w, b: nn.conv2d(v, jt.array(w), jt.array(b)), nn.relu,
                      nn.conv2d(jt.array(x), jt.array(np.eye(channels, dtype=np.float32)[:, :, None, None]),
                                jt.zeros(channels))).numpy()
    expected = blocks(lambda v, w, b: F.conv2d(v, torch.from_numpy(w), torch.from_numpy(b)), F.relu,
                      torch.from_numpy(x))
    close(ours, expected)
    assert any(3 in positions for positions, _ in seen[-1].values())  # a residual read in oneDNN's layout


@pytest.mark.parametrize("case", ["broadcast", "itself", "gradients", "no bias", "float64"])
def test_additions_that_stay_additions(rng, case):
    x, w, b, r = operands(rng, (1, 8, 6, 6), 3, 1)
    dtype = np.float64 if case == "float64" else np.float32
    xv, wv, bv = (jt.array(v.astype(dtype)) for v in (x, w, b))
    other = jt.array(r[:, :, :1, :1].astype(dtype) if case == "broadcast" else r.astype(dtype))
    with contextlib.nullcontext() if case == "gradients" else jt.no_grad():
        conv = nn.conv2d(xv, wv, None if case == "no bias" else bv, padding=1)
        out = conv + (conv if case == "itself" else other)
    assert kind(out) != "conv2d_bias_add"
    t = F.conv2d(*map(torch.from_numpy, (x.astype(dtype), w.astype(dtype))),
                 None if case == "no bias" else torch.from_numpy(b.astype(dtype)), padding=1)
    expected = t + (t if case == "itself" else torch.from_numpy(other.numpy()))
    close(out.numpy(), expected)
