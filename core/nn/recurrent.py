"""Recurrent layers with PyTorch's equations, shapes, initialisation and parameter names
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0`` for projections), so PyTorch
state dicts load as they are: `RNN` (tanh or relu), `LSTM` (with ``proj_size``), `GRU`,
and their single-step cells. Every step is ordinary ops, so gradients of any order work.
"""
import math

from .. import creation, init
from ..errors import MetajitShapeError, MetajitValueError
from ..shape_ops import concat, stack
from . import functional as F
from .module import Module

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _uniform(shape, hidden_size):
    bound = 1 / math.sqrt(hidden_size) if hidden_size else 0
    return init.uniform_(creation.empty(*shape), -bound, bound)


def _cell(mode, x, state, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """One step of ``mode`` for a batch: ``state`` is ``h`` (``(h, c)`` for LSTM); returns
    the new state."""
    h = state[0] if mode == "LSTM" else state
    gates_x = F.linear(x, w_ih, b_ih)
    gates_h = F.linear(h, w_hh, b_hh)
    if mode in ("RNN_TANH", "RNN_RELU"):
        total = gates_x + gates_h
        return total.tanh() if mode == "RNN_TANH" else total.relu()
    if mode == "GRU":
        r_x, z_x, n_x = gates_x.chunk(3, -1)
        r_h, z_h, n_h = gates_h.chunk(3, -1)
        r, z = (r_x + r_h).sigmoid(), (z_x + z_h).sigmoid()
        n = (n_x + r * n_h).tanh()
        return (1 - z) * n + z * h
    i, f, g, o = (gates_x + gates_h).chunk(4, -1)
    c = f.sigmoid() * state[1] + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    return (F.linear(h, w_hr) if w_hr is not None else h), c


class RNNBase(Module):
    """Shared by `RNN`, `LSTM` and `GRU`: ``execute(input, hx=None)`` returns
    ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``) with PyTorch's shapes:
    ``input`` (seq, batch, input_size), or (batch, seq, ...) when ``batch_first``, or
    (seq, input_size) unbatched."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0):
        if num_layers < 1 or hidden_size < 1:
            raise MetajitValueError(f"{type(self).__name__}: num_layers and hidden_size must be positive")
        if not 0 <= dropout < 1:
            raise MetajitValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        if proj_size and (mode != "LSTM" or not 0 < proj_size < hidden_size):
            raise MetajitValueError("proj_size is for LSTM only and must be smaller than hidden_size")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = dropout, bidirectional, proj_size
        directions = 2 if bidirectional else 1
        output_size = proj_size or hidden_size
        gates = GATES[mode] * hidden_size
        for layer in range(num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                layer_input = input_size if layer == 0 else output_size * directions
                setattr(self, "weight_ih" + suffix, _uniform((gates, layer_input), hidden_size))
                setattr(self, "weight_hh" + suffix, _uniform((gates, output_size), hidden_size))
                if bias:
                    setattr(self, "bias_ih" + suffix, _uniform((gates,), hidden_size))
                    setattr(self, "bias_hh" + suffix, _uniform((gates,), hidden_size))
                if proj_size:
                    setattr(self, "weight_hr" + suffix, _uniform((proj_size, hidden_size), hidden_size))

    def _weights(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        weights = [getattr(self, name + suffix, None) for name in names]
        return weights + ([getattr(self, "weight_hr" + suffix)] if self.proj_size else [])

    def _initial(self, hx, batch, unbatched):
        directions = 2 if self.bidirectional else 1
        layers = self.num_layers * directions
        output_size = self.proj_size or self.hidden_size
        if hx is None:
            h = creation.zeros(layers, batch, output_size)
            return (h, creation.zeros(layers, batch, self.hidden_size)) if self.mode == "LSTM" else h
        states = hx if self.mode == "LSTM" else (hx,)
        if unbatched:
            states = tuple(s.unsqueeze(1) for s in states)
        expected = [(layers, batch, output_size), (layers, batch, self.hidden_size)]
        for state, shape in zip(states, expected):
            if tuple(state.shape) != shape:
                raise MetajitShapeError(f"{type(self).__name__}: initial state shape {tuple(state.shape)}, "
                                        f"expected {shape}")
        return states if self.mode == "LSTM" else states[0]

    def execute(self, input, hx=None):
        unbatched = input.ndim == 2
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise MetajitShapeError(f"{type(self).__name__}: input shape {tuple(input.shape)}, expected "
                                    f"(seq, batch, {self.input_size}) or (seq, {self.input_size})")
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        state = self._initial(hx, x.shape[1], unbatched)
        directions = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                step_state = (state[0][k], state[1][k]) if self.mode == "LSTM" else state[k]
                weights = self._weights(layer, direction)
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                hiddens = [None] * x.shape[0]
                for t in steps:
                    step_state = _cell(self.mode, x[t], step_state, *weights)
                    hiddens[t] = step_state[0] if self.mode == "LSTM" else step_state
                outputs.append(stack(hiddens, 0))
                finals.append(step_state)
            x = outputs[0] if directions == 1 else concat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        output = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)

        def collect(parts):
            result = stack(parts, 0)
            return result.squeeze(1) if unbatched else result
        if self.mode == "LSTM":
            return output, (collect([f[0] for f in finals]), collect([f[1] for f in finals]))
        return output, collect(finals)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, bidirectional={self.bidirectional}")


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (``nonlinearity="relu"``)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):
        if nonlinearity not in ("tanh", "relu"):
            raise MetajitValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional)


class LSTM(RNNBase):
    """LSTM with PyTorch's gate order (input, forget, cell, output) and optional ``proj_size``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size)


class GRU(RNNBase):
    """GRU with PyTorch's gate order (reset, update, new)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)


class RNNCellBase(Module):
    """One step: ``execute(input, hx=None)``; parameters ``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh`` as PyTorch names them."""

    def __init__(self, mode, input_size, hidden_size, bias=True):
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        gates = GATES[mode] * hidden_size
        self.weight_ih = _uniform((gates, input_size), hidden_size)
        self.weight_hh = _uniform((gates, hidden_size), hidden_size)
        self.bias_ih = _uniform((gates,), hidden_size) if bias else None
        self.bias_hh = _uniform((gates,), hidden_size) if bias else None

    def execute(self, input, hx=None):
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            zeros = creation.zeros(x.shape[0], self.hidden_size)
            hx = (zeros, zeros) if self.mode == "LSTM" else zeros
        elif unbatched:
            hx = tuple(s.unsqueeze(0) for s in hx) if self.mode == "LSTM" else hx.unsqueeze(0)
        state = _cell(self.mode, x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if unbatched:
            return tuple(s.squeeze(0) for s in state) if self.mode == "LSTM" else state.squeeze(0)
        return state


class RNNCell(RNNCellBase):
    """One Elman step (``nonlinearity`` ``"tanh"`` or ``"relu"``); returns ``h``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise MetajitValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, bias)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``hx`` is ``(h, c)``; returns ``(h, c)``."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__("LSTM", input_size, hidden_size, bias)


class GRUCell(RNNCellBase):
    """One GRU step; returns ``h``."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__("GRU", input_size, hidden_size, bias)
