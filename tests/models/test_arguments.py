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


def _builds(torchvision):
    """(ours, torchvision's) ways to build each new family's model from a setting."""
    return [(lambda setting: jt.models.MobileNetV3(setting, 1280),
             lambda setting: torchvision.models.MobileNetV3(setting, 1280)),
            (lambda setting: jt.models.EfficientNet(setting, 0.2), lambda setting: torchvision.models.EfficientNet(
                setting, 0.2)),
            (jt.models.ConvNeXt, torchvision.models.ConvNeXt)]


def test_settings_are_checked_as_torchvision_checks_them(torchvision):
    for ours, theirs in _builds(torchvision):
        for setting, error, match in (([], ValueError, "should not be empty"), ([1], TypeError, "should be List")):
            with pytest.raises(error, match=match):
                theirs(setting)
            with pytest.raises(error, match=match) as raised:
                ours(setting)
            assert isinstance(raised.value, jt.MetajitError)
    for module in (torchvision.models.regnet, jt.models.regnet):  # w_0 not a multiple of 8
        with pytest.raises(ValueError, match="Invalid RegNet settings"):
            module.BlockParams.from_init_params(depth=16, w_0=20, w_a=27.89, w_m=2.09, group_width=8)
    for module in (torchvision.models.mobilenetv3, jt.models.mobilenetv3):
        config = module.InvertedResidualConfig(16, 3, 16, 16, False, "RE", 3, 1, 1.0)
        with pytest.raises(ValueError, match="illegal stride value"):
            module.InvertedResidual(config, module.nn.BatchNorm2d)
    for module in (torchvision.models.efficientnet, jt.models.efficientnet):
        with pytest.raises(ValueError, match="illegal stride value"):
            module.MBConv(module.MBConvConfig(6, 3, 3, 16, 24, 1), 0.0, module.nn.BatchNorm2d)


def test_builders_fix_and_default_arguments_as_torchvisions(torchvision):
    """Each builder's own dropout and stochastic depth defaults, overridable; the norm layer
    of B5-B7 and V2 and the last channel are fixed (torchvision: a TypeError)."""
    for name, argument in (("efficientnet_b5", "norm_layer"), ("efficientnet_v2_s", "last_channel")):
        with pytest.raises(TypeError):
            getattr(torchvision.models, name)(**{argument: None})
        with pytest.raises(jt.MetajitValueError, match=f"{name} is defined with {argument}="):
            getattr(jt.models, name)(**{argument: jt.nn.BatchNorm2d if argument == "norm_layer" else 640})
    assert jt.models.efficientnet_b0(dropout=0.5).classifier[0].p == 0.5
    convnext = jt.models.convnext_tiny(stochastic_depth_prob=0.0, num_classes=3)
    assert {m.p for m in convnext.modules() if isinstance(m, jt.models.ops.StochasticDepth)} == {0.0}
    with pytest.raises(ValueError, match="No weights available"):
        torchvision.models.regnet_y_128gf(pretrained=True)
    with pytest.raises(jt.MetajitValueError, match="pretrained=True means IMAGENET1K_V1.*IMAGENET1K_SWAG_E2E_V1"):
        jt.models.regnet_y_128gf(pretrained=True)


def _settings(model, classes):
    """(class name, eps, momentum, normalized_shape, p, mode) of ``model``'s layers of the
    given classes, in order (None where a layer has no such setting)."""
    def setting(module, field):
        value = getattr(module, field, None)
        return tuple(value) if isinstance(value, (list, tuple)) else value
    return [(type(m).__name__, *(setting(m, f) for f in ("eps", "momentum", "normalized_shape", "p", "mode")))
            for m in model.modules() if isinstance(m, classes)]


@pytest.mark.parametrize("name,kwargs", [
    ("mobilenet_v3_small", {"reduced_tail": True}), ("efficientnet_b0", {}), ("efficientnet_b5", {}),
    ("efficientnet_v2_s", {}), ("convnext_tiny", {}), ("regnet_y_400mf", {})])
def test_norm_dropout_and_stochastic_depth_settings_match_torchvisions(torchvision, name, kwargs):
    """BatchNorm eps and momentum (per family and variant), LayerNorm eps and shape,
    dropout and each block's stochastic depth probability and mode, layer by layer."""
    theirs = getattr(torchvision.models, name)(**kwargs)
    ours = getattr(jt.models, name)(**kwargs)
    assert _settings(ours, (jt.nn.BatchNorm2d, jt.nn.LayerNorm, jt.nn.Dropout, jt.models.ops.StochasticDepth)) == \
        _settings(theirs, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.Dropout,
                           torchvision.ops.StochasticDepth))


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_x_400mf"])
def test_initialisation_draws_from_torchvisions_distributions(torchvision, name):
    """Every parameter torchvision initialises to a constant is that constant; the others
    (at least 1000 values) have torchvision's standard deviation within 10% and their
    largest magnitude within torchvision's bound (truncated and uniform draws) or near it."""
    torch.manual_seed(0)  # (statistical bounds: fixed draws keep the test from failing by chance)
    jt.seed(0)
    theirs = dict(getattr(torchvision.models, name)().named_parameters())
    for key, value in getattr(jt.models, name)().named_parameters():
        ours, expected = value.numpy(), theirs[key].detach().numpy()
        if expected.std() == 0:
            assert np.array_equal(ours, expected), key
        elif expected.size >= 1000:
            assert abs(ours.std() / expected.std() - 1) < 0.1, key
            assert np.abs(ours).max() <= 1.5 * np.abs(expected).max(), key
