"""Containers, Parameter, Jittor's Pool, and initialiser distributions (vs PyTorch's formulas)."""
import collections
import math

import numpy as np
import pytest

import metajit as jt
from metajit import init


def test_parameter_module_dict_parameter_list_and_delattr():
    model = jt.nn.Module()
    model.table = jt.nn.ModuleDict({"a": jt.nn.Linear(2, 3), "b": jt.nn.ReLU()})
    model.extra = jt.nn.ParameterList([jt.nn.Parameter(np.ones(2, np.float32)), jt.zeros(3)])
    model.frozen = jt.nn.Parameter(jt.ones(1), requires_grad=False)
    assert list(model.table.keys()) == ["a", "b"] and len(model.table) == 2
    assert model.table["a"].weight.shape == (3, 2) and len(model.extra) == 2
    assert [n for n, _ in model.named_parameters()] == [
        "frozen", "table.a.weight", "table.a.bias", "extra.0", "extra.1"]
    assert not model.frozen.requires_grad
    del model.frozen
    assert "frozen" not in dict(model.named_parameters())
    with pytest.raises(AttributeError):
        model.frozen


def test_module_attribute_before_super_init_is_a_parameter():
    class NoSuper(jt.nn.Module):  # Jittor modules need not call super().__init__()
        def __init__(self):
            self.weight = jt.zeros(1)
    assert [name for name, _ in NoSuper().named_parameters()] == ["weight"]


