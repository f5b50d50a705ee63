"""PyTorch's small top-level names and Tensor behaviours: ``jt.Tensor``, ``is_tensor``,
``numel``, ``allclose``, ``isin``, formatting a one-element Var, comparing with None;
against torch."""
import numpy as np
import pytest
import torch

import metajit as jt


def test_tensor_is_the_type_of_every_var():
    x = jt.ones(2)
    assert isinstance(x, jt.Tensor) and isinstance(torch.ones(2), torch.Tensor)
    assert not isinstance(np.ones(2), jt.Tensor) and not isinstance(np.ones(2), torch.Tensor)
    assert issubclass(jt.Var, jt.Tensor)
    np.testing.assert_array_equal(jt.Tensor.add(x, 2).numpy(), torch.Tensor.add(torch.ones(2), 2).numpy())
    assert jt.is_tensor(x) and not jt.is_tensor([1.0]) and torch.is_tensor(torch.ones(1))


@pytest.mark.parametrize("arguments", [(2, 3), (4,), ((2, 2),), ([1, 2, 3],), ([[1.5], [2.5]],), ()],
                         ids=["sizes", "size", "size tuple", "int data", "float data", "nothing"])
def test_tensor_constructor(arguments):
    if len(arguments) == 1 and isinstance(arguments[0], tuple):
        made, expected = jt.Tensor(jt.ones(*arguments[0]).shape), torch.Tensor(torch.Size(arguments[0]))
    else:
        made, expected = jt.Tensor(*arguments), torch.Tensor(*arguments)
    assert tuple(made.shape) == tuple(expected.shape) and made.dtype == jt.float32
    if arguments and isinstance(arguments[0], list):
        np.testing.assert_array_equal(made.numpy(), expected.numpy())


def test_numel_and_allclose():
    assert jt.numel(jt.ones(2, 3)) == torch.numel(torch.ones(2, 3)) == 6
    a, b = np.array([1.0, 2.0], np.float32), np.array([1.0, 2.0 + 1e-6], np.float32)
    assert jt.allclose(jt.array(a), jt.array(b)) == torch.allclose(torch.tensor(a), torch.tensor(b)) is True
    assert jt.allclose(jt.array(a), jt.array(b + 1)) == torch.allclose(torch.tensor(a), torch.tensor(b + 1))


ISIN_CASES = {
    "ints": (np.array([[1, 5, 2], [0, 7, 2]]), np.array([2, 7, 9])),
    "floats with nan": (np.array([1.5, np.nan, -0.0, 3.0], np.float32), np.array([0.0, np.nan, 3.0], np.float32)),
    "scalar test": (np.array([3, 4, 3]), 3),
    "no test elements": (np.array([3, 4]), np.array([], np.int64)),
    "ints against floats": (np.array([1, 2, 3]), np.array([2.0, 2.5], np.float32)),
}


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("case", sorted(ISIN_CASES))
def test_isin(case, invert):
    elements, tests = ISIN_CASES[case]
    expected = torch.isin(torch.tensor(elements), torch.tensor(tests) if isinstance(tests, np.ndarray) else tests,
                          invert=invert)
    result = jt.isin(jt.array(elements), jt.array(tests) if isinstance(tests, np.ndarray) else tests, invert=invert)
    assert result.dtype == jt.bool
    np.testing.assert_array_equal(result.numpy(), expected.numpy())


@pytest.mark.parametrize("spec", [".3f", "8.2e", "", "+.1%"])
def test_formatting_a_scalar_var(spec):
    value = np.float32(1.23456)
    assert format(jt.array(value), spec) == format(torch.tensor(value), spec) if spec else True
    if spec:
        assert f"{jt.array([value]):{spec}}" == format(value.item(), spec)  # one element: torch formats 0-d only
    assert format(jt.array(value), "") == str(jt.array(value))
    assert f"{jt.array(7):d}" == f"{torch.tensor(7):d}"


def test_formatting_a_var_of_several_elements_is_refused():
    with pytest.raises(TypeError):
        format(torch.ones(2), ".3f")
    with pytest.raises(TypeError, match="item"):
        format(jt.ones(2), ".3f")


def test_comparing_with_none():
    x, t = jt.ones(2), torch.ones(2)
    assert (x == None) is (t == None) is False  # noqa: E711  (the spelling under test)
    assert (x != None) is (t != None) is True  # noqa: E711
    assert x is not None and x.__eq__(None) is False
    np.testing.assert_array_equal((x == 1).numpy(), [True, True])


@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
                                  "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"])
def test_legacy_typed_constructors_as_torchs(name):
    ours, theirs = getattr(jt, name), getattr(torch, name)
    data = [[1, 0], [3, 1]]
    made, expected = ours(data), theirs(data)
    assert str(made.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_array_equal(made.numpy(), expected.numpy())
    assert tuple(ours(2, 3).shape) == (2, 3) and isinstance(made, ours) and isinstance(made, jt.Tensor)
    assert isinstance(made, jt.FloatTensor) == (name == "FloatTensor")
    assert getattr(jt.cuda, name) is ours


def test_variable_is_the_tensor_itself():
    x = jt.array([1.0, 2.0])
    assert jt.autograd.Variable(x) is x
    leaf = jt.autograd.Variable(jt.array([3.0]), requires_grad=True, volatile=False)
    (leaf * leaf).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [6.0])
