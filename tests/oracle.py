"""Independent oracles shared by the tests."""
import numpy as np


def numeric_grad(function, x, eps=1e-6):
    """Central finite differences of scalar ``function`` (numpy float64 in) at ``x``."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + eps
        high = function(x)
        flat[k] = saved - eps
        low = function(x)
        flat[k] = saved
        grad_flat[k] = (high - low) / (2 * eps)
    return grad


def as_array(value):
    """A numpy array of a Var, a torch tensor (its value, detached) or anything array-like."""
    import metajit as jt
    if isinstance(value, jt.Var):
        return value.numpy()
    if hasattr(value, "detach"):
        return value.detach().numpy()
    return np.asarray(value)


def assert_close_to(got, want, tolerance):
    """``got`` has ``want``'s shape and values, within ``tolerance`` both absolutely and
    relatively (Vars, torch tensors or arrays)."""
    got, want = as_array(got), as_array(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
