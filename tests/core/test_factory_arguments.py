"""PyTorch's factory keyword arguments (``dtype``, ``device``, ``requires_grad``, ``layout``,
``pin_memory``, ``out``) and default dtype, against torch (`metajit.creation`)."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.errors import MetajitDeviceError, MetajitValueError

# name -> (metajit call, torch call): each takes the library and keyword arguments
FACTORIES = {
    "zeros": lambda L, **k: L.zeros(2, 3, **k),
    "zeros tuple": lambda L, **k: L.zeros((2, 3), **k),
    "ones": lambda L, **k: L.ones(4, **k),
    "full": lambda L, **k: L.full((2,), -1.5, **k),
    "arange": lambda L, **k: L.arange(0, 5, 2, **k),
    "linspace": lambda L, **k: L.linspace(-1, 1, 5, **k),
    "eye": lambda L, **k: L.eye(3, 2, **k),
    "tensor": lambda L, **k: L.tensor([[1.5, -2.0]], **k),
    "zeros_like": lambda L, **k: L.zeros_like(L.ones(2, 3), **k),
    "ones_like": lambda L, **k: L.ones_like(L.ones(3), **k),
    "full_like": lambda L, **k: L.full_like(L.ones(2), 7, **k),
}
UNFILLED = {
    "empty": lambda L, **k: L.empty(2, 2, **k),
    "empty_like": lambda L, **k: L.empty_like(L.ones(2), **k),
    "rand": lambda L, **k: L.rand(3, 2, **k),
    "randn": lambda L, **k: L.randn((4,), **k),
    "rand_like": lambda L, **k: L.rand_like(L.ones(2, 3), **k),
    "randn_like": lambda L, **k: L.randn_like(L.ones(5), **k),
}


def _same_value(result, expected):
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(result.numpy(), expected.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_take_dtype_device_and_the_other_keywords(name):
    make = FACTORIES[name]
    options = dict(dtype="float64", pin_memory=False, **({} if name == "tensor" else {"layout": None}))
    expected = make(torch, device="cpu", **{**options, "dtype": torch.float64})
    _same_value(make(jt, device="cpu", **options), expected)
    _same_value(make(jt, device=jt.ones(1).device, **options), expected)
    _same_value(make(jt, device=jt.device("cpu"), **options), expected)
    if name != "tensor":  # (torch.tensor takes no layout)
        _same_value(make(jt, layout=torch.strided, dtype=jt.float32),
                    make(torch, layout=torch.strided, dtype=torch.float32))


@pytest.mark.parametrize("name", sorted(FACTORIES) + sorted(UNFILLED))
def test_factories_make_leaves_that_backward_fills(name):
    make = {**FACTORIES, **UNFILLED}[name]
    made, reference = make(jt, requires_grad=True, dtype=jt.float32), make(torch, requires_grad=True,
                                                                             dtype=torch.float32)
    assert made.requires_grad and made.is_leaf and reference.is_leaf == made.is_leaf
    (made * 3).sum().backward()
    (reference * 3).sum().backward()
    np.testing.assert_array_equal(made.grad.numpy(), reference.grad.numpy())
    untracked = make(jt, requires_grad=False)
    assert untracked.requires_grad is make(torch, requires_grad=False).requires_grad is False


@pytest.mark.parametrize("name", sorted(UNFILLED))
def test_random_and_empty_factories_take_the_keywords(name):
    made = UNFILLED[name](jt, dtype=jt.float64, device="cpu", pin_memory=True)
    expected = UNFILLED[name](torch, dtype=torch.float64, device="cpu")
    assert made.dtype == jt.float64 and tuple(made.shape) == tuple(expected.shape)


def test_randint_takes_torch_forms():
    assert jt.randint(0, 10, (3,), device="cpu").shape == (3,)
    for values in (jt.randint(5, (200,)), jt.randint(2, 5, size=(200,)), jt.randint(5, size=(200,))):
        reference = torch.randint(5, (200,))
        assert values.shape == reference.shape
        assert 0 <= values.numpy().min() and values.numpy().max() < 5
    assert jt.randint(2, 5, size=(300,)).numpy().min() == 2
    assert jt.randint_like(jt.ones(4, dtype=jt.int64), 3).dtype == jt.int64


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_another_device_and_out_are_refused(name):
    make = FACTORIES[name]
    with pytest.raises(MetajitDeviceError, match="set_device"):
        make(jt, device="mps")
    with pytest.raises(MetajitValueError, match="out="):
        make(jt, out=jt.zeros(2))
    if name != "tensor":
        with pytest.raises(MetajitValueError, match="layout"):
            make(jt, layout="sparse_coo")


def test_new_methods_take_the_keywords():
    x = jt.ones(2, dtype=jt.float64)
    made = x.new_zeros((2, 3), device="cpu", requires_grad=True, pin_memory=False)
    assert made.dtype == jt.float64 and made.requires_grad
    assert not x.new_full((2,), 3.0, requires_grad=False).requires_grad
    with pytest.raises(MetajitValueError, match="out="):
        x.new_tensor([1.0], out=x)


@pytest.fixture
def float64_by_default():
    previous = jt.get_default_dtype()
    jt.set_default_dtype(jt.float64)
    torch.set_default_dtype(torch.float64)
    yield
    jt.set_default_dtype(previous)
    torch.set_default_dtype(torch.float32)


DEFAULT_DTYPE_USES = {
    "zeros": lambda L: L.zeros(2),
    "full": lambda L: L.full((2,), 0.5),
    "rand": lambda L: L.rand(2),
    "linspace": lambda L: L.linspace(0, 1, 3),
    "arange of floats": lambda L: L.arange(0.0, 1.0, 0.5),
    "tensor of floats": lambda L: L.tensor([1.5]),
    "eye": lambda L: L.eye(2),
    "integer true division": lambda L: L.tensor([3]) / L.tensor([2]),
    "float32 Var times a Python float": lambda L: L.ones(2, dtype=L.float32) * 0.5,
    "Linear's weight": lambda L: L.nn.Linear(2, 2).weight,
}


@pytest.mark.parametrize("use", sorted(DEFAULT_DTYPE_USES))
def test_the_default_dtype(use, float64_by_default):
    assert jt.get_default_dtype() == jt.float64
    make = DEFAULT_DTYPE_USES[use]
    assert str(make(jt).dtype) == str(make(torch).dtype).removeprefix("torch.")


def test_the_default_dtype_is_float32_and_floating():
    assert jt.get_default_dtype() == jt.float32 and jt.zeros(1).dtype == jt.float32
    with pytest.raises(TypeError):
        jt.set_default_dtype(jt.int32)
    with pytest.raises(TypeError):
        torch.set_default_dtype(torch.int32)
