"""Attention from meta-ops: `scaled_dot_product_attention`, `multi_head_attention_forward`
and `MultiheadAttention`, as PyTorch's (same arguments, same parameter names, so a
``torch.nn.MultiheadAttention`` state dict loads strictly). Scores are a matrix product,
masks an additive bias (-inf where a key is excluded), then a softmax and a second
product; gradients come from those ops."""
import math

from .. import creation, init
from ..errors import MetajitDtypeError, MetajitShapeError, MetajitValueError
from ..ir import dtypes
from ..math_ops import as_node, binary, where, wrap
from ..shape_ops import concat, pad
from ..var import Var
from . import functional as F
from .dropout import dropout
from .layers import Linear
from .module import Module


def _var(x):
    return x if isinstance(x, Var) else wrap(as_node(x))


def additive_mask(mask, dtype, excluded_where=True):
    """A boolean or float attention mask as the float bias added to the scores: a float
    ``mask`` as it is; a boolean one as -inf where it equals ``excluded_where`` and 0
    elsewhere (`MultiheadAttention` excludes True, `scaled_dot_product_attention` keeps
    True). Example: ``additive_mask(padding, "float32")``."""
    mask = _var(mask)
    if dtypes.is_float(mask.dtype):
        return mask
    if mask.dtype is not dtypes.bool_:
        raise MetajitDtypeError(f"attention masks must be bool or floating point, got {mask.dtype}; "
                                "convert with mask.bool() or mask.float()")
    excluded = mask if excluded_where else mask.logical_not()
    return where(excluded, float("-inf"), 0.0).cast(dtype)


def causal_mask(target_length, source_length, dtype="float32"):
    """The (target_length, source_length) additive mask letting query ``i`` see keys
    ``0..i`` (-inf above the diagonal, top-left aligned as ``torch.tril``).
    Example: ``causal_mask(3, 3)`` is ``[[0, -inf, -inf], [0, 0, -inf], [0, 0, 0]]``."""
    rows = creation.arange(target_length).reshape(target_length, 1)
    columns = creation.arange(source_length).reshape(1, source_length)
    return where(binary("gt", columns, rows), float("-inf"), 0.0).cast(dtype)


def _softmax_over_keys(scores):
    """Softmax over the last dim, 0 for a query every key is masked from (all scores
    -inf), as PyTorch's fused attention (its unfused path, `multi_head_attention_forward`
    with ``need_weights``, gives nan there)."""
    excluded = binary("eq", scores.max(-1, keepdims=True), float("-inf"))
    return where(excluded, 0.0, F.softmax(where(excluded, 0.0, scores), -1))


def _attend(query, key, value, bias, dropout_p, scale, empty_rows_zero=True):
    """``(softmax(query @ key^T * scale + bias) @ value, the softmax)``, dropout applied to
    the softmax when ``dropout_p`` > 0."""
    scores = binary("mul", query @ key.transpose(-2, -1), scale)
    if bias is not None:
        scores = binary("add", scores, bias)
    weights = _softmax_over_keys(scores) if empty_rows_zero else F.softmax(scores, -1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return weights @ value, weights


def _repeat_heads(x, heads, name):
    """``x`` (..., H, S, E) with each head repeated to ``heads`` heads (grouped-query
    attention: ``repeat_interleave`` along dim -3)."""
    if x.ndim < 3 or heads % x.shape[-3]:
        raise MetajitShapeError(f"scaled_dot_product_attention(enable_gqa=True): the {name} heads "
                                f"(dim -3 of {tuple(x.shape)}) must divide the {heads} query heads")
    group = heads // x.shape[-3]
    lead, (own, length, features) = tuple(x.shape[:-3]), tuple(x.shape[-3:])
    repeated = x.unsqueeze(-3).expand(lead + (own, group, length, features))
    return repeated.reshape(lead + (heads, length, features))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """``softmax(query @ key^T * scale + mask) @ value`` for query (..., L, E), key (..., S, E)
    and value (..., S, Ev), leading dims broadcast, as ``torch.nn.functional``'s:
    ``attn_mask`` is boolean (True: the query may attend to the key) or a float bias;
    ``is_causal`` lets query ``i`` see keys ``0..i``; ``scale`` defaults to ``1 / sqrt(E)``;
    ``dropout_p`` drops attention weights (always, as PyTorch: pass 0 in evaluation);
    ``enable_gqa`` repeats key and value heads (dim -3) to the query's. A query no key is
    allowed to gives zeros. Example: ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``."""
    query, key, value = _var(query), _var(key), _var(value)
    if min(query.ndim, key.ndim, value.ndim) < 2 or query.shape[-1] != key.shape[-1] \
            or key.shape[-2] != value.shape[-2]:
        raise MetajitShapeError(f"scaled_dot_product_attention: query (..., L, E), key (..., S, E) and value "
                                f"(..., S, Ev) expected, got {tuple(query.shape)}, {tuple(key.shape)} and "
                                f"{tuple(value.shape)}")
    bias = None
    if is_causal:
        if attn_mask is not None:
            raise MetajitValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both "
                                    "(add causal_mask(L, S) to a float attn_mask instead)")
        bias = causal_mask(query.shape[-2], key.shape[-2], query.dtype)
    elif attn_mask is not None:
        bias = additive_mask(attn_mask, query.dtype, excluded_where=False)
    if enable_gqa:
        key, value = (_repeat_heads(x, query.shape[-3], name) for x, name in ((key, "key"), (value, "value")))
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, bias, dropout_p, scale)[0]


