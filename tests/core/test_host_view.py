"""`Var.data` edits reach the Var, as Jittor's shared memory and PyTorch's ``.data`` do."""
import pickle

import numpy as np
import pytest
import torch

import metajit as jt


EDITS = {  # the same edit on a numpy array (the oracle) and on var.data
    "setitem": lambda a: a.__setitem__((0, slice(None)), 5),
    "view_setitem": lambda a: a[1].__setitem__(2, 7),
    "transposed": lambda a: a.T.__setitem__((0, 1), 9),
    "fill": lambda a: a.fill(2),
    "iadd": lambda a: a.__iadd__(1),
    "ufunc_out": lambda a: np.multiply(a, 3, out=a),
    "copyto": lambda a: np.copyto(a, -1),
    "fill_diagonal": lambda a: np.fill_diagonal(a, 4),
    "put": lambda a: a.put([0, 4], [8, 8]),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_in_place_changes_of_data_reach_the_var(edit):
    start = np.arange(6, dtype=np.float32).reshape(2, 3)
    var = jt.array(start)
    expected = start.copy()
    EDITS[edit](expected)
    EDITS[edit](var.data)
    np.testing.assert_array_equal(var.numpy(), expected)


def test_torch_in_place_methods_on_data_as_torchs():
    ours, theirs = jt.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for layer in (ours, theirs):
        layer.bias.data.fill_(0.5)
        layer.bias.data.mul_(2).add_(1, alpha=2).sub_(0.5).div_(2)
        layer.weight.data.copy_(torch.arange(6.0).reshape(2, 3))
        layer.weight.data[0].zero_()
        layer.weight.data.clamp_(max=4)
    np.testing.assert_allclose(ours.bias.numpy(), theirs.bias.detach().numpy())
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy())
    assert ours.weight.requires_grad and ours.weight.is_leaf
    jt.seed(0)
    ours.weight.data.normal_(0, 0.02)
    assert 0 < ours.weight.numpy().std() < 0.1


def test_copies_and_results_stay_apart_from_the_var():
    var = jt.ones(2, 2)
    copy = var.data.copy()
    copy[0] = 100
    doubled = var.data * 2
    doubled[0] = 50
    picked = var.data[[0]]
    picked[0] = 7
    np.testing.assert_array_equal(var.numpy(), np.ones((2, 2)))
    assert type(doubled) is np.ndarray
    assert type(pickle.loads(pickle.dumps(var.data))) is np.ndarray


def test_init_functions_fill_data_in_place_as_on_the_parameter():
    layer = jt.nn.Linear(40, 30)
    jt.nn.init.constant_(layer.bias.data, 0.25)
    jt.nn.init.eye_(layer.weight.data)
    np.testing.assert_array_equal(layer.bias.numpy(), np.full(30, 0.25, np.float32))
    np.testing.assert_array_equal(layer.weight.numpy(), np.eye(30, 40, dtype=np.float32))
    jt.nn.init.xavier_uniform_(layer.weight.data)
    bound = np.sqrt(6 / 70)
    assert np.abs(layer.weight.numpy()).max() <= bound and layer.weight.numpy().std() > bound / 3
    jt.nn.init.normal_(layer.weight.data, 0.0, 0.02)
    assert 0.015 < layer.weight.numpy().std() < 0.025 and layer.weight.requires_grad
