"""metajit.models.ops against torchvision.ops: stochastic depth follows
torchvision.ops.stochastic_depth's rules (identity in eval mode or at p=0; in training, each
row or the whole batch either dropped or scaled by 1/(1-p), kept with probability 1-p, so
the expectation is the input; the same draws after ``jt.set_global_seed``), and
SqueezeExcitation, Permute and LayerNorm2d give torchvision's outputs with its weights."""
import numpy as np
import pytest

import metajit as jt
from metajit.models.ops import LayerNorm2d, Permute, SqueezeExcitation, StochasticDepth, stochastic_depth
from tests.models.conftest import relative_error

torch = pytest.importorskip("torch")


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_stochastic_depth_is_the_identity_in_eval_mode_and_at_zero(torchvision):
    x = jt.array(_data((4, 3, 2, 2)))
    layer = StochasticDepth(0.5, "row").eval()
    assert np.array_equal(layer(x).numpy(), x.numpy())
    assert stochastic_depth(x, 0.0, "batch") is x
    assert stochastic_depth(x, 0.9, "row", training=False) is x
    theirs = torchvision.ops.StochasticDepth(0.5, "row").eval()
    assert np.array_equal(theirs(torch.from_numpy(x.numpy())).numpy(), x.numpy())


def _row_scales(output, x, p, mode):
    """The factor each row of ``x`` was multiplied by, checked to be 0 or 1 / (1 - p), one
    per row (``"row"``) or one for the batch (``"batch"``)."""
    scale = (output / x).reshape(len(x), -1)
    assert np.allclose(scale, scale[:, :1], rtol=1e-5), "one draw per row"
    if mode == "batch":
        assert np.allclose(scale, scale[0, 0], rtol=1e-5), "one draw for the batch"
    assert np.all(np.isclose(scale[:, 0], 0) | np.isclose(scale[:, 0], 1 / (1 - p), rtol=1e-5))
    return scale[:, 0] if mode == "row" else scale[:1, 0]


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_drops_or_scales_as_torchvision(torchvision, mode):
    """Each row (or the whole batch) is 0 or x / (1 - p), the values torchvision gives, and
    is kept with probability 1 - p: over the draws, both the kept fraction and the mean
    scale (the output's expectation over the input: 1) are within 4 standard deviations,
    for ours and for torchvision's alike."""
    p, rows, draws = 0.3, 64, 200
    x = _data((rows, 2, 3))
    ours, theirs = StochasticDepth(p, mode), torchvision.ops.StochasticDepth(p, mode)
    for run in (lambda: ours(jt.array(x)).numpy(), lambda: theirs(torch.from_numpy(x)).numpy()):
        scales = np.concatenate([_row_scales(run(), x, p, mode) for _ in range(draws)])
        deviation = 4 * np.sqrt(p * (1 - p) / len(scales))
        assert abs((scales > 0).mean() - (1 - p)) < deviation
        assert abs(scales.mean() - 1) < deviation / (1 - p)


def test_stochastic_depth_repeats_after_set_global_seed_and_drops_all_at_one():
    x = jt.array(_data((32, 4)))
    jt.set_global_seed(7)
    first = stochastic_depth(x, 0.5, "row").numpy()
    jt.set_global_seed(7)
    assert np.array_equal(stochastic_depth(x, 0.5, "row").numpy(), first)
    assert np.array_equal(stochastic_depth(x, 1.0, "row").numpy(), np.zeros((32, 4), np.float32))


def test_stochastic_depth_gradient_is_the_noise():
    x = jt.array(_data((16, 3)))
    jt.set_global_seed(3)
    output = stochastic_depth(x, 0.25, "row")
    gradient = jt.grad(output.sum(), [x])[0].numpy()
    assert np.allclose(gradient * x.numpy(), output.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("p,mode", [(-0.1, "row"), (1.5, "batch"), (0.2, "column")])
def test_stochastic_depth_refuses_bad_settings(p, mode):
    match = "mode has to be" if mode == "column" else "between 0 and 1"
    with pytest.raises(jt.MetajitValueError, match=match):
        StochasticDepth(p, mode)
    with pytest.raises(jt.MetajitValueError, match=match):
        stochastic_depth(jt.array(_data((2, 2))), p, mode, training=False)


@pytest.mark.parametrize("scale", ["sigmoid", "hardsigmoid"])
def test_squeeze_excitation_matches_torchvision(torchvision, scale):
    torch.manual_seed(0)
    theirs_scale, ours_scale = ((torch.nn.Sigmoid, jt.nn.Sigmoid) if scale == "sigmoid"
                                else (torch.nn.Hardsigmoid, jt.nn.Hardsigmoid))
    theirs = torchvision.ops.SqueezeExcitation(16, 4, scale_activation=theirs_scale)
    ours = SqueezeExcitation(16, 4, scale_activation=ours_scale)
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    x = _data((2, 16, 5, 5))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    assert relative_error(ours(jt.array(x)).numpy(), expected) < 1e-5


def test_permute_and_layernorm2d_match_torchvision(torchvision):
    from torchvision.models.convnext import LayerNorm2d as TorchLayerNorm2d
    x = _data((2, 6, 3, 4))
    assert np.array_equal(Permute([0, 2, 3, 1])(jt.array(x)).numpy(),
                          torchvision.ops.Permute([0, 2, 3, 1])(torch.from_numpy(x)).numpy())
    theirs = TorchLayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        theirs.weight.copy_(torch.rand(6) + 0.5)
        theirs.bias.copy_(torch.randn(6))
        expected = theirs(torch.from_numpy(x))
    ours = LayerNorm2d(6, eps=1e-6)
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    assert relative_error(ours(jt.array(x)).numpy(), expected) < 1e-5
