"""PyTorch's ``dtype=`` on reductions, scans and softmax, and ``stable=`` on sorts, against torch."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.nn import functional as F

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "int64": torch.int64}
DATA = {
    "float32": (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 7,
    "int32": np.arange(24, dtype=np.int32).reshape(2, 3, 4) % 5 - 2,
}

REDUCTIONS = {
    "sum": lambda library, x, dtype: x.sum(dim=1, dtype=dtype),
    "sum all": lambda library, x, dtype: library.sum(x, dtype=dtype),
    "mean": lambda library, x, dtype: x.mean(dim=(0, 2), keepdim=True, dtype=dtype),
    "prod": lambda library, x, dtype: x.prod(2, dtype=dtype),
    "cumsum": lambda library, x, dtype: x.cumsum(1, dtype=dtype),
    "jt.cumsum": lambda library, x, dtype: library.cumsum(x, dim=2, dtype=dtype),
    "cumprod": lambda library, x, dtype: x.cumprod(-1, dtype=dtype),
}


def _compare(result, expected):
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-12 if result.dtype == jt.float64 else 1e-6)


@pytest.mark.parametrize("source", sorted(DATA))
@pytest.mark.parametrize("name, target", [(name, target) for name in sorted(REDUCTIONS) for target in
                                          ("float64", "int64") if (name, target) != ("mean", "int64")])
def test_reductions_and_scans_convert_to_the_dtype_first(name, source, target):
    reduce = REDUCTIONS[name]
    expected = reduce(torch, torch.tensor(DATA[source]), TORCH_DTYPES[target])
    _compare(reduce(jt, jt.array(DATA[source]), getattr(jt, target)), expected)


SOFTMAXES = {
    "F.softmax": lambda library, x, dtype: library.nn.functional.softmax(x, dim=-1, dtype=dtype),
    "F.log_softmax": lambda library, x, dtype: library.nn.functional.log_softmax(x, 1, dtype=dtype),
    "F.softmin": lambda library, x, dtype: library.nn.functional.softmin(x, 0, dtype=dtype),
    "x.softmax": lambda library, x, dtype: x.softmax(-1, dtype=dtype),
    "x.log_softmax": lambda library, x, dtype: x.log_softmax(dim=0, dtype=dtype),
}


@pytest.mark.parametrize("target", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SOFTMAXES))
def test_softmax_converts_to_the_dtype_first(name, target):
    softmax = SOFTMAXES[name]
    data = DATA["float32"] * 30  # large logits: the float64 result differs from the float32 one
    expected = softmax(torch, torch.tensor(data), TORCH_DTYPES[target])
    _compare(softmax(jt, jt.array(data), getattr(jt, target)), expected)


def test_softmax_with_a_dtype_differentiates_back_to_the_input():
    x = jt.array(DATA["float32"])
    gradient = jt.grad((F.softmax(x, -1, dtype=jt.float64) * jt.arange(4).float64()).sum(), x)
    reference = torch.tensor(DATA["float32"], requires_grad=True)
    (torch.softmax(reference, -1, dtype=torch.float64) * torch.arange(4)).sum().backward()
    assert gradient.dtype == jt.float32
    np.testing.assert_allclose(gradient.numpy(), reference.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("stable", [True, False, None])
def test_sorts_take_stable(stable, descending):
    data = np.array([3.0, 1.0, np.nan, 1.0, 2.0, 3.0, -np.inf, 1.0], dtype=np.float32)
    values, indices = jt.array(data).sort(descending=descending, stable=stable)
    expected = torch.sort(torch.tensor(data), descending=descending, stable=True)
    np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())  # ties in order, as stable=True
    np.testing.assert_array_equal(jt.argsort(jt.array(data), stable=stable, descending=descending).numpy(),
                                  torch.argsort(torch.tensor(data), stable=True, descending=descending).numpy())
    values, _ = jt.sort(jt.array(data), 0, descending, stable=stable)
    np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
