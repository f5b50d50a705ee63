"""Channel concatenations as the library op ``concat`` on the cpu backend (oneDNN's concat
primitive): against torch, chained in oneDNN's blocked layout between convolutions, on
NCHW otherwise, and left as the composition where it fuses better."""
import contextlib

import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends.cpu import chaining, onednn

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")
F = torch.nn.functional


@pytest.fixture
def chained(monkeypatch):
    seen = []
    found = chaining.modes_for
    monkeypatch.setattr(chaining, "modes_for", lambda launches, key: seen.append(found(launches, key)) or seen[-1])
    return seen


def kind(var):
    node = var._node
    return node.attrs[0] if node.op == "library" else node.op


def branches(rng, channels, widths):
    return [(rng.standard_normal((w, channels, 1, 1)) / np.sqrt(channels)).astype(np.float32) for w in widths]


@pytest.mark.parametrize("widths,batch", [((32, 16), 1), ((32, 16, 8), 2), ((16, 48), 3), ((3, 5), 1)])
def test_concat_between_convolutions_matches_torch(rng, chained, widths, batch):
    x = rng.standard_normal((batch, 16, 9, 9)).astype(np.float32)
    weights = branches(rng, 16, widths)
    after = branches(rng, sum(widths), (8,))[0]
    with jt.no_grad():
        joined = jt.concat([nn.relu(nn.conv2d(jt.array(x), jt.array(w), jt.zeros(w.shape[0]))) for w in weights], 1)
        assert kind(joined) == "concat"
        ours = nn.conv2d(joined, jt.array(after), jt.zeros(8)).numpy()
    t = torch.cat([F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(w))) for w in weights], 1)
    np.testing.assert_allclose(ours, F.conv2d(t, torch.from_numpy(after)).numpy(), rtol=1e-4, atol=1e-4)
    concat_modes = [mode for mode in chained[-1].values() if len(mode[0]) > 1]
    assert bool(concat_modes) == all(w % 16 == 0 for w in widths)  # whole channel blocks: chained


def test_concat_of_pooling_and_convolution_read_as_nchw(rng):
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    w = branches(rng, 16, (16,))[0]
    with jt.no_grad():
        joined = jt.concat([nn.max_pool2d(jt.array(x), 3, 1, 1), nn.conv2d(jt.array(x), jt.array(w), jt.zeros(16))],
                           1)
        assert kind(joined) == "concat"
        ours = (joined * 2).numpy()  # a fused kernel reads it
    expected = torch.cat([F.max_pool2d(torch.from_numpy(x), 3, 1, 1), F.conv2d(torch.from_numpy(x),
                                                                                 torch.from_numpy(w))], 1) * 2
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["not library outputs", "gradients", "other axis"])
def test_concatenations_that_stay_compositions(rng, case):
    x = rng.standard_normal((1, 16, 6, 6)).astype(np.float32)
    w = branches(rng, 16, (16,))[0]
    with contextlib.nullcontext() if case == "gradients" else jt.no_grad():
        conv = nn.conv2d(jt.array(x), jt.array(w), jt.zeros(16))
        other = jt.array(x) if case == "not library outputs" else conv
        joined = jt.concat([conv, other], 2 if case == "other axis" else 1)
    assert kind(joined) != "concat"
    conv = F.conv2d(torch.from_numpy(x), torch.from_numpy(w))
    expected = torch.cat([conv, torch.from_numpy(x) if case == "not library outputs" else conv],
                         2 if case == "other axis" else 1)
    np.testing.assert_allclose(joined.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_a_part_read_elsewhere_comes_in_nchw(rng, chained):
    """One part is also read by a fused kernel (so it stays NCHW) while the other comes
    chained: the concat reorders the NCHW part into the blocked layout itself."""
    x = rng.standard_normal((2, 16, 7, 7)).astype(np.float32)
    first, second = branches(rng, 16, (16, 32))
    after = branches(rng, 48, (8,))[0]
    with jt.no_grad():
        a = nn.conv2d(jt.array(x), jt.array(first), jt.zeros(16))
        b = nn.conv2d(jt.array(x), jt.array(second), jt.zeros(32))
        out = nn.conv2d(jt.concat([a, b], 1), jt.array(after), jt.zeros(8))
        doubled = a * 2
        jt.sync([out, doubled])
    ta = F.conv2d(torch.from_numpy(x), torch.from_numpy(first))
    tb = F.conv2d(torch.from_numpy(x), torch.from_numpy(second))
    expected = F.conv2d(torch.cat([ta, tb], 1), torch.from_numpy(after))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(doubled.numpy(), (ta * 2).numpy(), rtol=1e-5, atol=1e-5)
    assert any(positions == (1,) for positions, _ in chained[-1].values())  # the concat: only its second part