def _check_shapes(query, key, value, key_padding_mask, attn_mask):
    """Whether the inputs are batched ((L, N, E)) or not ((L, E)); raises on other ranks."""
    batched = query.ndim == 3
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise MetajitShapeError(f"multi-head attention takes (L, N, E) or unbatched (L, E) query, key and value "
                                f"of one rank, got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise MetajitShapeError(f"key_padding_mask must be {'(N, S)' if batched else '(S,)'}, got shape "
                                f"{tuple(key_padding_mask.shape)}")
    if attn_mask is not None and attn_mask.ndim not in (2, 3):
        raise MetajitShapeError(f"attn_mask must be (L, S) or (N * num_heads, L, S), got shape "
                                f"{tuple(attn_mask.shape)}")
    return batched


def _project(query, key, value, in_proj_weight, in_proj_bias, separate_weights):
    """The query, key and value projections: slices of the packed ``in_proj_weight``
    (one product for self-attention), or the three separate weights."""
    biases = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
    if separate_weights is not None:
        return [F.linear(x, w, b) for x, w, b in zip((query, key, value), separate_weights, biases)]
    if query is key and key is value:
        return F.linear(query, in_proj_weight, in_proj_bias).chunk(3, -1)
    return [F.linear(x, w, b) for x, w, b in zip((query, key, value), in_proj_weight.chunk(3), biases)]


def _split_heads(x, batch, num_heads, head_dim):
    """(S, N, E) -> (N * num_heads, S, head_dim)."""
    return x.reshape(x.shape[0], batch * num_heads, head_dim).transpose(0, 1)


def _with_static(projected, static, batch, num_heads, head_dim, name):
    if static is None:
        return _split_heads(projected, batch, num_heads, head_dim)
    if static.ndim != 3 or static.shape[0] != batch * num_heads or static.shape[2] != head_dim:
        raise MetajitShapeError(f"{name} must be (N * num_heads, S, head_dim) = ({batch * num_heads}, S, {head_dim}), "
                                f"got {tuple(static.shape)}")
    return static


