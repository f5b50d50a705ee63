"""The README's demo: fit a two-layer network to a noisy sine curve with metajit.

Everything below is lazy meta-ops: the forward pass, ``jt.grad`` for the
backward pass, and the SGD update fuse into a handful of kernels per step.

Run: ``python -m metajit.examples.tiny_regression``
"""
import time

import numpy as np

import metajit as jt


def make_data(count=256, seed=0):
    """Noisy samples of ``sin(3x)`` on [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (count, 1)).astype(np.float32)
    y = np.sin(3 * x) + 0.05 * rng.standard_normal((count, 1)).astype(np.float32)
    return jt.array(x), jt.array(y)


def init_parameters(hidden=32, seed=0):
    """A 1-hidden-layer MLP: tanh hidden units, linear output."""
    jt.seed(seed)
    return [jt.randn(1, hidden) * 1.0, jt.zeros(hidden),
            jt.randn(hidden, 1) * (1.0 / hidden ** 0.5), jt.zeros(1)]


def predict(parameters, x):
    """Forward pass."""
    w1, b1, w2, b2 = parameters
    return (x @ w1 + b1).tanh() @ w2 + b2


def main(steps=300, learning_rate=0.1):
    """Train and print the loss curve, a few predictions and what ran."""
    x, y = make_data()
    parameters = init_parameters()
    start = time.perf_counter()
    with jt.debug.record_kernels() as launched:
        for step in range(steps + 1):
            loss = ((predict(parameters, x) - y) ** 2).mean()
            grads = jt.grad(loss, parameters)
            for parameter, grad in zip(parameters, grads):
                parameter.assign(parameter - learning_rate * grad)
            jt.sync_all()
            if step % 50 == 0:
                print(f"step {step:4d}  mse {loss.item():.5f}")
    elapsed = time.perf_counter() - start
    probe = jt.array([[-0.5], [0.0], [0.5]])
    print("x        :", probe.numpy().ravel())
    print("predicted:", np.round(predict(parameters, probe).numpy().ravel(), 3))
    print("sin(3x)  :", np.round(np.sin(3 * probe.numpy().ravel()), 3))
    print(f"device {jt.get_device()}: {steps} steps in {elapsed:.2f}s, "
          f"{len(launched) / (steps + 1):.1f} kernels per step")
    return loss.item()


if __name__ == "__main__":
    main()
