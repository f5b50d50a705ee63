"""Weight and spectral normalisation (``metajit.nn.utils``) and parametrizations against
``torch.nn.utils``: state-dict keys, forwards, gradients, the power iteration's buffers
over training and evaluation forwards, removal, and parametrize's own behaviour."""
import warnings

import numpy as np
import pytest

import metajit as jt
from metajit import nn
from metajit.nn.utils import parametrizations, parametrize
from metajit.nn.utils import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm

torch = pytest.importorskip("torch")
tutils = torch.nn.utils


def assert_close(got, want, tolerance=2e-5):
    """Relative to the reference's largest magnitude."""
    got = got.numpy() if isinstance(got, jt.Var) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape
    assert np.abs(got - want).max(initial=0) <= tolerance * max(np.abs(want).max(initial=0), 1e-30)


def layer_pair(kind, rng):
    """The same layer in torch and metajit, with identical random weights."""
    shapes = {"linear": ((5, 4), (2, 5)), "conv": ((3, 4, 3), (2, 3, 6, 6)),
              "conv_transpose": ((3, 4, 3), (2, 3, 5, 5))}
    arguments, input_shape = shapes[kind]
    torch_class, our_class = {"linear": (torch.nn.Linear, nn.Linear), "conv": (torch.nn.Conv2d, nn.Conv2d),
                              "conv_transpose": (torch.nn.ConvTranspose2d, nn.ConvTranspose2d)}[kind]
    theirs, ours = torch_class(*arguments), our_class(*arguments)
    with torch.no_grad():
        for parameter in theirs.parameters():
            parameter.copy_(torch.from_numpy(rng.standard_normal(parameter.shape).astype(np.float32)))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs, ours, rng.standard_normal(input_shape).astype(np.float32)


def load_from(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})


def torch_step(theirs, x, weights):
    out = theirs(torch.from_numpy(x))
    (out * torch.from_numpy(weights)).sum().backward()
    return out


def our_step(ours, x, weights, parameters):
    out = ours(jt.array(x))
    return out, jt.grad((out * jt.array(weights)).sum(), parameters)


@pytest.mark.parametrize("kind,dim", [("linear", 0), ("linear", 1), ("linear", None), ("conv", 0),
                                      ("conv", 2), ("conv", -1)])