def test_jittor_pool_matches_max_and_average_pooling():
    x = jt.array(np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4))
    np.testing.assert_array_equal(jt.nn.Pool(2, op="maximum")(x).numpy(), jt.nn.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(jt.nn.Pool(2, op="mean")(x).numpy(), jt.nn.avg_pool2d(x, 2).numpy())
    with pytest.raises(jt.MetajitValueError, match="op must be"):
        jt.nn.Pool(2, op="median")


@pytest.mark.parametrize("op,options", [
    ("maximum", {"stride": 2, "ceil_mode": True}), ("maximum", {"stride": 1, "padding": 1, "dilation": 2}),
    ("mean", {"stride": 2, "padding": 1, "ceil_mode": True}), ("mean", {"padding": 1, "count_include_pad": False}),
])
def test_jittor_pool_options_match_torch(op, options):
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)
    pool = torch.nn.MaxPool2d if op == "maximum" else torch.nn.AvgPool2d
    expected = pool(3, **options)(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(jt.nn.Pool(3, op=op, **options)(jt.array(data)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_jittor_pool_rejects_what_it_cannot_do():
    with pytest.raises(jt.MetajitValueError, match="return_indices"):
        jt.nn.Pool(2, return_indices=True, op="mean")
    with pytest.raises(jt.MetajitValueError, match="dilation"):
        jt.nn.Pool(2, dilation=2, op="mean")


def test_nonzero_and_one_argument_where():
    x = jt.array([[0, 3], [4, 0]])
    np.testing.assert_array_equal(jt.nonzero(x).numpy(), [[0, 1], [1, 0]])
    rows, columns = jt.where(x > 0)
    np.testing.assert_array_equal(rows.numpy(), [0, 1])
    np.testing.assert_array_equal(columns.numpy(), [1, 0])


@pytest.mark.parametrize("nonlinearity,param,expected", [
    ("linear", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75)])
def test_calculate_gain(nonlinearity, param, expected):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected)


@pytest.mark.parametrize("initialiser,expected_std", [
    (lambda w: init.xavier_uniform_(w), math.sqrt(2 / (300 + 200))),
    (lambda w: init.xavier_normal_(w, gain=2.0), 2 * math.sqrt(2 / (300 + 200))),
    (lambda w: init.kaiming_normal_(w, nonlinearity="relu"), math.sqrt(2 / 300)),
    (lambda w: init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 200)),
    (lambda w: init.normal_(w, 1.0, 0.5), 0.5),
])
def test_initialiser_spread(initialiser, expected_std):
    weight = jt.zeros(200, 300)
    values = initialiser(weight).numpy()
    assert weight.shape == (200, 300)
    assert values.std() == pytest.approx(expected_std, rel=0.05)


def test_constant_initialisers_and_bad_fan():
    weight = jt.zeros(2, 3)
    assert (init.ones_(weight).numpy() == 1).all()
    assert (init.constant_(weight, 0.5).numpy() == 0.5).all()
    assert (init.zeros_(weight).numpy() == 0).all()
    with pytest.raises(jt.MetajitValueError, match="at least 2 dims"):
        init.xavier_uniform_(jt.zeros(3))


def test_trunc_normal_matches_torch_distribution():
    torch = pytest.importorskip("torch")
    weight = jt.zeros(300, 200)
    values = init.trunc_normal_(weight, mean=0.5, std=1.0, a=-0.5, b=1.5).numpy()
    theirs = torch.nn.init.trunc_normal_(torch.zeros(300, 200), mean=0.5, std=1.0, a=-0.5, b=1.5).numpy()
    assert values.min() >= -0.5 and values.max() <= 1.5
    assert values.std() == pytest.approx(theirs.std(), rel=0.03)
    assert values.mean() == pytest.approx(theirs.mean(), abs=0.01)
    with pytest.raises(jt.MetajitValueError, match="a < b"):
        init.trunc_normal_(weight, a=1.0, b=0.0)


def _layout(container):
    """(name, kind, in features) of each child: comparable between metajit and torch."""
    return [(name, type(layer).__name__, getattr(layer, "in_features", None)) for name, layer in
            container.named_children()]


def test_sequential_and_module_list_edits_follow_torch():
    """Replacing a named child keeps its place (a grayscale stem set as ``features.conv0 =``
    must still run first); item assignment, deletion, insertion and pop match torch's
    containers, children renumbered as torch does."""
    torch = pytest.importorskip("torch")
    for kind in ("Sequential", "ModuleList"):
        def build(nn):
            layers = [nn.Linear(k + 1, k + 2) for k in range(5)]
            return getattr(nn, kind)(*layers) if kind == "Sequential" else getattr(nn, kind)(layers)
        ours, theirs = build(jt.nn), build(torch.nn)
        for container, nn in ((ours, jt.nn), (theirs, torch.nn)):
            container[1] = nn.Linear(20, 3)
            container[-1] = nn.Linear(30, 6)
            setattr(container, "2", nn.Linear(40, 4))
            del container[0]
            container.insert(1, nn.Linear(50, 1))
            container.append(nn.Linear(60, 1))
            assert container.pop(2).in_features == 40
            del container[1:2]
            container.extend([nn.Linear(70, 1)])
        assert _layout(ours) == _layout(theirs)
        assert type(ours[1:]) is type(ours) and _layout(ours[1:]) == _layout(theirs[1:])
        with pytest.raises(IndexError, match="out of range"):
            ours[len(ours)] = jt.nn.ReLU()


def test_replacing_a_named_layer_keeps_the_forward_order():
    model = jt.nn.Sequential(collections.OrderedDict(
        [("conv0", jt.nn.Conv2d(3, 4, 3)), ("relu0", jt.nn.ReLU()), ("pool0", jt.nn.MaxPool2d(2))]))
    model.conv0 = jt.nn.Conv2d(1, 4, 3)  # a grayscale input
    assert [name for name, _ in model.named_children()] == ["conv0", "relu0", "pool0"]
    assert model(jt.ones((1, 1, 6, 6))).shape == (1, 4, 2, 2)
    model.relu0 = jt.nn.ReLU6()
    model.conv0.weight = jt.zeros((4, 1, 3, 3))
    assert [name for name, _ in model.named_parameters()] == ["conv0.weight", "conv0.bias"]

