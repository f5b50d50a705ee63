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


def test_reindex_var_gathers_by_index_vars_with_overflow(rng):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    rows = np.array([[2, 0], [1, 5]], np.int32)
    cols = np.array([[3, 1], [0, -1]], np.int32)
    out = jt.array(data).reindex_var([jt.array(rows), jt.array(cols)], overflow_value=-7.0).numpy()
    np.testing.assert_array_equal(out, [[data[2, 3], data[0, 1]], [data[1, 0], -7.0]])
    with pytest.raises(jt.MetajitShapeError, match="1 index Vars given for a 2-d Var"):
        jt.array(data).reindex_var([jt.array(rows)])


def test_opt_grad_clean_and_global_compile_options():
    w = jt.array([1.0, -2.0])
    optimizer = jt.optim.SGD([w], lr=0.1)
    with pytest.raises(jt.MetajitValueError, match="call optimizer.backward"):
        w.opt_grad(optimizer)
    optimizer.backward((w * w * w).sum())
    np.testing.assert_allclose(w.opt_grad(optimizer).numpy(), [3.0, 12.0])
    with pytest.raises(jt.MetajitValueError, match="not a parameter"):
        jt.array([1.0]).opt_grad(optimizer)
    jt.clean()
    with jt.flag_scope(compile_options={"FLAGS: -DSCALE=3": 1}):
        y = jt.code((2,), "float32", [w], cpu_src="for (int k = 0; k < 2; k++) @out(k) = @in0(k) * SCALE;")
        np.testing.assert_array_equal(y.numpy(), [3.0, -6.0])


def test_sync_realises_the_given_vars_together():
    a = jt.array(np.arange(4, dtype=np.float32))
    b, c = a * 2.0, a + 1.0
    jt.sync([b, c])
    with jt.debug.record_kernels() as launched:
        np.testing.assert_array_equal(b.numpy(), [0, 2, 4, 6])
        np.testing.assert_array_equal(c.numpy(), [1, 2, 3, 4])
        jt.sync(c, device_sync=True)
    assert not launched  # both were computed by the first sync
    with pytest.raises(jt.errors.MetajitValueError, match="jt.sync takes Vars"):
        jt.sync([b, 3.0])
