"""PyTorch's ``torch.cuda``, ``torch.amp`` / ``autocast``, memory formats and ``torch.device``
spellings (`metajit.cuda`, `metajit.amp`, `metajit.placement`), against torch where it runs here."""
import numpy as np
import pytest
import torch

import metajit as jt


def test_cuda_questions():
    available = jt.cuda.is_available()
    assert available == jt.has_cuda == any(info.name == "cuda" and info.available for info in jt.devices())
    assert jt.cuda.device_count() == int(available) and jt.cuda.current_device() == 0


def test_cuda_manual_seed_repeats_random_numbers():
    jt.cuda.manual_seed(5)
    first = jt.rand(4).numpy()
    jt.cuda.manual_seed_all(5)
    np.testing.assert_array_equal(jt.rand(4).numpy(), first)


def test_cuda_synchronize_computes_what_is_pending():
    pending = jt.ones(3) * 2
    assert pending._node.buffer is None
    jt.cuda.synchronize()
    assert pending._node.buffer is not None
    np.testing.assert_array_equal(pending.numpy(), [2, 2, 2])
    jt.cuda.empty_cache()


def _train(library, scaler, autocast, steps=3):
    """A few AMP-style steps of a small regression; the final weights."""
    layer = library.nn.Linear(3, 1)
    with library.no_grad():
        layer.weight.copy_(library.tensor([[0.5, -0.25, 1.0]]))
        layer.bias.copy_(library.tensor([0.1]))
    optimizer = library.optim.SGD(layer.parameters(), lr=0.1)
    x = library.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    for _ in range(steps):
        optimizer.zero_grad()
        with autocast:
            loss = ((layer(x) - 1) ** 2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
    return layer.weight.detach().numpy()


def test_amp_spellings_train_as_torch_without_amp():
    ours = _train(jt, jt.amp.GradScaler(), jt.autocast("cuda", dtype=jt.float16))
    legacy = _train(jt, jt.cuda.amp.GradScaler(), jt.cuda.amp.autocast())
    expected = _train(torch, torch.amp.GradScaler("cpu", enabled=False), torch.autocast("cpu", enabled=False))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    np.testing.assert_array_equal(legacy, ours)
    scaler, reference = jt.amp.GradScaler(), torch.amp.GradScaler("cpu", enabled=False)
    assert scaler.get_scale() == reference.get_scale() and scaler.is_enabled() == reference.is_enabled()
    assert scaler.state_dict() == reference.state_dict() == {}


def test_autocast_decorates_a_function():
    @jt.amp.autocast("cuda")
    def double(x):
        return x * 2

    result = double(jt.ones(2))
    assert result.dtype == jt.float32 and result.numpy().tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name", ["channels_last", "contiguous_format", "preserve_format", "channels_last_3d"])
def test_memory_formats_change_no_value(name):
    data = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    layout, reference = getattr(jt, name), getattr(torch, name)
    if name != "channels_last_3d":
        expected = torch.tensor(data).contiguous(memory_format=reference).numpy()
        np.testing.assert_array_equal(jt.array(data).contiguous(memory_format=layout).numpy(), expected)
    x = jt.array(data)
    assert x.to(memory_format=layout) is x and x.is_contiguous(memory_format=layout)
    model = jt.nn.Conv2d(2, 2, 1)
    assert model.to(memory_format=layout) is model
    assert jt.zeros_like(x, memory_format=layout).shape == (1, 2, 3, 4)


def test_device_objects():
    for arguments in [("cuda", 0), ("cuda:1",), ("cpu",)]:
        ours, theirs = jt.device(*arguments), torch.device(*arguments)
        assert str(ours) == str(theirs) and ours.type == theirs.type and ours.index == theirs.index
    assert jt.device(jt.device("cpu")) == "cpu"
    with pytest.raises(RuntimeError):
        torch.device("gpu")
    with pytest.raises(RuntimeError, match="unknown device"):
        jt.device("gpu")
