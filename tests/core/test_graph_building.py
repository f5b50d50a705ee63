"""The front end's shortcuts for hot ops (memoised constants and axes, direct matmul and
permute nodes, two-shape broadcasting) build what the general rules build."""
import math

import numpy as np
import pytest

import metajit as jt
from metajit.ir import graph
from metajit.errors import MetajitShapeError
from metajit.math_ops import broadcast_shapes


def test_memoised_constants_keep_signed_zeros_nan_and_types():
    x = jt.array(np.ones(3, np.float32))
    for _ in range(2):  # the second round reads the memo
        assert math.copysign(1.0, (x * 0.0).numpy()[0]) == 1.0
        assert math.copysign(1.0, (x * -0.0).numpy()[0]) == -1.0
        assert np.isnan((x * float("nan")).numpy()).all()
        assert (x + True).numpy().tolist() == [2.0] * 3
        assert (jt.array(np.ones(3, np.int32)) * 1.5).numpy().tolist() == [1.5] * 3
        np.testing.assert_array_equal((x * 0.1).numpy(), np.ones(3, np.float32) * np.float32(0.1))


def test_memoised_axes_still_reject_bad_axes_and_accept_lists():
    x = jt.array(np.arange(24.0).reshape(2, 3, 4))
    for _ in range(2):
        np.testing.assert_array_equal(x.sum([0, -1]).numpy(), np.arange(24.0).reshape(2, 3, 4).sum((0, 2)))
        np.testing.assert_array_equal(x.max(-1, keepdims=True).numpy(),
                                      np.arange(24.0).reshape(2, 3, 4).max(-1, keepdims=True))
        with pytest.raises(MetajitShapeError, match="out of range"):
            x.sum(3)
    assert graph.normalise_axes((2, 0, -1), 3) == (0, 2)


@pytest.mark.parametrize("first,second", [((3, 4), (4,)), ((4,), (2, 1, 4)), ((), (3,)), ((2, 1), (1, 3)),
                                          ((5, 1, 6), (1, 7, 1)), ((0, 3), (1, 3))])
def test_two_shape_broadcast_matches_numpy(first, second):
    assert broadcast_shapes(first, second) == np.broadcast_shapes(first, second)


def test_two_shape_broadcast_errors_name_the_dimension():
    with pytest.raises(MetajitShapeError, match=r"dimension -1 has sizes \[4, 5\]"):
        broadcast_shapes((3, 4), (5,))


def test_direct_matmul_nodes_follow_no_grad_and_batch_broadcasting(rng):
    a = jt.array(rng.standard_normal((2, 1, 3, 4)))
    b = jt.array(rng.standard_normal((5, 4, 6)))
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    with jt.no_grad():
        product = a @ b
    stack, seen = [product._node], set()
    while stack:
        node = stack.pop()
        if id(node) not in seen and node.inputs:
            seen.add(id(node))
            assert not node.requires_grad, node
            stack.extend(node.inputs)
    assert (a @ b)._node.requires_grad


def test_permute_shortcut_matches_numpy_and_identity_is_free(rng):
    data = rng.standard_normal((1, 3, 1, 4))
    x = jt.array(data)
    np.testing.assert_array_equal(x.permute(3, 1, 0, 2).numpy(), data.transpose(3, 1, 0, 2))
    np.testing.assert_array_equal(x.permute(3, 1, 0, 2).numpy(), data.transpose(3, 1, 0, 2))
    assert x.permute(0, 1, 2, 3)._node is x._node
    grad = jt.grad((x.permute(2, 3, 0, 1) * jt.array(rng.standard_normal((1, 4, 1, 3)))).sum(), x)
    assert grad.shape == (1, 3, 1, 4)
