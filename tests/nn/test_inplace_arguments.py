"""PyTorch's ``inplace`` arguments of the activations and dropouts (functional and module
forms, keyword and positional) and the in-place functional forms ``F.relu_`` ..., against torch."""
import numpy as np
import pytest
import torch

import metajit as jt

DATA = np.array([-3.5, -1.0, -0.25, 0.0, 0.3, 1.0, 4.0, 7.5], dtype=np.float32)

FUNCTIONS = {
    "relu": (), "relu6": (), "leaky_relu": (0.2,), "elu": (0.5,), "hardtanh": (-2.0, 2.0), "silu": (),
    "selu": (), "celu": (0.7,), "hardswish": (), "hardsigmoid": (), "mish": (), "threshold": (0.5, -9.0),
    "rrelu": (0.1, 0.3, False), "dropout": (0.5, False), "alpha_dropout": (0.5, False),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_take_inplace(name):
    """The result is torch's; the input keeps its value (metajit's results are new Vars)."""
    arguments = FUNCTIONS[name]
    expected = getattr(torch.nn.functional, name)(torch.tensor(DATA), *arguments, inplace=True)
    x = jt.array(DATA)
    result = getattr(jt.nn.functional, name)(x, *arguments, inplace=True)
    np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(x.numpy(), DATA)


MODULES = {
    "ReLU": (True,), "ReLU6": (True,), "LeakyReLU": (0.2, True), "ELU": (0.5, True), "Hardtanh": (0.0, 6.0, True),
    "SiLU": (True,), "SELU": (True,), "CELU": (0.7, True), "Hardswish": (True,), "Hardsigmoid": (True,),
    "Mish": (True,), "Threshold": (0.5, -9.0, True), "RReLU": (0.1, 0.3, True), "Dropout": (0.5, True),
    "AlphaDropout": (0.5, True),
}


@pytest.mark.parametrize("positional", [True, False])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_take_inplace(name, positional):
    arguments = MODULES[name]
    options = {} if positional else {"inplace": True}
    if not positional:
        arguments = arguments[:-1]
    expected = getattr(torch.nn, name)(*arguments, **options).eval()(torch.tensor(DATA))
    result = getattr(jt.nn, name)(*arguments, **options).eval()(jt.array(DATA))
    np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["relu_", "elu_", "leaky_relu_", "hardtanh_", "threshold_", "celu_", "selu_",
                                  "rrelu_"])
def test_in_place_functions_rebind_their_input(name):
    arguments = (0.5, -9.0) if name == "threshold_" else ()
    expected = torch.tensor(DATA)
    getattr(torch.nn.functional, name)(expected, *arguments)
    x = jt.array(DATA)
    assert getattr(jt.nn.functional, name)(x, *arguments) is x
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
