"""Applying a function to some columns of a sample (a tuple, list or dict), as the
``input_col``/``output_col`` arguments of ``map`` and ``filter`` do::

    apply_to_columns(str.upper, ("a", "b"), input_col=1, output_col=None)  # ('a', 'B')
    apply_to_columns(len, {"text": "abc"}, input_col="text", output_col="length")
    # {'text': 'abc', 'length': 3}
"""
import copy
import reprlib

from ..errors import MetajitValueError


def _column_list(input_col):
    return list(input_col) if isinstance(input_col, (list, tuple)) else [input_col]


def check_columns(what, input_col, output_col):
    """Reject an ``output_col`` without an ``input_col`` and a list of output columns."""
    if output_col is not None and input_col is None:
        raise MetajitValueError(f"{what}: output_col={output_col!r} needs an input_col to read from")
    if isinstance(output_col, (list, tuple)):
        raise MetajitValueError(f"{what}: output_col must be one column, got {output_col!r}")


def read_columns(sample, input_col):
    """The arguments a function gets: ``(sample,)`` without ``input_col``, else the
    sample's entries at the column (or list of columns)."""
    if input_col is None:
        return (sample,)
    try:
        return tuple(sample[column] for column in _column_list(input_col))
    except (KeyError, IndexError, TypeError):
        raise MetajitValueError(f"input_col={input_col!r} does not select from the sample "
                                f"{reprlib.repr(sample)}") from None


def apply_to_columns(function, sample, input_col, output_col):
    """``function`` applied to ``sample`` or to its ``input_col`` entries. The result replaces
    the sample; with ``input_col`` it replaces the (first) input column, the other input
    columns being removed, or it goes to ``output_col`` (``-1`` appends to a tuple or list).
    The sample itself is not modified."""
    result = function(*read_columns(sample, input_col))
    if input_col is None:
        return result
    columns = _column_list(input_col)
    if isinstance(sample, (tuple, list)):
        updated = list(sample)
    elif isinstance(sample, dict):
        updated = copy.copy(sample)
    else:
        raise MetajitValueError(f"input_col={input_col!r}: the result goes back into a tuple, list or dict "
                                f"sample, not a {type(sample).__name__}; map without input_col instead")
    if output_col is None:
        updated[columns[0]] = result
        for column in sorted(columns[1:], reverse=True):
            del updated[column]
    elif output_col == -1 and isinstance(updated, list):
        updated.append(result)
    else:
        updated[output_col] = result
    return tuple(updated) if isinstance(sample, tuple) else updated
