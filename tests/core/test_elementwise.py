"""Element-wise ops against numpy: every unary/binary op, dtypes, broadcasting, scalars, 0-size."""
import math

import numpy as np
import pytest

import metajit as jt

UNARY_FLOAT = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": np.vectorize(math.erf), "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "abs": np.abs, "neg": np.negative,
}
DOMAIN = {"log": (0.1, 3), "sqrt": (0.1, 3), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9),
          "acosh": (1.1, 3), "atanh": (-0.9, 0.9)}


@pytest.mark.parametrize("name", sorted(UNARY_FLOAT))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_float_matches_numpy(name, dtype, rng):
    low, high = DOMAIN.get(name, (-2.5, 2.5))
    data = rng.uniform(low, high, size=(3, 4)).astype(dtype)
    result = getattr(jt, name)(jt.array(data))
    assert result.dtype == dtype
    np.testing.assert_allclose(result.numpy(), UNARY_FLOAT[name](data).astype(dtype),
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


def test_unary_float_op_on_int_gives_float32():
    result = jt.exp(jt.array([0, 1, 2]))
    assert result.dtype == "float32"
    np.testing.assert_allclose(result.numpy(), np.exp([0, 1, 2]), rtol=1e-6)


def test_float16_compute():
    data = np.array([0.5, 1.5, -2.0], dtype=np.float16)
    result = jt.array(data) * 2 + 1
    assert result.dtype == "float16"
    np.testing.assert_array_equal(result.numpy(), data * 2 + 1)


BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "truediv": (lambda a, b: a / b, np.true_divide),
    "floordiv": (lambda a, b: a // b, np.floor_divide), "mod": (lambda a, b: a % b, np.mod),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (jt.maximum, np.maximum), "minimum": (jt.minimum, np.minimum),
    "eq": (lambda a, b: a == b, np.equal), "ne": (lambda a, b: a != b, np.not_equal),
    "lt": (lambda a, b: a < b, np.less), "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater), "ge": (lambda a, b: a >= b, np.greater_equal),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_binary_matches_numpy_with_broadcasting(name, dtype, rng):
    ours, theirs = BINARY[name]
    if dtype.startswith("int"):
        a = rng.integers(-9, 10, size=(3, 1, 4)).astype(dtype)
        b = rng.integers(1, 5, size=(2, 1)).astype(dtype)
    else:
        a = rng.uniform(0.5, 3, size=(3, 1, 4)).astype(dtype)
        b = rng.uniform(0.5, 3, size=(2, 1)).astype(dtype)
    result = ours(jt.array(a), jt.array(b))
    expected = theirs(a, b)
    if name == "truediv" and dtype.startswith("int"):
        expected = expected.astype("float32")
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)


def test_integer_division_and_modulo_follow_floor_semantics():
    a = jt.array([7, -7, 7, -7])
    b = jt.array([2, 2, -2, -2])
    np.testing.assert_array_equal((a // b).numpy(), [3, -4, -4, 3])
    np.testing.assert_array_equal((a % b).numpy(), [1, 1, -1, -1])
    # the meta-ops give 0 for an integer divided by 0; `//` and `%` raise (tests/core/test_division.py)
    np.testing.assert_array_equal(jt.binary(jt.array([5]), jt.array([0]), "floor_divide").numpy(), [0])


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_integer_division_by_all_ones_bit_pattern(dtype):
    # (T)-1 is -1 only for signed types: for uint8 it is 255, an ordinary divisor
    info = np.iinfo(dtype)
    a = np.array([1, info.max - 1, info.max, 0, info.min], dtype)
    b = np.array([-1 if info.min < 0 else info.max] * 5, dtype)
    with np.errstate(over="ignore", divide="ignore"):
        np.testing.assert_array_equal((jt.array(a) // jt.array(b)).numpy(), a // b)
        np.testing.assert_array_equal((jt.array(a) % jt.array(b)).numpy(), a % b)


def test_float_modulo_sign_follows_divisor():
    a = np.array([5.5, -5.5, 5.5], dtype=np.float32)
    b = np.array([2.0, 2.0, -2.0], dtype=np.float32)
    np.testing.assert_allclose((jt.array(a) % jt.array(b)).numpy(), np.mod(a, b))


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
def test_bitwise_on_ints(op, rng):
    a, b = rng.integers(0, 256, (5,)).astype(np.int32), rng.integers(0, 256, (5,)).astype(np.int32)
    np.testing.assert_array_equal(getattr(jt, op)(jt.array(a), jt.array(b)).numpy(),
                                  getattr(np, op)(a, b))


def test_shifts_invert_and_logical_ops():
    a = jt.array([1, 2, 3], dtype="int32")
    np.testing.assert_array_equal((a << 2).numpy(), [4, 8, 12])
    np.testing.assert_array_equal((a >> 1).numpy(), [0, 1, 1])
    np.testing.assert_array_equal((~a).numpy(), ~np.array([1, 2, 3], np.int32))
    t, f = jt.array([True, True, False]), jt.array([True, False, False])
    np.testing.assert_array_equal((t & f).numpy(), [True, False, False])
    np.testing.assert_array_equal((t | f).numpy(), [True, True, False])
    np.testing.assert_array_equal((t ^ f).numpy(), [False, True, False])
    np.testing.assert_array_equal((~t).numpy(), [False, False, True])
    np.testing.assert_array_equal(jt.logical_not(jt.array([0.0, 2.0])).numpy(), [True, False])


def test_python_scalars_are_weakly_typed():
    x8 = jt.array(np.array([1, 2], dtype=np.int8))
    assert (x8 + 1).dtype == "int8"
    h = jt.array(np.array([1, 2], dtype=np.float16))
    assert (h * 0.5).dtype == "float16"
    assert (jt.array([1, 2]) * 0.5).dtype == "float32"
    assert (jt.array([1.0]) + jt.array(np.array([1.0]))).dtype == "float64"
    assert (1 - jt.array([1.0, 2.0])).numpy().tolist() == [0.0, -1.0]
    assert (2 ** jt.array([1.0, 3.0])).numpy().tolist() == [2.0, 8.0]


def test_nan_propagates_through_maximum_and_minimum():
    a = jt.array([np.nan, 1.0, -0.0])
    b = jt.array([0.0, np.nan, 0.0])
    np.testing.assert_array_equal(jt.maximum(a, b).numpy(), np.maximum([np.nan, 1, -0.0], [0, np.nan, 0]))
    np.testing.assert_array_equal(jt.minimum(a, b).numpy(), np.minimum([np.nan, 1, -0.0], [0, np.nan, 0]))


def test_where_clamp_sign():
    x = jt.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(jt.where(x > 0, x, 0.0).numpy(), [0, 0, 0, 0.5, 2])
    np.testing.assert_array_equal(x.clamp(-1, 1).numpy(), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(jt.clamp(x, min=0.0).numpy(), [0, 0, 0, 0.5, 2])
    np.testing.assert_array_equal(x.sign().numpy(), [-1, -1, 0, 1, 1])


def test_casts():
    x = jt.array([1.7, -1.7, 0.0])
    np.testing.assert_array_equal(x.int32().numpy(), [1, -1, 0])
    np.testing.assert_array_equal(x.bool().numpy(), [True, True, False])
    assert x.astype("float64").dtype == jt.float64
    assert x.cast(jt.int8).dtype == "int8"


def test_scalar_and_zero_size_shapes():
    s = jt.array(3.0)
    assert s.shape == () and s.ndim == 0
    assert (s * 2).item() == 6.0
    empty = jt.zeros((0, 3))
    assert (empty + 1).shape == (0, 3)
    assert (empty + jt.ones(3)).numpy().shape == (0, 3)


def test_matmul_shapes(rng):
    cases = [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
             ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))]
    for a_shape, b_shape in cases:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        result = jt.array(a) @ jt.array(b)
        np.testing.assert_allclose(result.numpy(), a @ b, rtol=1e-10)


def test_in_place_operators_update_the_var():
    x = jt.array([1.0, 2.0])
    alias = x
    x += 1
    x *= 3
    assert alias is x
    np.testing.assert_array_equal(x.numpy(), [6.0, 9.0])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("other", ["same-shape", "row", "0-d", "int", "float", "bool"])
def test_float_operands_keep_dtype_and_gradient_flags(dtype, other):
    """The common float cases (same-dtype Vars, Python numbers, either side) against numpy:
    values, dtype, requires_grad, the gradient reaching a broadcast operand, no_grad."""
    data = np.arange(1, 7, dtype=dtype).reshape(2, 3)
    operand = {"same-shape": np.full((2, 3), 2, dtype), "row": np.array([1, 2, 3], dtype),
               "0-d": np.array(3, dtype), "int": 3, "float": 0.5, "bool": True}[other]
    x = jt.array(data)
    y = jt.array(operand) if isinstance(operand, np.ndarray) else operand
    cases = [(x + y, data + operand), (y * x, data * operand), (y - x, operand - data),
             (x > y, data > operand), (y <= x, operand <= data)]
    for result, expected in cases:
        is_comparison = expected.dtype == np.bool_
        assert result.dtype == ("bool" if is_comparison else dtype)
        assert result.requires_grad == (not is_comparison)
        np.testing.assert_allclose(result.numpy().astype(np.float64), expected.astype(np.float64),
                                   rtol=1e-3 if dtype == "float16" else 1e-6)
    if isinstance(y, jt.Var):
        gradient = jt.grad((x * y).sum(), y)
        summed_axes = tuple(range(data.ndim - np.ndim(operand))) + tuple(
            data.ndim - np.ndim(operand) + a for a, s in enumerate(np.shape(operand)) if s == 1)
        np.testing.assert_allclose(gradient.numpy(), data.sum(axis=summed_axes).reshape(np.shape(operand)),
                                   rtol=1e-3)
    with jt.no_grad():
        assert not (x * y).requires_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_and_expm1_are_accurate_at_extreme_inputs(dtype):
    """Their own element-wise ops, so tiny arguments keep full precision (log(1 + 1e-10)
    is 0 in float32); oracle numpy, gradients torch."""
    import torch
    values = np.array([1e-10, -1e-10, 1e-30, 0.0, -0.0, 0.5, -0.999999, 88.0, -88.0, 700.0, -1.0, -2.0,
                       np.inf, -np.inf, np.nan], dtype)
    x = jt.array(values)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(x.log1p().numpy(), np.log1p(values), rtol=2e-7 if dtype == np.float32 else 1e-15)
        np.testing.assert_allclose(x.expm1().numpy(), np.expm1(values), rtol=2e-7 if dtype == np.float32 else 1e-15)
    assert jt.log1p(jt.array([1e-10], dtype)).item() == pytest.approx(1e-10, rel=1e-6)
    finite = values[np.isfinite(values) & (values > -0.9) & (values < 50)]
    v = jt.array(finite)
    gl, ge = jt.grad(v.log1p().sum(), v), jt.grad(v.expm1().sum(), v)
    t = torch.tensor(finite, requires_grad=True)
    tl, = torch.autograd.grad(torch.log1p(t).sum(), t)
    te, = torch.autograd.grad(torch.expm1(t).sum(), t)
    np.testing.assert_allclose(gl.numpy(), tl.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ge.numpy(), te.numpy(), rtol=1e-6)
