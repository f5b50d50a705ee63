"""Transformer layers as PyTorch's (``torch.nn.Transformer``, its encoder and decoder
stacks and their layers): the same arguments and submodule names (``self_attn``,
``multihead_attn``, ``linear1``, ``linear2``, ``norm1`` ...), so their state dicts load
strictly. Built from `MultiheadAttention`, `Linear`, `LayerNorm` and `Dropout`.

``is_causal`` arguments are hints, as PyTorch's: a causal ``mask`` gives the same result
with or without them (PyTorch's ``is_causal=None`` detection only picks a faster kernel)."""
import copy

from .. import init
from ..errors import MetajitShapeError, MetajitValueError
from . import functional as F
from .attention import MultiheadAttention, causal_mask
from .dropout import Dropout
from .layers import Linear
from .module import Module, ModuleList
from .normalization import LayerNorm


def _activation(activation):
    """``"relu"`` / ``"gelu"`` as the functions, a callable (a Module too) as it is."""
    if callable(activation):
        return activation
    if activation in ("relu", "gelu"):
        return getattr(F, activation)
    raise MetajitValueError(f"activation should be 'relu', 'gelu' or a callable, not {activation!r}")


class _Layer(Module):
    """What encoder and decoder layers share: the attention modules, the feed-forward block,
    the norms and dropouts, and the residual step."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                 norm_first, bias, attentions):
        super().__init__()
        for name in attentions:
            setattr(self, name, MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                   batch_first=batch_first))
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        steps = range(1, len(attentions) + 2)  # one norm and one dropout per residual step
        for index in steps:
            setattr(self, f"norm{index}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for index in steps:
            setattr(self, f"dropout{index}", Dropout(dropout))
        self.activation = _activation(activation)

    def _residual(self, x, step, block):
        """``x + block(norm(x))`` with ``norm_first``, else ``norm(x + block(x))``; ``block``'s
        output goes through dropout ``step`` (``norm<step>``, ``dropout<step>``)."""
        norm, dropout = getattr(self, f"norm{step}"), getattr(self, f"dropout{step}")
        if self.norm_first:
            return x + dropout(block(norm(x)))
        return norm(x + dropout(block(x)))

    def _feed_forward(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    @staticmethod
    def _attending(attention, memory, mask, key_padding_mask, is_causal):
        """The block attending from its input to ``memory`` (None: to itself)."""
        def block(x):
            source = x if memory is None else memory
            return attention(x, source, source, attn_mask=mask, key_padding_mask=key_padding_mask,
                             need_weights=False, is_causal=is_causal)[0]
        return block


class TransformerEncoderLayer(_Layer):
    """Self-attention then a feed-forward block, each with a residual connection and a
    LayerNorm (after it, or before with ``norm_first``), as ``torch.nn.TransformerEncoderLayer``;
    ``activation`` is ``"relu"``, ``"gelu"`` or a callable. ``forward(src, src_mask=None,
    src_key_padding_mask=None, is_causal=False)``.
    Example: ``nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)(x)``."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, ("self_attn",))

    def execute(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = self._residual(src, 1, self._attending(self.self_attn, None, src_mask, src_key_padding_mask, is_causal))
        return self._residual(x, 2, self._feed_forward)


class TransformerDecoderLayer(_Layer):
    """Self-attention, attention over the encoder's ``memory``, then a feed-forward block,
    each with a residual connection and a LayerNorm, as ``torch.nn.TransformerDecoderLayer``.
    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``.
    Example: ``nn.TransformerDecoderLayer(32, 4, 64)(tgt, memory)``."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, ("self_attn", "multihead_attn"))

    def execute(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = self._residual(tgt, 1, self._attending(self.self_attn, None, tgt_mask, tgt_key_padding_mask,
                                                   tgt_is_causal))
        x = self._residual(x, 2, self._attending(self.multihead_attn, memory, memory_mask,
                                                 memory_key_padding_mask, memory_is_causal))
        return self._residual(x, 3, self._feed_forward)


def _clones(layer, count):
    """``count`` independent copies of ``layer`` (same initial values), as PyTorch's."""
    return ModuleList(copy.deepcopy(layer) for _ in range(count))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given, as
    ``torch.nn.TransformerEncoder`` (``enable_nested_tensor`` and ``mask_check`` are
    accepted; metajit has no nested tensors, so padded positions are computed, not zeroed).
    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``.
    Example: ``nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4), num_layers=2)(x)``."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def execute(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=is_causal is True)
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn to ``tgt`` (each attending
    to ``memory``), then ``norm`` if given, as ``torch.nn.TransformerDecoder``.
    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``.
    Example: ``nn.TransformerDecoder(nn.TransformerDecoderLayer(32, 4), 2)(tgt, memory)``."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def execute(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal is True, memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """An encoder-decoder transformer, as ``torch.nn.Transformer`` (``custom_encoder`` /
    ``custom_decoder`` replace the stacks; matrices re-initialised Xavier-uniform, as
    PyTorch's). ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
    src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    src_is_causal=None, tgt_is_causal=None, memory_is_causal=False)``.
    Example: ``model(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt.shape[0]))``."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation=F.relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__()
        settings = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                    bias)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(*settings), num_encoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(*settings), num_decoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for parameter in self.parameters():
            if parameter.ndim > 1:
                init.xavier_uniform_(parameter)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def execute(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise MetajitShapeError(f"Transformer: src {tuple(src.shape)} and tgt {tuple(tgt.shape)} must have the "
                                    f"same batch size (dim {batch_dim}, batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise MetajitShapeError(f"Transformer: src {tuple(src.shape)} and tgt {tuple(tgt.shape)} must have "
                                    f"d_model={self.d_model} features")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) causal mask: 0 on and below the diagonal, -inf above, as PyTorch's.
        Example: ``nn.Transformer.generate_square_subsequent_mask(3)``."""
        return causal_mask(sz, sz, "float32" if dtype is None else dtype)
