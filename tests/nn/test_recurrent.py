"""RNN, LSTM, GRU and their cells against torch.nn with the same (loaded) weights:
outputs, final states, gradients; PyTorch parameter names; shapes and errors."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn

torch = pytest.importorskip("torch")


def paired(kind, *args, **kwargs):
    reference = getattr(torch.nn, kind)(*args, **kwargs)
    ours = getattr(nn, kind)(*args, **kwargs)
    assert [name for name, _ in ours.named_parameters()] == list(reference.state_dict())
    ours.load_state_dict({name: value.detach().numpy() for name, value in reference.state_dict().items()})
    return ours, reference


def flat(states):
    return list(states) if isinstance(states, tuple) else [states]


@pytest.mark.parametrize("kind,options", [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2}), ("GRU", {"batch_first": True}),
    ("GRU", {"bidirectional": True, "num_layers": 2}), ("LSTM", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"proj_size": 2, "batch_first": True}), ("LSTM", {"bias": False})])
def test_layers_match_torch_with_gradients(rng, kind, options):
    ours, reference = paired(kind, 3, 4, **options)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    output, states = ours(jt.array(x))
    tx = torch.tensor(x, requires_grad=True)
    want_output, want_states = reference(tx)
    np.testing.assert_allclose(output.numpy(), want_output.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(flat(states), flat(want_states)):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    weight = rng.standard_normal(tuple(want_output.shape)).astype(np.float32)
    (want_output * torch.tensor(weight)).sum().backward()
    name = "weight_hh_l0"
    x_var = jt.array(x)
    gx, gw = jt.grad((ours(x_var)[0] * jt.array(weight)).sum(), [x_var, getattr(ours, name)])
    np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), getattr(reference, name).grad.numpy(), rtol=1e-4, atol=1e-5)


def test_initial_states_and_unbatched_input(rng):
    ours, reference = paired("LSTM", 3, 4, num_layers=2)
    h0, c0 = (rng.standard_normal((2, 2, 4)).astype(np.float32) for _ in range(2))
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    output, (h, c) = ours(jt.array(x), (jt.array(h0), jt.array(c0)))
    want, (want_h, want_c) = reference(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    for got, expected in ((output, want), (h, want_h), (c, want_c)):
        np.testing.assert_allclose(got.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    output, (h, c) = ours(jt.array(x[:, 0]))
    want, (want_h, _) = reference(torch.tensor(x[:, 0]))
    assert tuple(output.shape) == (5, 4) and tuple(h.shape) == (2, 4)
    np.testing.assert_allclose(output.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(jt.MetajitShapeError, match="initial state shape"):
        ours(jt.array(x), (jt.array(h0[:1]), jt.array(c0)))
    with pytest.raises(jt.MetajitShapeError, match="input shape"):
        ours(jt.array(x[..., :2]))


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(rng, kind):
    ours, reference = paired(kind, 3, 4)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    state = rng.standard_normal((2, 4)).astype(np.float32)
    given = (jt.array(state), jt.array(state * 0.5)) if kind == "LSTMCell" else jt.array(state)
    torch_given = (torch.tensor(state), torch.tensor(state * 0.5)) if kind == "LSTMCell" else torch.tensor(state)
    for got, want in zip(flat(ours(jt.array(x), given)), flat(reference(torch.tensor(x), torch_given))):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(flat(ours(jt.array(x[0]))), flat(reference(torch.tensor(x[0])))):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_dropout_between_layers_only_when_training(rng):
    layer = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = jt.array(rng.standard_normal((4, 2, 3)).astype(np.float32))
    layer.eval()
    first, _ = layer(x)
    again, _ = layer(x)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    with pytest.raises(jt.MetajitValueError, match="must be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(jt.MetajitValueError, match="dropout must be in"):
        nn.LSTM(3, 4, dropout=1.5)
