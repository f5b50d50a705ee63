"""User mistakes raise MetajitError subclasses that name the problem and the user's line."""
import pytest

import metajit as jt
from metajit import errors


def test_shape_error_names_shapes_and_points_at_user_line():
    a, b = jt.zeros((2, 3)), jt.zeros((4,))
    with pytest.raises(jt.MetajitShapeError) as caught:
        a + b
    message = str(caught.value)
    assert "(2, 3)" in message and "(4,)" in message
    assert "test_errors.py" in message
    assert isinstance(caught.value, ValueError)


def test_dtype_errors():
    with pytest.raises(jt.MetajitDtypeError, match="complex|unsupported dtype"):
        jt.array([1.0], dtype="complex64")
    with pytest.raises(jt.MetajitDtypeError, match="integer"):
        jt.array([1.0]) << 1
    with pytest.raises(TypeError):
        jt.array([1.0]).bitwise_and(jt.array([2.0]))


def test_bad_axes_and_item():
    x = jt.zeros((2, 3))
    with pytest.raises(jt.MetajitShapeError, match="axis 2 is out of range"):
        x.sum(2)
    with pytest.raises(jt.MetajitValueError, match="exactly one element"):
        x.item()


def test_bad_index_expression_is_reported():
    x = jt.zeros((3,))
    with pytest.raises(jt.MetajitValueError, match="cannot parse"):
        x.reindex([3], ["i0 +* 1"])
    with pytest.raises(jt.MetajitValueError, match="unknown name 'j0'"):
        x.reindex([3], ["j0"])
    with pytest.raises(jt.MetajitValueError, match="i1 out of range"):
        x.reindex([3], ["i1"])
    with pytest.raises(jt.MetajitShapeError, match="one per dimension"):
        x.reindex([3], ["i0", "i0"])
    with pytest.raises(jt.MetajitValueError, match="missing extra"):
        x.reindex([3], ["@e0(i0)"])


def test_all_errors_share_one_base():
    for cls in (jt.MetajitShapeError, jt.MetajitDtypeError, jt.MetajitIndexError,
                jt.MetajitValueError, jt.MetajitDeviceError, jt.MetajitCompileError):
        assert issubclass(cls, errors.MetajitError)


def test_unknown_flag_is_rejected():
    with pytest.raises(jt.MetajitValueError, match="unknown flag"):
        jt.flags.lazy_exec = 0


def test_grad_of_non_var_is_rejected():
    with pytest.raises(jt.MetajitValueError, match="Var"):
        jt.grad(jt.array([1.0]).sum(), [1.0])
