"""Recurrent layers with PyTorch's equations, shapes, initialisation and parameter names
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0`` for projections), so PyTorch
state dicts load as they are: `RNN` (tanh or relu), `LSTM` (with ``proj_size``), `GRU`,
and their single-step cells. The sequence layers take padded batches or a
`metajit.nn.utils.rnn.PackedSequence`. Every step is ordinary ops, so gradients of any
order work.

As cuDNN and PyTorch's CPU kernels, a layer multiplies the whole sequence by ``W_ih`` in
one matrix product before the time loop (with both biases where they add, for RNN and
LSTM); a step then adds one product with ``W_hh``. In a training step that halves the
matrix products (the input's forward, input gradient and weight gradient leave the loop)
and the graph Python builds for them.
"""
import math

from .. import creation, init
from ..errors import MetajitShapeError, MetajitValueError
from ..ir import graph, indexexpr
from ..math_ops import as_node, where, wrap
from ..shape_ops import concat, stack
from ..var import Var
from . import functional as F
from .module import Module
from .utils import rnn as rnn_utils

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _uniform(shape, hidden_size):
    bound = 1 / math.sqrt(hidden_size) if hidden_size else 0
    return init.uniform_(creation.empty(*shape), -bound, bound)


def _input_gates(mode, x, w_ih, b_ih, b_hh):
    """``x W_ih^T`` plus the biases that add to it: both for RNN and LSTM, ``b_ih`` alone
    for GRU (whose ``b_hh`` sits inside the reset gate's product)."""
    bias = b_ih
    if mode != "GRU" and b_hh is not None:
        bias = b_hh if b_ih is None else b_ih + b_hh
    return F.linear(x, w_ih, bias)


def _step(mode, gates_x, state, w_hh_t, b_hh, w_hr_t=None):
    """One step of ``mode`` given the input's gates (`_input_gates`): ``state`` is ``h``
    (``(h, c)`` for LSTM), ``w_hh_t`` and ``w_hr_t`` the transposed weights; returns the
    new state."""
    h = state[0] if mode == "LSTM" else state
    gates_h = h @ w_hh_t
    if mode == "GRU":
        if b_hh is not None:
            gates_h = gates_h + b_hh
        r_x, z_x, n_x = gates_x.chunk(3, -1)
        r_h, z_h, n_h = gates_h.chunk(3, -1)
        r, z = (r_x + r_h).sigmoid(), (z_x + z_h).sigmoid()
        n = (n_x + r * n_h).tanh()
        return (1 - z) * n + z * h
    total = gates_x + gates_h
    if mode == "RNN_TANH":
        return total.tanh()
    if mode == "RNN_RELU":
        return total.relu()
    i, f, g, o = total.chunk(4, -1)
    c = f.sigmoid() * state[1] + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    return (h @ w_hr_t if w_hr_t is not None else h), c


def _time_steps(x):
    """The slices ``x[0], ..., x[T-1]`` of a (T, ...) Var, one gather each."""
    node = as_node(x)
    rest = node.shape[1:]
    loops = [indexexpr.loop(axis) for axis in range(len(rest))]
    return [wrap(graph.reindex(node, rest, [indexexpr.const(t)] + loops)) for t in range(node.shape[0])]


def _scan(mode, x, state, weights, reverse, active):
    """Run one layer and direction over ``x`` (T, B, input): returns the stacked hidden
    outputs (T, B, H) and the final state. ``active[t]`` is None where every sequence is
    still running at step ``t``, else a (B, 1) bool Var: a sequence that has ended (or, in
    reverse, not yet begun) keeps its state, so the final state is each sequence's own."""
    w_ih, w_hh, b_ih, b_hh, *w_hr = weights
    steps, batch = x.shape[:2]
    gates = _input_gates(mode, x.reshape(steps * batch, x.shape[2]), w_ih, b_ih, b_hh)
    gates = _time_steps(gates.reshape(steps, batch, gates.shape[-1]))
    w_hh_t = w_hh.transpose()
    w_hr_t = w_hr[0].transpose() if w_hr else None
    hiddens = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        new = _step(mode, gates[t], state, w_hh_t, b_hh, w_hr_t)
        if active[t] is not None:
            new = tuple(where(active[t], n, s) for n, s in zip(new, state)) if mode == "LSTM" else \
                where(active[t], new, state)
        state = new
        hiddens[t] = state[0] if mode == "LSTM" else state
    return stack(hiddens, 0), state


