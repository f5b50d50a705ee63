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
