"""PyTorch's ``torch.nn.utils.rnn``: padding and packing batches of variable-length
sequences.

A `PackedSequence` holds a batch's steps without padding, time-major, the sequences
sorted longest first: ``data`` row by row is step 0 of every sequence, then step 1 of
those at least 2 long, and so on; ``batch_sizes[t]`` counts the sequences still running at
step ``t``. ``sorted_indices`` (None when the batch came sorted) lists the original batch
positions in that order and ``unsorted_indices`` is its inverse. The layout is decided on
the host from the lengths; packing and padding are then one gather each, so gradients
flow through both. The recurrent layers (`metajit.nn.LSTM`, `GRU`, `RNN`) take and
return a `PackedSequence`::

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    output, (h_n, c_n) = lstm(packed)
    padded, lengths = pad_packed_sequence(output, batch_first=True)
"""
import collections

import numpy as np

from ... import creation
from ...errors import MetajitShapeError, MetajitValueError
from ...math_ops import as_var
from ...shape_ops import concat, pad, stack
from ...var import Var

__all__ = ["PackedSequence", "SequenceError", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence",
           "pad_sequence", "unpack_sequence", "unpad_sequence"]


class SequenceError(MetajitValueError, RuntimeError):
    """Sequences or lengths that do not describe a batch (an empty list, a length of 0 or
    longer than the padded steps, unsorted lengths with ``enforce_sorted=True``); also a
    `RuntimeError`, what PyTorch raises there."""


_Fields = collections.namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_Fields):
    """A packed batch (see the module docstring): a named tuple ``(data, batch_sizes,
    sorted_indices, unsorted_indices)`` as PyTorch's, the last three int64 Vars (the
    indices None for a batch packed in its own order). Build one with
    `pack_padded_sequence` or `pack_sequence`."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None and isinstance(data, (list, tuple)):
            data, batch_sizes = data  # PyTorch's PackedSequence((data, batch_sizes))
        if sorted_indices is not None and unsorted_indices is None:
            unsorted_indices = np.argsort(_host_ints(sorted_indices, "sorted_indices"))
        return super().__new__(cls, data, _int64(batch_sizes), _int64(sorted_indices), _int64(unsorted_indices))

    def to(self, *args, **kwargs):
        """The same packing with ``data.to(*args, **kwargs)`` (a dtype; the device in use)."""
        return self._replace(data=self.data.to(*args, **kwargs))

    def float(self):
        return self.to("float32")

    def double(self):
        return self.to("float64")

    def half(self):
        return self.to("float16")

    def cpu(self):
        return self

    @property
    def is_cuda(self):
        return self.data.is_cuda


def _int64(values):
    if values is None or (isinstance(values, Var) and values.dtype == "int64"):
        return values
    return creation.array(_host_ints(values, "indices"), dtype="int64")


def _host_ints(values, name):
    """``values`` (a list, numpy array, Var or torch tensor) as a 1-d numpy int64 array."""
    if isinstance(values, Var):
        values = values.numpy()
    elif hasattr(values, "detach") and hasattr(values, "numpy"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim != 1:
        raise MetajitShapeError(f"{name} must be 1-d, got shape {values.shape}")
    return values.astype(np.int64)


def _layout(batch_sizes, sorted_indices):
    """``(steps, batches)`` of each row of a packed ``data``: its time step and the
    original batch position of its sequence."""
    steps = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    ranks = np.concatenate([np.arange(size) for size in batch_sizes]) if len(batch_sizes) else steps
    return steps, (ranks if sorted_indices is None else sorted_indices[ranks])


def _packed_rows(x, batch_first, batch_sizes, sorted_indices):
    """The packed ``data`` of the padded ``x``: its rows at the packed layout."""
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    step_of, batch_of = _layout(batch_sizes, sorted_indices)
    rows = batch_of * steps + step_of if batch_first else step_of * batch + batch_of
    return x.reshape((steps * batch,) + tuple(x.shape[2:]))[rows]


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack the padded batch ``input`` (T, B, *), or (B, T, *) with ``batch_first``, whose
    sequence ``b`` is ``lengths[b]`` steps long (a list, numpy array, Var or torch tensor).
    With ``enforce_sorted`` the lengths must not increase (raises `SequenceError`
    otherwise); ``enforce_sorted=False`` sorts them and records the order. Example::

        packed = pack_padded_sequence(jt.randn(3, 5, 4), [5, 2, 3], batch_first=True, enforce_sorted=False)
        packed.batch_sizes.tolist()   # [3, 3, 2, 1, 1]
    """
    x = as_var(input)
    lengths = _host_ints(lengths, "pack_padded_sequence: lengths")
    if x.ndim < 2:
        raise MetajitShapeError(f"pack_padded_sequence: input of shape {tuple(x.shape)} has no batch and time dims")
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    if len(lengths) != batch:
        raise SequenceError(f"pack_padded_sequence: expected len(lengths) to be equal to batch_size, but got "
                            f"{len(lengths)} (batch_size={batch})")
    if lengths.min(initial=1) <= 0:
        raise SequenceError(f"pack_padded_sequence: every length must be positive, got {lengths.tolist()}")
    if lengths.max(initial=0) > steps:
        layout = "(B, T, *)" if batch_first else "(T, B, *)"
        raise SequenceError(f"pack_padded_sequence: lengths {lengths.tolist()} exceed the {steps} steps of the "
                            f"input (shape {tuple(x.shape)}, read as {layout} with batch_first={batch_first})")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise SequenceError(f"pack_padded_sequence: lengths {lengths.tolist()} must be sorted in decreasing "
                                f"order when enforce_sorted is True; pass enforce_sorted=False to sort them")
        sorted_indices = None
    else:
        sorted_indices = np.argsort(-lengths, kind="stable")
    batch_sizes = (lengths[None, :] > np.arange(lengths.max(initial=0))[:, None]).sum(1)
    data = _packed_rows(x, batch_first, batch_sizes, sorted_indices)
    return PackedSequence(data, batch_sizes, sorted_indices)


