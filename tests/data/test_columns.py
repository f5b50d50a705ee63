"""input_col / output_col on tuples, lists and dicts; the sample itself is never modified."""
import pytest

import metajit as jt
from metajit.data.columns import apply_to_columns, check_columns, read_columns


def test_reading_the_whole_sample_or_columns():
    assert read_columns((1, 2), None) == ((1, 2),)
    assert read_columns((1, 2, 3), [2, 0]) == (3, 1)
    assert read_columns({"a": 1}, "a") == (1,)
    with pytest.raises(jt.MetajitValueError, match="input_col='b' does not select"):
        read_columns({"a": 1}, "b")


@pytest.mark.parametrize("sample,input_col,output_col,expected", [
    ((1, 2), None, None, "(1, 2)!"),
    ((1, 2), 1, None, (1, "2!")),
    ([1, 2], 0, -1, [1, 2, "1!"]),
    ((1, 2), 0, -1, (1, 2, "1!")),
    ({"x": 1}, "x", "y", {"x": 1, "y": "1!"}),
    ({"x": 1}, "x", None, {"x": "1!"}),
])
def test_one_column_in_one_column_out(sample, input_col, output_col, expected):
    original = repr(sample)
    assert apply_to_columns(lambda value: f"{value}!", sample, input_col, output_col) == expected
    assert repr(sample) == original


def test_several_input_columns_replace_the_first_and_drop_the_others():
    assert apply_to_columns(lambda a, c: a + c, (1, 2, 3), [0, 2], None) == (4, 2)
    assert apply_to_columns(lambda a, b: a * b, {"a": 2, "b": 3, "c": 0}, ["a", "b"], "p") == \
        {"a": 2, "b": 3, "c": 0, "p": 6}


def test_column_mistakes_are_named():
    with pytest.raises(jt.MetajitValueError, match="output_col='y' needs an input_col"):
        check_columns("map", None, "y")
    with pytest.raises(jt.MetajitValueError, match="output_col must be one column"):
        check_columns("map", 0, [1, 2])
    with pytest.raises(jt.MetajitValueError, match="not a str; map without input_col"):
        apply_to_columns(str.upper, "ab", 0, None)