def _one_more_key(mask):
    """``mask`` for one more key at the end (a column of zeros: it is not excluded)."""
    return None if mask is None else pad(mask, (0, 1))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """Multi-head attention of (L, N, E) ``query`` over (S, N, kdim) ``key`` and (S, N, vdim)
    ``value`` (or unbatched (L, E) ...), as ``torch.nn.functional``'s: returns the (L, N, E)
    output and, when ``need_weights``, the attention weights (N, L, S) averaged over heads,
    or (N, num_heads, L, S) without ``average_attn_weights``; else None. Masks: boolean
    (True excludes the key) or float (added); ``is_causal`` is a hint that ``attn_mask`` is
    causal, used in its place when nothing else masks. Example:
    ``multi_head_attention_forward(x, x, x, 8, 2, w, b, None, None, False, 0.0, ow, ob)``."""
    query, key, value = _var(query), _var(key), _var(value)
    key_padding_mask = None if key_padding_mask is None else _var(key_padding_mask)
    attn_mask = None if attn_mask is None else _var(attn_mask)
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    target_length, batch, embed_dim = query.shape
    if embed_dim != embed_dim_to_check or embed_dim % num_heads:
        raise MetajitShapeError(f"multi-head attention: query features {embed_dim} must equal embed_dim "
                                f"{embed_dim_to_check} and divide into {num_heads} heads")
    if key.shape[:2] != value.shape[:2]:
        raise MetajitShapeError(f"key {tuple(key.shape)} and value {tuple(value.shape)} must share their "
                                "sequence and batch dims")
    head_dim = embed_dim // num_heads
    if is_causal and attn_mask is None:
        raise MetajitValueError("is_causal=True is a hint that needs attn_mask: pass "
                                "attn_mask=nn.Transformer.generate_square_subsequent_mask(L)")
    if key_padding_mask is not None:
        key_padding_mask = additive_mask(key_padding_mask, query.dtype)
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = causal_mask(target_length, key.shape[0], query.dtype)  # the hint wins, as PyTorch
    elif attn_mask is not None:
        attn_mask = additive_mask(attn_mask, query.dtype)
        expected = (target_length, key.shape[0]) if attn_mask.ndim == 2 else (batch * num_heads, target_length,
                                                                              key.shape[0])
        if tuple(attn_mask.shape) != expected:
            raise MetajitShapeError(f"attn_mask of shape {tuple(attn_mask.shape)} should be {expected}")
    if attn_mask is not None and attn_mask.ndim == 2:
        attn_mask = attn_mask.unsqueeze(0)
    separate = (q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else None
    if separate is not None and any(w is None for w in separate) or separate is None and in_proj_weight is None:
        raise MetajitValueError("multi-head attention needs in_proj_weight, or q_proj_weight, k_proj_weight and "
                                "v_proj_weight with use_separate_proj_weight=True")
    q, k, v = _project(query, key, value, in_proj_weight, in_proj_bias, separate)
    if (bias_k is None) != (bias_v is None) or bias_k is not None and (static_k is not None or static_v is not None):
        raise MetajitValueError("bias_k and bias_v go together, and not with static_k / static_v")
    if bias_k is not None:
        k = concat([k, bias_k.expand((1, batch, embed_dim))])
        v = concat([v, bias_v.expand((1, batch, embed_dim))])
        attn_mask, key_padding_mask = _one_more_key(attn_mask), _one_more_key(key_padding_mask)
    q = _split_heads(q, batch, num_heads, head_dim)
    k = _with_static(k, static_k, batch, num_heads, head_dim, "static_k")
    v = _with_static(v, static_v, batch, num_heads, head_dim, "static_v")
    if add_zero_attn:
        zeros = creation.zeros((batch * num_heads, 1, head_dim), dtype=k.dtype)
        k, v = concat([k, zeros], 1), concat([v, zeros.cast(v.dtype)], 1)
        attn_mask, key_padding_mask = _one_more_key(attn_mask), _one_more_key(key_padding_mask)
    source_length = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (batch, source_length):
            raise MetajitShapeError(f"key_padding_mask of shape {tuple(key_padding_mask.shape)} should be "
                                    f"{(batch, source_length)}")
        padding = key_padding_mask.reshape(batch, 1, 1, source_length).expand((batch, num_heads, 1, source_length))
        padding = padding.reshape(batch * num_heads, 1, source_length)
        attn_mask = padding if attn_mask is None else binary("add", attn_mask, padding)
    output, weights = _attend(q, k, v, attn_mask, dropout_p if training else 0.0, 1.0 / math.sqrt(head_dim),
                              empty_rows_zero=not need_weights)
    output = output.transpose(0, 1).reshape(target_length * batch, embed_dim)
    output = F.linear(output, out_proj_weight, out_proj_bias).reshape(target_length, batch, -1)
    if not need_weights:
        return (output if batched else output.squeeze(1)), None
    weights = weights.reshape(batch, num_heads, target_length, source_length)
    if average_attn_weights:
        weights = weights.mean(1)
    return (output, weights) if batched else (output.squeeze(1), weights.squeeze(0))


class MultiheadAttention(Module):
    """Multi-head attention, ``torch.nn.MultiheadAttention``'s arguments and parameters
    (``in_proj_weight`` and ``in_proj_bias``, or ``q_proj_weight`` / ``k_proj_weight`` /
    ``v_proj_weight`` when ``kdim`` or ``vdim`` differ from ``embed_dim``; ``out_proj``, a
    Linear; ``bias_k`` / ``bias_v`` with ``add_bias_kv``), so its state dicts load strictly.
    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights or None)``; see
    `multi_head_attention_forward` for the shapes (``batch_first``: (N, L, E) inputs).
    Example: ``out, _ = nn.MultiheadAttention(16, 4, batch_first=True)(x, x, x, need_weights=False)``."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise MetajitValueError(f"MultiheadAttention: embed_dim {embed_dim} must be positive and divisible by "
                                    f"num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        if self._qkv_same_embed_dim:
            self.in_proj_weight = init.xavier_uniform_(creation.empty(3 * embed_dim, embed_dim))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = init.xavier_uniform_(creation.empty(embed_dim, embed_dim))
            self.k_proj_weight = init.xavier_uniform_(creation.empty(embed_dim, self.kdim))
            self.v_proj_weight = init.xavier_uniform_(creation.empty(embed_dim, self.vdim))
        self.in_proj_bias = creation.zeros(3 * embed_dim) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)
        if add_bias_kv:
            self.bias_k = init.xavier_normal_(creation.empty(1, 1, embed_dim))
            self.bias_v = init.xavier_normal_(creation.empty(1, 1, embed_dim))
        else:
            self.bias_k = self.bias_v = None

    def execute(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        query, key, value = _var(query), _var(key), _var(value)
        batched = query.ndim == 3
        if self.batch_first and batched:
            swapped = {}  # one transpose per distinct input, so self-attention stays one projection
            query, key, value = (swapped.setdefault(id(x), x.transpose(1, 0)) for x in (query, key, value))
        separate = not self._qkv_same_embed_dim
        output, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=separate, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first and batched:
            output = output.transpose(1, 0)
        return output, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