def test_weight_norm_matches_torch_forward_gradients_and_removal(rng, kind, dim):
    theirs, ours, x = layer_pair(kind, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        tutils.weight_norm(theirs, dim=dim)
    weight_norm(ours, dim=dim)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.weight_g.shape == tuple(theirs.weight_g.shape)
    assert_close(ours.weight_g, theirs.weight_g)
    weights = rng.standard_normal(theirs(torch.from_numpy(x)).shape).astype(np.float32)
    with torch.no_grad():  # a different magnitude than the weight's own norm
        theirs.weight_g.mul_(1.5)
    load_from(ours, theirs)
    out = torch_step(theirs, x, weights)
    got, grads = our_step(ours, x, weights, [ours.weight_g, ours.weight_v, ours.bias])
    assert_close(got, out)
    for grad, parameter in zip(grads, [theirs.weight_g, theirs.weight_v, theirs.bias]):
        assert_close(grad, parameter.grad, 1e-4)
    tutils.remove_weight_norm(theirs)
    remove_weight_norm(ours)
    assert list(ours.state_dict()) == list(theirs.state_dict()) and ours.weight.requires_grad
    assert_close(ours.weight, theirs.weight)


def test_weight_norm_trains_magnitude_and_direction_as_torch(rng):
    theirs, ours, x = layer_pair("linear", rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        tutils.weight_norm(theirs)
    weight_norm(ours)
    torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    optimizer = jt.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        torch_optimizer.zero_grad()
        (theirs(torch.from_numpy(x)) ** 2).sum().backward()
        torch_optimizer.step()
        optimizer.step((ours(jt.array(x)) ** 2).sum())
    assert_close(ours.weight_g, theirs.weight_g, 1e-4)
    assert_close(ours.weight_v, theirs.weight_v, 1e-4)


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_spectral_norm_matches_torch_over_training_and_evaluation(rng, kind):
    theirs, ours, x = layer_pair(kind, rng)
    tutils.spectral_norm(theirs, n_power_iterations=2)
    spectral_norm(ours, n_power_iterations=2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.weight_u.shape == tuple(theirs.weight_u.shape)
    assert ours.weight_v.shape == tuple(theirs.weight_v.shape)  # dim 1 for the transposed convolution
    load_from(ours, theirs)
    weights = rng.standard_normal(theirs(torch.from_numpy(x)).shape).astype(np.float32)
    load_from(ours, theirs)  # (that forward refined torch's vectors)
    for _ in range(3):
        theirs.weight_orig.grad = None
        out = torch_step(theirs, x, weights)
        got, (grad,) = our_step(ours, x, weights, [ours.weight_orig])
        assert_close(got, out, 1e-4)
        assert_close(grad, theirs.weight_orig.grad, 1e-4)
        assert_close(ours.weight_u, theirs.weight_u, 1e-4)
        assert_close(ours.weight_v, theirs.weight_v, 1e-4)
    theirs.eval(), ours.eval()
    u = ours.weight_u.numpy()
    assert_close(ours(jt.array(x)), theirs(torch.from_numpy(x)), 1e-4)
    np.testing.assert_array_equal(ours.weight_u.numpy(), u)  # evaluation leaves the estimates
    tutils.remove_spectral_norm(theirs)
    remove_spectral_norm(ours)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert_close(ours.weight, theirs.weight, 1e-4)


def test_spectral_norm_divides_by_the_largest_singular_value(rng):
    left, _ = np.linalg.qr(rng.standard_normal((8, 6)))
    right, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    layer = nn.Linear(6, 8)
    layer.weight.assign(((left * [4.0, 2.0, 1.0, 0.5, 0.2, 0.1]) @ right.T).astype(np.float32))  # singular values 4, 2, ...
    spectral_norm(layer, n_power_iterations=30)
    layer(jt.randn(1, 6))
    singular = np.linalg.svd(layer.weight.numpy(), compute_uv=False)
    assert abs(singular[0] - 1) < 1e-4


@pytest.mark.parametrize("dim", [0, 1, None])
def test_parametrized_weight_norm_loads_torch_state_and_matches_it(rng, dim):
    theirs, ours, x = layer_pair("conv", rng)
    tutils.parametrizations.weight_norm(theirs, dim=dim)
    parametrizations.weight_norm(ours, dim=dim)
    assert type(ours).__name__ == type(theirs).__name__ == "ParametrizedConv2d"
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        theirs.parametrizations.weight.original0.mul_(0.5)
    load_from(ours, theirs)
    weights = rng.standard_normal(theirs(torch.from_numpy(x)).shape).astype(np.float32)
    out = torch_step(theirs, x, weights)
    stored = ours.parametrizations.weight
    got, grads = our_step(ours, x, weights, [stored.original0, stored.original1])
    assert_close(got, out)
    for grad, parameter in zip(grads, [theirs.parametrizations.weight.original0,
                                       theirs.parametrizations.weight.original1]):
        assert_close(grad, parameter.grad, 1e-4)
    new = rng.standard_normal(tuple(theirs.weight.shape)).astype(np.float32)
    with torch.no_grad():
        theirs.weight = torch.from_numpy(new)
    ours.weight = jt.array(new)  # through right_inverse
    assert_close(stored.original0, theirs.parametrizations.weight.original0)
    assert_close(ours.weight, new)


@pytest.mark.parametrize("kind", ["linear", "conv_transpose"])
def test_parametrized_spectral_norm_matches_torch(rng, kind):
    theirs, ours, x = layer_pair(kind, rng)
    tutils.parametrizations.spectral_norm(theirs)
    parametrizations.spectral_norm(ours)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_from(ours, theirs)
    weights = rng.standard_normal(tuple(theirs(torch.from_numpy(x)).shape)).astype(np.float32)
    load_from(ours, theirs)
    original = theirs.parametrizations.weight.original
    for _ in range(2):
        original.grad = None
        out = torch_step(theirs, x, weights)
        got, (grad,) = our_step(ours, x, weights, [ours.parametrizations.weight.original])
        assert_close(got, out, 1e-4)
        assert_close(grad, original.grad, 1e-4)
        assert_close(ours.parametrizations.weight[0]._u, theirs.parametrizations.weight[0]._u, 1e-4)
    theirs.eval(), ours.eval()
    assert_close(ours(jt.array(x)), theirs(torch.from_numpy(x)), 1e-4)


def test_parametrized_spectral_norm_of_a_vector_normalises_it(rng):
    layer = parametrizations.spectral_norm(nn.Linear(3, 4), name="bias")
    bias = layer.parametrizations.bias.original.numpy()
    assert_close(layer.bias, bias / np.linalg.norm(bias), 1e-6)


class Symmetric(nn.Module):
    def execute(self, x):
        return x.triu() + x.triu(1).transpose(0, 1)


class FirstRow(nn.Module):
    def execute(self, x):
        return x[:1]


class Split(nn.Module):
    """A parametrization storing two values: the weight is their sum."""

    def execute(self, a, b):
        return a + b

    def right_inverse(self, weight):
        return weight * 0.25, weight * 0.75


def test_register_parametrization_stores_reads_assigns_and_removes(rng):
    layer = nn.Linear(3, 3)
    weight = layer.weight.numpy()
    parametrize.register_parametrization(layer, "weight", Symmetric())
    assert parametrize.is_parametrized(layer) and parametrize.is_parametrized(layer, "weight")
    assert not parametrize.is_parametrized(layer, "bias")
    assert parametrize.type_before_parametrizations(layer) is nn.Linear
    symmetric = np.triu(weight) + np.triu(weight, 1).T
    assert_close(layer.weight, symmetric, 1e-6)
    assert [name for name, _ in layer.named_parameters()] == ["bias", "parametrizations.weight.original"]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    (grad,) = jt.grad(layer(jt.array(x)).sum(), [layer.parametrizations.weight.original])
    outer = np.outer(np.ones(3), x.sum(0))  # the loss's gradient with respect to the symmetric weight
    assert_close(grad, np.triu(outer) + np.triu(outer.T, 1), 1e-5)
    parametrize.remove_parametrizations(layer, "weight")
    assert type(layer) is nn.Linear and list(layer.state_dict()) == ["bias", "weight"]
    assert_close(layer.weight, symmetric, 1e-6)
    assert other_instances_unaffected()


def other_instances_unaffected():
    plain = nn.Linear(2, 2)
    return type(plain) is nn.Linear and "weight" in plain._parameters


def test_parametrization_with_several_stored_values_and_chained_ones():
    layer = nn.Linear(2, 2)
    weight = layer.weight.numpy()
    parametrize.register_parametrization(layer, "weight", Split())
    stored = layer.parametrizations.weight
    assert_close(stored.original0, weight * 0.25, 1e-6)
    assert_close(stored.original1, weight * 0.75, 1e-6)
    parametrize.register_parametrization(layer, "weight", Symmetric())
    assert len(stored) == 2
    assert_close(layer.weight, np.triu(weight) + np.triu(weight, 1).T, 1e-6)
    with pytest.raises(jt.MetajitValueError, match="stores several"):
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)


def test_cached_computes_a_parametrized_tensor_once():
    layer = parametrizations.weight_norm(nn.Linear(2, 2))
    with parametrize.cached():
        assert layer.weight is layer.weight
    assert layer.weight is not layer.weight


def test_parametrizations_and_norms_name_the_mistake():
    layer = nn.Linear(2, 3)
    with pytest.raises(jt.MetajitValueError, match="no parameter or buffer named 'weights'"):
        parametrize.register_parametrization(layer, "weights", Symmetric())
    with pytest.raises(jt.MetajitShapeError, match="unsafe=True"):
        parametrize.register_parametrization(layer, "weight", FirstRow())
    with pytest.raises(jt.MetajitValueError, match="no parametrization"):
        parametrize.remove_parametrizations(layer, "weight")
    weight_norm(layer)
    with pytest.raises(jt.MetajitValueError, match="already has a weight_norm; call remove_weight_norm first"):
        weight_norm(layer)
    with pytest.raises(jt.MetajitValueError, match="spectral_norm of 'weight' not found"):
        remove_spectral_norm(layer)
    with pytest.raises(jt.MetajitValueError, match="n_power_iterations must be positive"):
        spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(jt.MetajitValueError, match="dim 2 is out of range"):
        weight_norm(nn.Linear(2, 2), dim=2)
    with pytest.raises(jt.MetajitValueError, match="dim 2 is out of range"):
        parametrizations.weight_norm(nn.Linear(2, 2), dim=2)
    for register in (spectral_norm, parametrizations.spectral_norm):
        with pytest.raises(jt.MetajitValueError, match="dim -3 is out of range"):
            register(nn.Linear(2, 2), dim=-3)
