"""Index expressions: parsing, printing, evaluation, bounds and simplification."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from metajit.ir import indexexpr as I
from metajit.errors import MetajitValueError


@pytest.mark.parametrize("text,expected", [
    ("i0*2+i1", lambda i0, i1: i0 * 2 + i1), ("(i0 - 3) / 2", lambda i0, i1: (i0 - 3) // 2),
    ("i0 % 3", lambda i0, i1: i0 % 3), ("i0 < i1 && i1 != 2", lambda i0, i1: (i0 < i1) & (i1 != 2)),
    ("!(i0 >= 1) || i1 == 0", lambda i0, i1: (i0 < 1) | (i1 == 0)),
    ("max(i0, i1) - min(i0, 1)", lambda i0, i1: np.maximum(i0, i1) - np.minimum(i0, 1)),
    ("-i0 + xshape0", lambda i0, i1: -i0 + 7),
])
def test_parse_and_evaluate(text, expected):
    expr = I.parse(text, ndim=2, names={"xshape0": 7})
    i0, i1 = np.arange(-4, 5).reshape(-1, 1), np.arange(0, 4).reshape(1, -1)
    np.testing.assert_array_equal(I.evaluate(expr, [i0, i1]), expected(i0, i1).astype(np.int64))
    reparsed = I.parse(str(expr), ndim=2)
    np.testing.assert_array_equal(I.evaluate(reparsed, [i0, i1]), I.evaluate(expr, [i0, i1]))


def test_division_by_zero_gives_zero():
    assert I.evaluate(I.parse("i0 / (i0 - i0)", 1), [np.array([3])]).tolist() == [0]


def test_extra_loads():
    expr = I.parse("@e0(i0, 1) + 1", ndim=1, num_extras=1)
    table = np.array([[5, 6], [7, 8]])
    result = I.evaluate(expr, [np.array([0, 1])], lambda slot, index: table[tuple(index)])
    assert result.tolist() == [7, 9]
    assert str(expr) == "@e0(i0,1)+1"


def test_constant_folding_and_identities():
    i0 = I.loop(0)
    assert (i0 + 0) == i0 and (i0 * 1) == i0 and (i0 * 0) == I.const(0)
    assert I.parse("2*3+1", 0) == I.const(7)
    assert hash(I.parse("i0+1", 1)) == hash(I.loop(0) + 1)


def test_bounds():
    domain = (4, 5)
    assert I.bounds(I.parse("i0*5+i1", 2), domain) == (0, 19)
    assert I.bounds(I.parse("i0-1", 2), domain) == (-1, 2)
    assert I.bounds(I.parse("i1 % 3", 2), domain) == (0, 2)
    assert I.bounds(I.parse("i1 / 2", 2), domain) == (0, 2)


def test_simplify_division_and_modulo():
    domain = (3, 4)
    flat = I.parse("i0*4+i1", 2)
    assert I.simplify(flat // 4, domain) == I.loop(0)
    assert I.simplify(flat % 4, domain) == I.loop(1)
    assert I.simplify(I.parse("(i0*8+i1*2)/2", 2), domain) == I.parse("i0*4+i1", 2)
    assert I.simplify(I.loop(0), (1,)) == I.const(0)


@pytest.mark.parametrize("text,expected", [
    ("i0/2*2+i0%2", "i0"), ("(i0/3*3+i0%3)*5+i1", "i0*5+i1"), ("i0/3*6+i0%3*2", "i0*2"),
    ("i1+i0%4+i0/4*4", "i1+i0"), ("i0/3*6+i0%3", None), ("i0/2*2+i1%2", None)])
def test_simplify_merges_quotient_and_remainder(text, expected):
    domain = (40, 6)
    expr = I.parse(text, 2)
    simplified = I.simplify(expr, domain)
    if expected is not None:
        assert I.linear_form(simplified) == I.linear_form(I.parse(expected, 2))
    i0, i1 = np.arange(-12, 40).reshape(-1, 1), np.arange(6).reshape(1, -1)  # negatives too
    np.testing.assert_array_equal(I.evaluate(simplified, [i0, i1]), I.evaluate(expr, [i0, i1]))


@pytest.mark.parametrize("text", ["i0 +", "i0 ** 2", "foo(i0)", "i0.x", "'a'", "i0 if i0 else 1"])
def test_bad_syntax_raises(text):
    with pytest.raises(MetajitValueError):
        I.parse(text, ndim=1)


@pytest.mark.parametrize("text,expected", [
    ("((i2 + i1*28) + (i0+58)*784) / 1568", "(i0+58)/2"),  # ShuffleNet's channel shuffle
    ("((i2 + i1*28) + (i0+58)*784) % 1568", "i0%2*784+i2+i1*28"),
    ("(i0*6 + i1*3 + i2) / 12", None), ("(i0*8 + i2 - 3) / 16", None)])
def test_simplify_division_by_a_multiple_of_a_block(text, expected):
    domain = (60, 28, 28)
    expr = I.parse(text, 3)
    simplified = I.simplify(expr, domain)
    if expected is not None:
        assert str(simplified).replace("(", "").replace(")", "") == \
            str(I.simplify(I.parse(expected, 3), domain)).replace("(", "").replace(")", "")
    grids = np.meshgrid(*[np.arange(n) for n in domain], indexing="ij")
    np.testing.assert_array_equal(I.evaluate(simplified, grids), I.evaluate(expr, grids))


@st.composite
def blocked_divisions(draw):
    """``(coefficients, constant, divisor)``: some loop coefficients multiples of a block
    that divides the divisor, the others and the constant small (the shapes the block rule
    looks for, near its bounds)."""
    block, count = draw(st.integers(2, 8)), draw(st.integers(1, 4))
    coefficients = [draw(st.integers(-3, 3)) * (block if draw(st.booleans()) else 1) for _ in range(3)]
    return coefficients, draw(st.integers(-3 * block, 3 * block)), block * count


@settings(max_examples=400, deadline=None)
@given(st.one_of(blocked_divisions(), st.tuples(st.lists(st.integers(-40, 40), min_size=3, max_size=3),
                                                 st.integers(-100, 100), st.integers(1, 64))),
       st.sampled_from(["floordiv", "mod"]))
def test_simplified_division_and_modulo_keep_their_values(case, op):
    coefficients, constant, divisor = case
    domain = (5, 4, 6)
    value = I.const(constant)
    for axis, coefficient in enumerate(coefficients):
        value = value + I.loop(axis) * coefficient
    expr = I.binary(op, value, I.const(divisor))
    grids = np.meshgrid(*[np.arange(n) for n in domain], indexing="ij")
    np.testing.assert_array_equal(I.evaluate(I.simplify(expr, domain), grids), I.evaluate(expr, grids))