def _cell(mode, x, state, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """One step of ``mode`` for a batch ``x`` (B, input); returns the new state."""
    return _step(mode, _input_gates(mode, x, w_ih, b_ih, b_hh), state, w_hh.transpose(), b_hh,
                 w_hr.transpose() if w_hr is not None else None)


class RNNBase(Module):
    """Shared by `RNN`, `LSTM` and `GRU`: ``execute(input, hx=None)`` returns
    ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``) with PyTorch's shapes:
    ``input`` (seq, batch, input_size), or (batch, seq, ...) when ``batch_first``, or
    (seq, input_size) unbatched. A `PackedSequence` input gives a `PackedSequence` output
    and each sequence's state after its own last step (``hx`` and ``h_n`` in the batch's
    original order), as PyTorch::

        packed = jt.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        output, (h_n, c_n) = lstm(packed)
    """

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

    @property
    def all_weights(self):
        """The parameters per layer and direction, as PyTorch lists them: ``[[weight_ih_l0,
        weight_hh_l0, bias_ih_l0, bias_hh_l0], ...]`` (no biases when ``bias=False``,
        ``weight_hr`` last with ``proj_size``)."""
        return [[w for w in self._weights(layer, direction) if w is not None]
                for layer in range(self.num_layers) for direction in range(2 if self.bidirectional else 1)]

    def flatten_parameters(self):
        """Does nothing, as PyTorch's does on the CPU. On a GPU with cuDNN, PyTorch copies
        the weights into one contiguous buffer (the parameters become views of it) so that
        cuDNN reads them without a copy per call; metajit keeps each weight as its own Var
        and its steps read them where they are, so there is nothing to gather. Kept so
        PyTorch code that calls it (often in ``forward``) runs unchanged."""

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

    def _sequence(self, input):
        """``(x, lengths, unbatched)``: ``x`` (seq, batch, input_size); ``lengths`` each
        sequence's length for a packed input, else None."""
        if isinstance(input, tuple) and hasattr(input, "batch_sizes"):  # ours or torch's PackedSequence
            x, lengths = rnn_utils.pad_packed_sequence(input)
            lengths = lengths.numpy()
        else:
            x, lengths = input, None
        if not isinstance(x, Var) or x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, seq, {0}) or (seq, {0})" if self.batch_first and lengths is None else \
                "(seq, batch, {0}) or (seq, {0})"
            raise MetajitShapeError(f"{type(self).__name__}: input shape {tuple(getattr(x, 'shape', ()))}, "
                                    f"expected {layout.format(self.input_size)} (input_size={self.input_size})")
        unbatched = x.ndim == 2
        if unbatched:
            return x.unsqueeze(1), None, True
        return (x.transpose(0, 1) if self.batch_first and lengths is None else x), lengths, False

    def execute(self, input, hx=None):
        x, lengths, unbatched = self._sequence(input)
        state = self._initial(hx, x.shape[1], unbatched)
        directions = 2 if self.bidirectional else 1
        running = [None] * x.shape[0] if lengths is None else \
            [None if t < lengths.min() else creation.array((t < lengths)[:, None]) for t in range(x.shape[0])]
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                layer_state = (state[0][k], state[1][k]) if self.mode == "LSTM" else state[k]
                hiddens, final = _scan(self.mode, x, layer_state, self._weights(layer, direction), direction,
                                       running)
                outputs.append(hiddens)
                finals.append(final)
            x = outputs[0] if directions == 1 else concat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        if lengths is not None:
            output = rnn_utils.repack(x, rnn_utils.PackedSequence(*input))
        else:
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
