"""Layers take PyTorch's factory arguments ``device=`` and ``dtype=`` (`Module.__init_subclass__`),
against torch: the same state entries in the same dtypes."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.errors import MetajitDeviceError

LAYERS = {
    "Linear": lambda nn, **k: nn.Linear(3, 4, **k),
    "Linear without bias": lambda nn, **k: nn.Linear(3, 4, False, **k),
    "Bilinear": lambda nn, **k: nn.Bilinear(2, 3, 4, **k),
    "Conv2d": lambda nn, **k: nn.Conv2d(2, 4, 3, **k),
    "ConvTranspose1d": lambda nn, **k: nn.ConvTranspose1d(2, 4, 3, **k),
    "Embedding": lambda nn, **k: nn.Embedding(5, 2, padding_idx=0, **k),
    "LayerNorm": lambda nn, **k: nn.LayerNorm(4, **k),
    "GroupNorm": lambda nn, **k: nn.GroupNorm(2, 4, **k),
    "BatchNorm1d": lambda nn, **k: nn.BatchNorm1d(3, **k),
    "BatchNorm2d": lambda nn, **k: nn.BatchNorm2d(3, **k),
    "InstanceNorm2d": lambda nn, **k: nn.InstanceNorm2d(3, affine=True, track_running_stats=True, **k),
    "RMSNorm": lambda nn, **k: nn.RMSNorm(4, **k),
    "PReLU": lambda nn, **k: nn.PReLU(3, **k),
    "LSTM": lambda nn, **k: nn.LSTM(2, 3, **k),
    "GRU": lambda nn, **k: nn.GRU(2, 3, batch_first=True, **k),
    "MultiheadAttention": lambda nn, **k: nn.MultiheadAttention(4, 2, **k),
    "TransformerEncoderLayer": lambda nn, **k: nn.TransformerEncoderLayer(4, 2, 8, **k),
    "Transformer": lambda nn, **k: nn.Transformer(4, 2, 1, 1, 8, batch_first=True, **k),
}


def _dtypes(module):
    return {name: str(value.dtype).removeprefix("torch.") for name, value in module.state_dict().items()}


@pytest.mark.parametrize("dtype", ["float64", "float16"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_take_device_and_dtype(name, dtype):
    make = LAYERS[name]
    expected = _dtypes(make(torch.nn, device="cpu", dtype=getattr(torch, dtype)))
    layer = make(jt.nn, device="cpu", dtype=getattr(jt, dtype))
    assert _dtypes(layer) == expected
    assert all(parameter.requires_grad for parameter in layer.parameters())
    assert _dtypes(make(jt.nn, device=jt.device("cpu"))) == _dtypes(make(torch.nn))


def test_a_float64_layer_computes_in_float64():
    torch_layer = torch.nn.Linear(3, 2, dtype=torch.float64)
    layer = jt.nn.Linear(3, 2, dtype=jt.float64)
    layer.load_state_dict(torch_layer.state_dict())
    x = np.linspace(-1, 1, 6).reshape(2, 3) * 1e-9 + 1  # float32 would round these together
    result = layer(jt.array(x))
    assert result.dtype == jt.float64
    np.testing.assert_allclose(result.numpy(), torch_layer(torch.tensor(x)).detach().numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ["Linear", "LSTM", "MultiheadAttention"])
def test_another_device_is_refused_naming_how_to_select_it(name):
    with pytest.raises(MetajitDeviceError, match="set_device"):
        LAYERS[name](jt.nn, device="mps")


def test_a_layer_naming_device_itself_keeps_it():
    class Placed(jt.nn.Module):
        def __init__(self, device):
            self.device_given = device

    assert Placed("somewhere").device_given == "somewhere"

    class Narrowed(jt.nn.Linear):
        def __init__(self, size, **options):
            super().__init__(size, size, **options)

    assert Narrowed(2, dtype=jt.float64).weight.dtype == jt.float64
    with pytest.raises(TypeError):
        jt.nn.Linear(2, 2, colour="red")
