"""Layers' ``reset_parameters()`` and norm layers' ``reset_running_stats()``, against torch:
the same Vars drawn again from torch's distributions, or set back to torch's constants."""
import math

import numpy as np
import pytest
import torch

import metajit as jt

DRAWN = {
    "Linear": (lambda nn: nn.Linear(400, 300), 1 / math.sqrt(400)),
    "Conv2d": (lambda nn: nn.Conv2d(16, 32, 3), 1 / math.sqrt(16 * 9)),
    "ConvTranspose2d": (lambda nn: nn.ConvTranspose2d(16, 32, 3, groups=2), 1 / math.sqrt(16 * 9)),
    "Bilinear": (lambda nn: nn.Bilinear(30, 20, 40), 1 / math.sqrt(30)),
}


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_reset_parameters_draws_again_from_torchs_distribution(name):
    make, bound = DRAWN[name]
    layer, reference = make(jt.nn), make(torch.nn)
    optimizer = jt.optim.SGD(layer.parameters(), lr=0.1)
    before = {key: value for key, value in layer.named_parameters()}
    old_values = {key: value.numpy().copy() for key, value in before.items()}
    layer.reset_parameters()
    reference.reset_parameters()
    for key, value in layer.named_parameters():
        assert value is before[key] and value.requires_grad  # the same Vars: the optimiser still holds them
        drawn, expected = value.numpy(), reference.state_dict()[key].numpy()
        assert not np.array_equal(drawn, old_values[key])
        assert np.abs(drawn).max() <= bound and np.abs(expected).max() <= bound
        if drawn.size >= 1000:  # uniform within the bound, as torch's
            for values in (drawn, expected):
                assert abs(values.std() / (bound / math.sqrt(3)) - 1) < 0.1, key
    assert optimizer.params[0] is layer.weight


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_reset_parameters(padding_idx):
    layer = jt.nn.Embedding(500, 40, padding_idx=padding_idx)
    reference = torch.nn.Embedding(500, 40, padding_idx=padding_idx)
    weight = layer.weight
    layer.reset_parameters()
    reference.reset_parameters()
    assert layer.weight is weight
    drawn, expected = weight.numpy(), reference.weight.detach().numpy()
    assert abs(drawn.std() / expected.std() - 1) < 0.05
    if padding_idx is not None:
        np.testing.assert_array_equal(drawn[padding_idx], expected[padding_idx])


CONSTANT = {  # name -> (layer, the shape of an input)
    "BatchNorm1d": (lambda nn: nn.BatchNorm1d(3), (2, 3, 4)),
    "BatchNorm2d": (lambda nn: nn.BatchNorm2d(3), (2, 3, 2, 2)),
    "InstanceNorm2d": (lambda nn: nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 2, 2)),
    "SyncBatchNorm": (lambda nn: nn.SyncBatchNorm(3), (2, 3, 2, 2)),
    "LayerNorm": (lambda nn: nn.LayerNorm(3), (2, 4, 3)),
    "GroupNorm": (lambda nn: nn.GroupNorm(1, 3), (2, 3, 4)),
    "RMSNorm": (lambda nn: nn.RMSNorm(3), (2, 4, 3)),
    "PReLU": (lambda nn: nn.PReLU(3, init=0.1), (2, 3, 4)),
}


def _trained(library, name):
    """A layer whose parameters and running statistics one training step changed."""
    make, shape = CONSTANT[name]
    layer = make(library.nn)
    x = library.tensor(np.arange(24, dtype=np.float32).reshape(shape) / 7 - 1)
    optimizer = library.optim.SGD(layer.parameters(), lr=0.5)
    (layer(x) * library.tensor(np.linspace(0, 1, 24, dtype=np.float32).reshape(shape))).sum().backward()
    optimizer.step()
    return layer


@pytest.mark.parametrize("name", sorted(CONSTANT))
def test_reset_parameters_restores_the_constants(name):
    layer, reference = _trained(jt, name), _trained(torch, name)
    fresh = CONSTANT[name][0](torch.nn).state_dict()
    assert all(not np.array_equal(value.numpy(), fresh[key].numpy()) for key, value in layer.state_dict().items()
               if value.is_floating_point())
    layer.reset_parameters()
    reference.reset_parameters()
    assert sorted(layer.state_dict()) == sorted(reference.state_dict())
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[key].numpy(), value.numpy(), err_msg=key)


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm2d", "InstanceNorm2d", "SyncBatchNorm"])
def test_reset_running_stats_keeps_the_affine_parameters(name):
    layer, reference = _trained(jt, name), _trained(torch, name)
    weight = layer.weight.numpy().copy()
    layer.reset_running_stats()
    reference.reset_running_stats()
    np.testing.assert_array_equal(layer.weight.numpy(), weight)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(getattr(layer, key).numpy(), getattr(reference, key).numpy())
    assert layer.num_batches_tracked.dtype == jt.int64
    jt.nn.BatchNorm2d(3, track_running_stats=False).reset_running_stats()  # nothing to reset
