"""Kernel value expressions: hash-consing, and kernels whose value DAG reuses values."""
import numpy as np

from metajit.ir import indexexpr
from metajit.ir import kernel as K


def test_equal_value_expressions_are_one_object_and_pickle():
    import pickle
    first = K.apply("add", [K.load(0, (indexexpr.loop(0),), "float32"), K.constant(1.0, "float32")], "float32")
    second = K.apply("add", [K.load(0, (indexexpr.loop(0),), "float32"), K.constant(1.0, "float32")], "float32")
    assert first is second
    assert K.constant(1, "int32") is not K.constant(1.0, "float32")
    assert pickle.loads(pickle.dumps(first)) is first


def test_a_chain_reusing_earlier_values_at_other_indices_builds_in_polynomial_time(rng):
    """Gaussian elimination as element-wise updates: every step reads the previous matrix
    at four index patterns, so its value DAG shares subexpressions 4^n-fold as a tree
    (comparing such kernels once walked that tree: 16 steps never finished)."""
    import metajit as jt
    n = 16
    start = rng.standard_normal((n, n)) + n * np.eye(n)
    x, expected = jt.array(start.astype(np.float32)), start
    for k in range(n - 1):
        x = x - x[:, k:k + 1] * x[k:k + 1, :] / x[k:k + 1, k:k + 1]
        expected = expected - expected[:, k:k + 1] * expected[k:k + 1, :] / expected[k, k]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-3, atol=1e-4)
