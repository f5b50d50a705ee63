"""``metajit.nn.utils``, PyTorch's ``torch.nn.utils``: gradient clipping (defined with the
optimisers, `metajit.optimizer`), parameters as one flat vector, `rnn`'s padding and
packing of variable-length sequences, weight and spectral normalisation (as forward hooks,
and as `parametrizations` built on `parametrize`). Example::

    from metajit.nn.utils import clip_grad_norm_
    from metajit.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
"""
from ...optimizer import clip_grad_norm_, clip_grad_value_
from . import parametrizations, parametrize, rnn
from .convert_parameters import parameters_to_vector, vector_to_parameters
from .spectral_norm import remove_spectral_norm, spectral_norm
from .weight_norm import remove_weight_norm, weight_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "parametrizations", "parametrize",
           "remove_spectral_norm", "remove_weight_norm", "rnn", "spectral_norm", "vector_to_parameters",
           "weight_norm"]
