"""``metajit.nn.utils``, PyTorch's ``torch.nn.utils``: gradient clipping (defined with the
optimisers, `metajit.optimizer`), parameters as one flat vector, and `rnn`'s padding and
packing of variable-length sequences. Example::

    from metajit.nn.utils import clip_grad_norm_
    from metajit.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
"""
from ...optimizer import clip_grad_norm_, clip_grad_value_
from . import rnn
from .convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "rnn", "vector_to_parameters"]
