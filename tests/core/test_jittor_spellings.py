"""Jittor's reduce / reduce_* / arg_reduce / ternary / unary / binary spellings against numpy."""
import numpy as np
import pytest

import metajit as jt

NUMPY_REDUCERS = {"add": np.sum, "multiply": np.prod, "maximum": np.max, "minimum": np.min,
                  "logical_and": np.all, "logical_or": np.any, "mean": np.mean}


@pytest.mark.parametrize("op", sorted(NUMPY_REDUCERS))
@pytest.mark.parametrize("dims,keepdims", [((), False), ((1,), True), ((0, 2), False)])
def test_reduce_matches_numpy(rng, op, dims, keepdims):
    data = rng.standard_normal((2, 3, 4)).astype(np.float32)
    if op.startswith("logical"):
        data = data > 0
    axis = tuple(dims) or None
    want = NUMPY_REDUCERS[op](data, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(jt.reduce(jt.array(data), op, dims, keepdims).numpy(), want, rtol=1e-5)
    if op != "mean":
        np.testing.assert_allclose(getattr(jt, f"reduce_{op}")(jt.array(data), dims, keepdims).numpy(), want,
                                   rtol=1e-5)
        np.testing.assert_allclose(getattr(jt.array(data), f"reduce_{op}")(dims, keepdims).numpy(), want, rtol=1e-5)


def test_reduce_gradient_and_unknown_op(rng):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    x = jt.array(data)
    np.testing.assert_allclose(jt.grad(jt.reduce(x, "multiply", 1).sum(), x).numpy(),
                               np.prod(data, 1, keepdims=True) / data, rtol=1e-5)
    with pytest.raises(jt.MetajitValueError, match="reduce: unknown op 'median'"):
        jt.reduce(x, "median")


@pytest.mark.parametrize("op", ["max", "min"])
def test_arg_reduce_matches_numpy(rng, op):
    data = rng.standard_normal((3, 5)).astype(np.float32)
    index, value = jt.arg_reduce(jt.array(data), op, 1, False)
    np.testing.assert_array_equal(index.numpy(), getattr(np, f"arg{op}")(data, 1))
    np.testing.assert_array_equal(value.numpy(), getattr(np, op)(data, 1))
    index, _ = jt.array(data).arg_reduce(op, 0, True)
    np.testing.assert_array_equal(index.numpy(), getattr(np, f"arg{op}")(data, 0)[None])
    with pytest.raises(jt.MetajitValueError, match="op must be 'max' or 'min'"):
        jt.arg_reduce(jt.array(data), "sum", 0, False)


def test_ternary_unary_binary(rng):
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(jt.ternary(jt.array(a > 0), jt.array(a), jt.array(b)).numpy(), np.where(a > 0, a, b))
    np.testing.assert_allclose(jt.unary(jt.array(a), "exp").numpy(), np.exp(a), rtol=1e-6)
    for name, function in (("maximum", np.maximum), ("subtract", np.subtract), ("divide", np.divide),
                           ("less", np.less), ("mul", np.multiply)):
        np.testing.assert_allclose(jt.binary(jt.array(a), jt.array(b), name).numpy(), function(a, b), rtol=1e-6)
