"""Division with rounding modes, floor division and remainders, against torch (`metajit.division`)."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.errors import MetajitZeroDivisionError

INTEGERS = np.array([7, -7, 22, -22, 0, 1, -1, 2 ** 20 + 3, -(2 ** 20) - 3], dtype=np.int64)
INTEGER_DIVISORS = np.array([5, 5, -5, -5, 3, -3, 2, 7, -7], dtype=np.int64)
FLOATS = np.array([7.5, -7.5, 1.0, -1.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, 5.5, -5.5], dtype=np.float32)
FLOAT_DIVISORS = np.array([2.0, 2.0, 0.1, 0.1, 0.0, 3.0, 2.0, np.inf, 1.0, -1e-30, -2.0, 0.0], dtype=np.float32)
MODES = [None, "trunc", "floor"]


def _assert_same(result, expected):
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_array_equal(result.numpy(), expected.numpy())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spelling", ["jt.div", "Var.div", "jt.divide", "Var.divide"])
def test_integer_division_with_a_rounding_mode(mode, spelling):
    expected = torch.div(torch.tensor(INTEGERS), torch.tensor(INTEGER_DIVISORS), rounding_mode=mode)
    a, b = jt.array(INTEGERS), jt.array(INTEGER_DIVISORS)
    module, name = spelling.split(".")
    result = getattr(jt, name)(a, b, rounding_mode=mode) if module == "jt" else getattr(a, name)(b, rounding_mode=mode)
    if mode is None:  # true division: the default float (int64 data as float32, as torch)
        np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-6)
        assert result.dtype == jt.float32
    else:
        _assert_same(result, expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("divisor", [5, -5, 2.5, -0.5])
def test_division_by_a_python_scalar(mode, divisor):
    expected = torch.div(torch.tensor(INTEGERS), divisor, rounding_mode=mode)
    result = jt.array(INTEGERS).div(divisor, rounding_mode=mode)
    np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-6)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")


@pytest.mark.parametrize("mode", MODES)
def test_float_division_at_the_extremes(mode):
    """Zero divisors give inf or nan, infinities and nan pass through, tiny divisors overflow."""
    expected = torch.div(torch.tensor(FLOATS), torch.tensor(FLOAT_DIVISORS), rounding_mode=mode)
    result = jt.div(jt.array(FLOATS), jt.array(FLOAT_DIVISORS), rounding_mode=mode)
    assert result.dtype == jt.float32
    np.testing.assert_array_equal(result.numpy(), expected.numpy())


def test_floor_division_and_remainder_operators():
    a, b = torch.tensor(INTEGERS), torch.tensor(INTEGER_DIVISORS)
    x, y = jt.array(INTEGERS), jt.array(INTEGER_DIVISORS)
    _assert_same(x // y, a // b)
    _assert_same(jt.floor_divide(x, y), torch.floor_divide(a, b))
    _assert_same(x % y, a % b)
    _assert_same(jt.remainder(x, y), torch.remainder(a, b))
    _assert_same(jt.fmod(x, y), torch.fmod(a, b))
    _assert_same(100 // y, 100 // b)
    floats = torch.tensor(FLOATS)
    np.testing.assert_array_equal((jt.array(FLOATS) // jt.array(FLOAT_DIVISORS)).numpy(),
                                  (floats // torch.tensor(FLOAT_DIVISORS)).numpy())


def test_true_divide_gives_floats():
    expected = torch.true_divide(torch.tensor(INTEGERS), torch.tensor(INTEGER_DIVISORS))
    np.testing.assert_allclose(jt.true_divide(jt.array(INTEGERS), jt.array(INTEGER_DIVISORS)).numpy(),
                               expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(jt.array(INTEGERS).true_divide(3).numpy(), torch.tensor(INTEGERS).true_divide(3),
                               rtol=1e-6)


@pytest.mark.parametrize("mode", ["trunc", "floor"])
def test_in_place_division_keeps_the_dtype(mode):
    x, t = jt.array(INTEGERS), torch.tensor(INTEGERS)
    assert x.div_(3, rounding_mode=mode) is x
    t.div_(3, rounding_mode=mode)
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    with pytest.raises(TypeError):  # a float quotient does not fit an integer Var, as torch refuses
        jt.array(INTEGERS).div_(3)
    with pytest.raises(RuntimeError):
        torch.tensor(INTEGERS).div_(3)
    y = jt.array(INTEGERS)
    y //= 4
    np.testing.assert_array_equal(y.numpy(), torch.tensor(INTEGERS) // 4)


INTEGER_ZERO_DIVISIONS = {
    "// 0": lambda a, zeros: a // 0,
    "% 0": lambda a, zeros: a % 0,
    "// zeros": lambda a, zeros: a // zeros,
    "floor_divide": lambda a, zeros: a.floor_divide(zeros),
    "div trunc": lambda a, zeros: a.div(zeros, rounding_mode="trunc"),
    "div floor": lambda a, zeros: a.div(zeros, rounding_mode="floor"),
    "remainder": lambda a, zeros: a.remainder(zeros),
    "fmod": lambda a, zeros: a.fmod(zeros),
}


@pytest.mark.parametrize("case", sorted(INTEGER_ZERO_DIVISIONS))
def test_integer_division_by_zero_raises(case):
    divide = INTEGER_ZERO_DIVISIONS[case]
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        divide(torch.tensor([7, -7]), torch.tensor([1, 0])).tolist()
    with pytest.raises(MetajitZeroDivisionError, match="division by zero"):  # a divisor on the host: at once
        divide(jt.array([7, -7]), jt.array([1, 0]))


def test_integer_division_by_a_computed_zero_raises_when_realised():
    divisors = jt.array([2, 1, 3]) - 1  # computed: its zero is known when the quotient is computed
    quotient = jt.array([7, -7, 5]) // divisors
    for _ in range(2):  # a retry raises again
        with pytest.raises(MetajitZeroDivisionError):
            quotient.numpy()
    np.testing.assert_array_equal((jt.array([7, -7, 5]) // (divisors + 1)).numpy(), [3, -7, 1])


def test_integer_true_division_by_zero_is_infinite():
    expected = torch.div(torch.tensor([7, -7, 0]), 0)
    np.testing.assert_array_equal(jt.div(jt.array([7, -7, 0]), 0).numpy(), expected.numpy())


def test_an_unknown_rounding_mode_is_refused():
    with pytest.raises(ValueError, match="rounding_mode"):
        jt.div(jt.array([1]), 2, rounding_mode="round")
