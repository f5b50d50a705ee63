"""Builder arguments as torchvision takes them: ``norm_layer`` called as torchvision calls
it, contradictory or empty arguments refused with the reason, ``progress`` accepted."""
import functools
import importlib

import numpy as np
import pytest

import metajit as jt
from tests.models.conftest import relative_error

torch = pytest.importorskip("torch")


def test_mobilenet_v2_calls_norm_layer_with_the_channels_only(torchvision):
    torch.manual_seed(0)
    theirs = torchvision.models.mobilenet_v2(norm_layer=lambda channels: torch.nn.GroupNorm(4, channels)).eval()
    ours = jt.models.mobilenet_v2(norm_layer=lambda channels: jt.nn.GroupNorm(4, channels)).eval()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    data = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(data))
    assert relative_error(ours(jt.array(data)).numpy(), expected) < 1e-4
    slow = jt.models.mobilenet_v2(norm_layer=functools.partial(jt.nn.BatchNorm2d, momentum=0.01))
    momenta = {layer.momentum for layer in slow.modules() if isinstance(layer, jt.nn.BatchNorm2d)}
    assert momenta == {0.01}


def test_contradictory_and_empty_arguments_are_refused():
    with pytest.raises(jt.MetajitValueError, match="resnext50_32x4d is defined with groups=32, got 16"):
        jt.models.resnext50_32x4d(groups=16)
    with pytest.raises(jt.MetajitValueError, match="width_per_group=128, got 64"):
        jt.models.wide_resnet50_2(width_per_group=64)
    with pytest.raises(jt.MetajitValueError, match="inverted_residual_setting"):
        jt.models.mobilenet_v2(inverted_residual_setting=[])
    assert jt.models.resnext50_32x4d(groups=32, progress=False, num_classes=3).fc.out_features == 3


def _linear_conv_unit(nn):
    """A conv unit without the ReLU (children ``conv`` and ``bn`` as BasicConv2d's)."""
    class LinearConv(nn.Module):
        def __init__(self, in_channels, out_channels, **conv_arguments):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_arguments)
            self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

        def forward(self, x):
            return self.bn(self.conv(x))
    return LinearConv


@pytest.mark.parametrize("name,side", [("googlenet", 64), ("inception_v3", 80)])
def test_custom_blocks_are_used_as_torchvision_uses_them(torchvision, name, side):
    """GoogLeNet's ``blocks`` and Inception v3's ``inception_blocks``: the first class builds
    the stem's conv units, the others the blocks (torchvision's positions and calls)."""
    module = "googlenet" if name == "googlenet" else "inception"
    theirs_module = importlib.import_module(f"torchvision.models.{module}")
    ours_module = importlib.import_module(f"metajit.models.{module}")
    block_names = (["Inception", "InceptionAux"] if name == "googlenet" else
                   ["InceptionA", "InceptionB", "InceptionC", "InceptionD", "InceptionE", "InceptionAux"])
    argument = "blocks" if name == "googlenet" else "inception_blocks"
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(init_weights=False, **{
        argument: [_linear_conv_unit(torch.nn)] + [getattr(theirs_module, b) for b in block_names]}).eval()
    ours = getattr(jt.models, name)(init_weights=False, **{
        argument: [_linear_conv_unit(jt.nn)] + [getattr(ours_module, b) for b in block_names]}).eval()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    data = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(data))
    assert relative_error(ours(jt.array(data)).numpy(), expected) < 1e-3
    with pytest.raises(jt.MetajitValueError, match=argument):
        getattr(jt.models, name)(**{argument: [_linear_conv_unit(jt.nn)]})
