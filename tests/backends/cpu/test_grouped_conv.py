"""Grouped convolutions with few channels per group on the cpu backend's own direct kernel,
against torch (float64): output with and without bias, padding, kernel sizes, widths
that are not a multiple of the kernel's 16-column blocks; other groupings stay on oneDNN."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn
from metajit.backends.cpu import grouped_conv, onednn

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN not installed (convolutions unclaimed)")
torch = pytest.importorskip("torch")


def programs():
    return [p for p in jt.plugins.current().programs.values()
            if isinstance(p, grouped_conv.GroupedConvolutionProgram)]


@pytest.mark.parametrize("n,channels,group_channels,out_per_group,size,kernel,padding,bias", [
    (2, 16, 4, 4, 9, 3, 1, True),     # ResNeXt-50's first stage, small
    (1, 12, 3, 8, 23, 3, 0, False),   # 3 channels in, 8 out per group; width 21 = 16 + 5
    (2, 8, 2, 4, 17, 5, (2, 1), True),  # 5x5, unequal padding
    (1, 8, 4, 4, 40, 3, 3, False),    # padding beyond the filter's reach: zero border
])
def test_grouped_convolution_matches_torch(rng, n, channels, group_channels, out_per_group, size, kernel, padding,
                                           bias):
    groups = channels // group_channels
    x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    w = rng.standard_normal((groups * out_per_group, group_channels, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(groups * out_per_group).astype(np.float32) if bias else None
    pads = padding if isinstance(padding, tuple) else (padding, padding)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                          None if b is None else torch.from_numpy(b).double(), padding=pads,
                                          groups=groups).numpy()
    before = len(programs())
    out = nn.conv2d(jt.array(x), jt.array(w), None if b is None else jt.array(b), 1, padding, 1, groups)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert len(programs()) == before + 1


def test_its_gradients_match_torch(rng):
    """Only the forward runs on the grouped kernel; the gradients stay oneDNN's."""
    x = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    torch.nn.functional.conv2d(tx, tw, padding=1, groups=2).square().sum().backward()
    jx, jw = jt.array(x), jt.array(w)
    gx, gw = jt.grad(nn.conv2d(jx, jw, None, 1, 1, 1, 2).sqr().sum(), [jx, jw])
    np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gw.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("channels,group_channels,out_per_group,stride", [
    (16, 8, 8, 1),   # 8 channels per group: oneDNN is faster
    (8, 1, 1, 1),    # depthwise: oneDNN's own kernel
    (16, 4, 4, 2),   # strided
    (12, 4, 2, 1),   # 2 outputs per group: not a multiple of the kernel's 4
])
def test_other_groupings_stay_on_onednn(rng, channels, group_channels, out_per_group, stride):
    groups = channels // group_channels
    x = jt.array(rng.standard_normal((1, channels, 12, 12)).astype(np.float32))
    w = jt.array(rng.standard_normal((groups * out_per_group, group_channels, 3, 3)).astype(np.float32))
    before = len(programs())
    nn.conv2d(x, w, None, stride, 1, 1, groups).sync()
    assert len(programs()) == before
