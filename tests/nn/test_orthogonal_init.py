"""``nn.init.orthogonal_``: (semi-)orthogonal matrices as torch's, checked by their Gram matrices."""
import numpy as np
import pytest
import torch

import metajit as jt


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (3, 2, 2, 2), (1, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_rows_or_columns(shape, gain):
    var = jt.empty(*shape)
    assert jt.nn.init.orthogonal_(var, gain=gain) is var
    expected = torch.nn.init.orthogonal_(torch.empty(*shape), gain=gain)
    rows = shape[0]
    for matrix in (var.numpy().reshape(rows, -1), expected.numpy().reshape(rows, -1)):
        gram = matrix @ matrix.T if rows <= matrix.shape[1] else matrix.T @ matrix
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(len(gram)), atol=1e-5)


def test_orthogonal_keeps_a_parameter_trainable_and_repeats_with_the_seed():
    layer = jt.nn.Linear(5, 5)
    jt.set_global_seed(3)
    first = jt.nn.init.orthogonal_(layer.weight).numpy().copy()
    jt.set_global_seed(3)
    np.testing.assert_array_equal(jt.nn.init.orthogonal_(layer.weight).numpy(), first)
    assert layer.weight.requires_grad
    assert layer.weight.dtype == jt.float32


def test_orthogonal_needs_two_dims():
    with pytest.raises(ValueError):
        torch.nn.init.orthogonal_(torch.empty(3))
    with pytest.raises(ValueError, match="2 or more dims"):
        jt.nn.init.orthogonal_(jt.empty(3))