def repack(padded, like):
    """The time-major ``padded`` (T, B, *) packed as the `PackedSequence` ``like`` is (its
    batch sizes and order): the recurrent layers' packed output."""
    batch_sizes = _host_ints(like.batch_sizes, "batch_sizes")
    sorted_indices = None if like.sorted_indices is None else _host_ints(like.sorted_indices, "sorted_indices")
    return like._replace(data=_packed_rows(padded, False, batch_sizes, sorted_indices))


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo `pack_padded_sequence`: ``(padded, lengths)``, ``padded`` (T, B, *) (``(B, T,
    *)`` with ``batch_first``) in the batch's original order with ``padding_value`` after
    each sequence, T the longest length or ``total_length``; ``lengths`` an int64 Var.
    Example: ``output, lengths = pad_packed_sequence(lstm(packed)[0], batch_first=True)``."""
    batch_sizes = _host_ints(sequence.batch_sizes, "batch_sizes")
    sorted_indices = None if sequence.sorted_indices is None else \
        _host_ints(sequence.sorted_indices, "sorted_indices")
    steps, batch = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    if total_length is not None:
        if total_length < steps:
            raise MetajitValueError(f"pad_packed_sequence: expected total_length to be at least the length of the "
                                    f"longest sequence in input, but got total_length={total_length} and max "
                                    f"sequence length being {steps}")
        steps = int(total_length)
    data = as_var(sequence.data)
    step_of, batch_of = _layout(batch_sizes, sorted_indices)
    rows = np.full((steps, batch), len(step_of), np.int64)  # the row past the data: padding
    rows[step_of, batch_of] = np.arange(len(step_of))
    padding = creation.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    padded = concat([data, padding], 0)[rows.T if batch_first else rows]
    return padded, creation.array(np.bincount(batch_of, minlength=batch), dtype="int64")


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack Vars of shapes (L_i, *) into one (max L, B, *) (``(B, max L, *)`` with
    ``batch_first``), each filled up with ``padding_value`` on its ``padding_side``
    (``"right"`` or ``"left"``). Example: ``pad_sequence([jt.array([1, 2, 3]),
    jt.array([4])], batch_first=True)`` is ``[[1, 2, 3], [4, 0, 0]]``."""
    if padding_side not in ("left", "right"):
        raise MetajitValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    sequences = [as_var(s) for s in sequences]
    if not sequences:
        raise SequenceError("pad_sequence: received an empty list of sequences")
    trailing = {tuple(s.shape[1:]) for s in sequences}
    if len(trailing) > 1 or sequences[0].ndim == 0:
        raise MetajitShapeError(f"pad_sequence: sequences must be (L, *) with the same * for all, got shapes "
                                f"{[tuple(s.shape) for s in sequences]}")
    longest = max(s.shape[0] for s in sequences)
    untouched = (0, 0) * (sequences[0].ndim - 1)
    padded = [pad(s, untouched + ((0, longest - s.shape[0]) if padding_side == "right" else
                                  (longest - s.shape[0], 0)), value=padding_value) for s in sequences]
    return stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of Vars of shapes (L_i, *): `pad_sequence` then `pack_padded_sequence`.
    Example: ``pack_sequence([jt.array([1, 2, 3]), jt.array([4, 5])]).data`` is ``[1, 4, 2, 5, 3]``."""
    sequences = [as_var(s) for s in sequences]
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences in a padded batch, each cut to its length. Example:
    ``unpad_sequence(padded, [3, 1], batch_first=True)``."""
    lengths = _host_ints(lengths, "unpad_sequence: lengths")
    padded = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [padded[b, :int(length)] for b, length in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """The list of sequences in a `PackedSequence`, in their original order. Example:
    ``unpack_sequence(pack_sequence(seqs, enforce_sorted=False))`` gives ``seqs`` back."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)

