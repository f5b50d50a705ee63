"""Rematerialisation (`passes.remat`): which element-wise values a weight gradient
recomputes instead of keeping, and gradients through the copies against torch."""
import numpy as np
import pytest

import metajit as jt
from metajit.passes import remat


def reachable(nodes):
    """Every node the ``nodes`` are computed from, themselves included."""
    seen, stack = {}, list(nodes)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node.inputs)
    return seen.values()


def per_channel(channels, rng):
    return jt.array(rng.standard_normal((1, channels, 1, 1)).astype(np.float32))


def test_a_relu_of_a_scaled_value_is_copied_from_that_value(rng):
    x = jt.array(rng.standard_normal((2, 8, 6, 6)).astype(np.float32)) * 2.0  # pending, full size
    value = jt.nn.relu(x * per_channel(8, rng) + per_channel(8, rng))
    copy = remat.recomputed(value._node)
    assert copy is not None and copy is not value._node
    assert copy.op == value._node.op and copy.shape == value._node.shape
    np.testing.assert_array_equal(jt.Var.from_node(copy).numpy(), value.numpy())


def test_a_normalised_concatenation_is_copied_from_the_concatenation(rng):
    """BatchNorm's statistics read the concatenation, which the backward pass keeps: the copy
    reads it as it is instead of gathering its pieces again (too long a chain)."""
    pieces = [jt.array(rng.standard_normal((2, 4, 6, 6)).astype(np.float32)) * 2.0 for _ in range(6)]
    joined = jt.concat(pieces, dim=1)
    mean = joined.mean(dims=(0, 2, 3), keepdims=True)
    variance = ((joined - mean) ** 2).mean(dims=(0, 2, 3), keepdims=True)
    value = jt.nn.relu((joined - mean) / (variance + 1e-5).sqrt())
    copy = remat.recomputed(value._node)
    assert copy is not None
    assert joined._node in [node for node in reachable([copy]) if node is not copy]
    np.testing.assert_allclose(jt.Var.from_node(copy).numpy(), value.numpy(), rtol=1e-6)


def test_values_that_would_keep_more_alive_are_not_copied(rng):
    a = jt.array(rng.standard_normal((2, 8, 6, 6)).astype(np.float32)) * 2.0
    b = jt.array(rng.standard_normal((2, 8, 6, 6)).astype(np.float32)) * 3.0
    scale = per_channel(8, rng)
    assert remat.recomputed((a * scale + scale)._node) is None    # linear: its gradient needs no input
    assert remat.recomputed(jt.nn.relu(a + b)._node) is None       # two full-size values to keep
    assert remat.recomputed(jt.nn.relu(a).sync()._node) is None    # computed already
    long_chain = a
    for _ in range(remat.MAX_OPS):
        long_chain = (long_chain * scale).exp()
    assert remat.recomputed(long_chain._node) is None


def test_training_gradients_through_recomputed_inputs_match_torch(rng):
    """conv -> BatchNorm -> ReLU -> conv, the pattern whose second convolution's weight
    gradient reads a recomputed input; every parameter's gradient against torch."""
    torch = pytest.importorskip("torch")
    x_data = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    model = jt.nn.Sequential(jt.nn.Conv2d(3, 8, 3, padding=1), jt.nn.BatchNorm2d(8), jt.nn.ReLU(),
                             jt.nn.Conv2d(8, 5, 3, padding=1))
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                    torch.nn.ReLU(), torch.nn.Conv2d(8, 5, 3, padding=1))
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    model.train(), reference.train()
    loss = (model(jt.array(x_data)) ** 2).mean()
    parameters = dict(model.named_parameters())
    grads = jt.grad(loss, list(parameters.values()))
    weight_gradient_inputs, forward_inputs = set(), set()
    for node in reachable([g._node for g in grads]):
        if node.op == "library" and node.attrs[0] == "conv2d_backward_weights":
            weight_gradient_inputs.add(id(node.inputs[0]))
        elif node.op == "library" and node.attrs[0] in ("conv2d", "conv2d_bias"):
            forward_inputs.add(id(node.inputs[0]))
    if weight_gradient_inputs:  # (devices that run convolutions as libraries)
        assert len(weight_gradient_inputs - forward_inputs) == 1  # the second convolution's is a copy
    (reference(torch.from_numpy(x_data)) ** 2).mean().backward()
    expected = dict(reference.named_parameters())
    for (name, _), grad in zip(parameters.items(), grads):
        np.testing.assert_allclose(grad.numpy(), expected[name].grad.numpy(), rtol=2e-4, atol=2e-5, err_msg=name)
