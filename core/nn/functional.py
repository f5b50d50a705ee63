"""Functional forms of activations, embeddings and linear maps (``jt.nn.functional`` /
``F``), all meta-op compositions, so they fuse and differentiate like everything else;
``F`` also re-exports the losses, distances, dropouts, normalisations, convolutions and
pooling defined beside their modules.

The activations take PyTorch's ``inplace`` and ignore it, as the dropouts and the
activation modules do: the result is a new Var and the input keeps its value
(``x = F.relu(x, inplace=True)`` works as in PyTorch). The in-place forms ``F.relu_(x)``,
``F.elu_`` ... rebind ``x`` to the result, as ``x.relu_()`` does."""
import math

from ..ir import dtypes
from ..errors import MetajitIndexError, MetajitShapeError, MetajitValueError
from ..ir.graph import index_leaf
from .. import math_ops
from ..math_ops import as_node, binary, cast, unary, where, wrap
from ..var import Var


def _var(x):
    return x if isinstance(x, Var) else wrap(as_node(x))


def relu(x, inplace=False):
    """``max(x, 0)`` (`metajit.relu`: gradient 0 at 0, as PyTorch's); in inference, a ReLU
    right after a biased convolution runs as that convolution's post-op
    (`conv.relu_folded`)."""
    folded = relu_folded(x)
    return folded if folded is not None else math_ops.relu(x)


def relu6(x, inplace=False):
    """``min(max(x, 0), 6)``; gradient 1 strictly between 0 and 6, as PyTorch; in inference,
    right after a biased convolution, that convolution's post-op (`conv.relu6_folded`)."""
    folded = relu6_folded(x)
    return folded if folded is not None else binary("minimum", relu(x), 6.0)


def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    """``x`` clipped to ``[min_val, max_val]`` (nan stays nan); gradient 1 strictly inside, as PyTorch."""
    x = _var(x)
    inside = where(binary("ge", x, max_val), cast(max_val, x.dtype), x)
    return where(binary("le", x, min_val), cast(min_val, x.dtype), inside)


def hardsigmoid(x, inplace=False):
    """``relu6(x + 3) / 6``; gradient 1/6 strictly between -3 and 3, as PyTorch."""
    x = _var(x)
    return hardtanh(binary("add", binary("div", x, 6.0), 0.5), 0.0, 1.0)


def hardswish(x, inplace=False):
    """``x * relu6(x + 3) / 6``; gradient ``x / 3 + 1/2`` strictly between -3 and 3, as PyTorch."""
    x = _var(x)
    middle = binary("div", binary("mul", x, binary("add", x, 3.0)), 6.0)
    return where(binary("le", x, -3.0), binary("mul", x, 0.0), where(binary("ge", x, 3.0), x, middle))


def leaky_relu(x, negative_slope=0.01, inplace=False):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return where(binary("gt", x, 0.0), x, binary("mul", x, negative_slope))


def prelu(input, weight):
    """``x`` where positive, ``weight * x`` elsewhere: one weight, or one per channel (dim 1
    of an input of 2 or more dims), as ``torch.nn.functional.prelu``.

    Example: ``F.prelu(x, jt.array([0.25]))``."""
    x, weight = _var(input), _var(weight)
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.numel() not in (1, channels):
        raise MetajitShapeError(f"prelu: {weight.numel()} weights for input shape {tuple(x.shape)}; give one "
                                f"weight, or one per channel (dim 1)")
    if weight.numel() > 1:
        weight = weight.reshape([-1] + [1] * (x.ndim - 2))
    return where(binary("gt", x, 0.0), x, binary("mul", x, weight))


def sigmoid(input):
    """``1 / (1 + exp(-x))``. Example: ``F.sigmoid(jt.array([0.0]))`` is 0.5."""
    return unary("sigmoid", input)


def tanh(input):
    """Hyperbolic tangent. Example: ``F.tanh(jt.array([0.0]))`` is 0."""
    return unary("tanh", input)


def _non_positive_part(x, positive):
    """``x`` where not ``positive``, else 0: the argument of a negative-side branch, so
    that its unused values (``exp`` of a large ``x``) never overflow into nan gradients."""
    return where(positive, binary("mul", x, 0.0), x)


def elu(x, alpha=1.0, inplace=False):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    positive = binary("gt", x, 0.0)
    negative = binary("mul", unary("expm1", _non_positive_part(x, positive)), alpha)
    return where(positive, x, negative)


def gelu(x, approximate="none"):
    """Gaussian error linear unit; ``approximate="tanh"`` uses the tanh formula."""
    if approximate == "tanh":
        inner = binary("mul", binary("add", x, binary("mul", binary("pow", x, 3.0), 0.044715)),
                       math.sqrt(2.0 / math.pi))
        return binary("mul", binary("mul", x, 0.5), binary("add", unary("tanh", inner), 1.0))
    return binary("mul", binary("mul", x, 0.5),
                  binary("add", unary("erf", binary("mul", x, 1.0 / math.sqrt(2.0))), 1.0))


def silu(x, inplace=False):
    """``x * sigmoid(x)``."""
    return binary("mul", x, unary("sigmoid", x))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x, inplace=False):
    """Self-normalising ELU: ``scale * elu(x, alpha)`` with PyTorch's constants."""
    return binary("mul", elu(x, SELU_ALPHA), SELU_SCALE)


def celu(x, alpha=1.0, inplace=False):
    """``x`` where positive, ``alpha * (exp(x / alpha) - 1)`` elsewhere."""
    if alpha == 0:
        raise MetajitValueError("celu: alpha must not be 0")
    positive = binary("gt", x, 0.0)
    negative = binary("mul", unary("expm1", binary("div", _non_positive_part(x, positive), alpha)), alpha)
    return where(positive, x, negative)


def softsign(x):
    """``x / (1 + |x|)``."""
    return binary("div", x, binary("add", unary("abs", x), 1.0))


def tanhshrink(x):
    """``x - tanh(x)``."""
    return binary("sub", x, unary("tanh", x))


def threshold(x, threshold, value, inplace=False):
    """``x`` where above ``threshold``, else ``value`` (PyTorch's ``F.threshold``)."""
    x = _var(x)
    return where(binary("gt", x, threshold), x, cast(value, x.dtype))


def hardshrink(x, lambd=0.5):
    """``x`` where ``|x| > lambd``, else 0."""
    x = _var(x)
    return where(binary("gt", unary("abs", x), lambd), x, binary("mul", x, 0.0))


def softshrink(x, lambd=0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise MetajitValueError(f"softshrink: lambd must be >= 0, got {lambd}")
    x = _var(x)
    return where(binary("gt", x, lambd), binary("sub", x, lambd),
                 where(binary("lt", x, -lambd), binary("add", x, lambd), binary("mul", x, 0.0)))


def logsigmoid(x):
    """``log(sigmoid(x))``, stable for large ``|x|``: ``-log(1 + exp(-x))``."""
    return unary("neg", _log1p_exp(unary("neg", x)))


def softmin(x, dim=-1, *, dtype=None):
    """``softmax(-x)`` along ``dim`` (``dtype``: ``x`` converted to it first, as PyTorch's)."""
    return softmax(unary("neg", _in_dtype(x, dtype)), dim)


def glu(x, dim=-1):
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second half."""
    x = _var(x)
    if x.shape[dim] % 2:
        raise MetajitShapeError(f"glu: dim {dim} of {x.shape} must have an even size")
    first, second = x.chunk(2, dim)
    return binary("mul", first, unary("sigmoid", second))


def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomised leaky ReLU: negative inputs scaled by a slope drawn uniformly from
    ``[lower, upper]`` per element when training, by their mean otherwise."""
    x = _var(x)
    if training:
        from ..creation import rand
        slope = binary("add", binary("mul", rand(*x.shape), upper - lower), lower)
    else:
        slope = (lower + upper) / 2
    return where(binary("ge", x, 0.0), x, binary("mul", x, slope))


def softplus(x, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (as PyTorch)."""
    scaled = binary("mul", x, beta)
    soft = binary("div", _log1p_exp(scaled), beta)
    return where(binary("gt", scaled, threshold), x, soft)


def _log1p_exp(x):
    """Stable ``log(1 + exp(x))``: ``x + log1p(exp(-x))`` above 0, ``log1p(exp(x))``
    elsewhere, so no ``exp`` overflows (softplus(-20) is 2.06e-9, not 0) and the gradient
    is ``sigmoid(x)`` everywhere, 1/2 at 0 as PyTorch's."""
    negative_part = _non_positive_part(x, binary("gt", x, 0.0))
    positive_part = binary("sub", x, negative_part)
    return binary("add", positive_part, unary("log1p", unary("exp", binary("sub", negative_part, positive_part))))


def mish(x, inplace=False):
    """``x * tanh(softplus(x))``."""
    return binary("mul", x, unary("tanh", softplus(x)))


def _in_dtype(x, dtype):
    """``x`` as a Var, converted to ``dtype`` when given (PyTorch's ``dtype=`` of softmax & co.)."""
    return _var(x) if dtype is None else cast(x, dtype)


def softmax(x, dim=-1, *, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the max for stability; ``dtype``:
    ``x`` converted to it first, as PyTorch's (``F.softmax(scores, -1, dtype=jt.float32)``)."""
    x = _in_dtype(x, dtype)
    shifted = binary("sub", x, x.max(dim, keepdims=True))
    exponentials = unary("exp", shifted)
    return binary("div", exponentials, exponentials.sum(dim, keepdims=True))


def log_softmax(x, dim=-1, *, dtype=None):
    """``x - logsumexp(x)`` along ``dim`` (``dtype``: ``x`` converted to it first, as PyTorch's)."""
    x = _in_dtype(x, dtype)
    shifted = binary("sub", x, x.max(dim, keepdims=True))
    return binary("sub", shifted, unary("log", unary("exp", shifted).sum(dim, keepdims=True)))


def gumbel_softmax(logits, tau=1, hard=False, eps=1e-10, dim=-1):
    """A sample of the Gumbel-softmax distribution: ``softmax((logits + g) / tau)`` with
    Gumbel(0, 1) noise ``g`` from metajit's random numbers (``jt.set_global_seed`` repeats
    it); ``hard``: the one-hot of its largest entry, with the soft sample's gradient
    (straight through). ``eps`` is unused, as in PyTorch.

    Example: ``F.gumbel_softmax(logits, tau=0.5, hard=True)`` is one-hot along the last dim."""
    from ..creation import rand
    logits = _var(logits)
    exponential = unary("neg", unary("log1p", unary("neg", rand(*logits.shape, dtype=logits.dtype))))
    noise = unary("neg", unary("log", binary("maximum", exponential, float(dtypes.finfo(logits.dtype).tiny))))
    soft = softmax(binary("div", binary("add", logits, noise), tau), dim)
    if not hard:
        return soft
    largest = soft.argmax(dim, keepdims=True)[0]
    positions = wrap(index_leaf(soft.shape, dim % soft.ndim))
    one_hot = cast(binary("eq", positions, largest), soft.dtype)
    return binary("add", binary("sub", one_hot, soft.detach()), soft)


def one_hot(indices, num_classes=-1):
    """int64 one-hot rows of integer ``indices`` (a new last axis of ``num_classes``; -1:
    the largest index plus one, which reads the values)."""
    from ..creation import arange
    indices = _var(indices)
    if num_classes < 0:
        num_classes = int(indices.max().item()) + 1
    classes = arange(num_classes).reshape((1,) * indices.ndim + (num_classes,))
    return cast(binary("eq", indices.unsqueeze(-1), classes), "int64")


def normalize(x, p=2.0, dim=1, eps=1e-12):
    """``x`` divided by its ``p``-norm along ``dim`` (at least ``eps``), as PyTorch's."""
    from ..reductions import norm
    x = _var(x)
    return binary("div", x, binary("maximum", norm(x, p, dim, keepdim=True), eps))


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``."""
    result = _var(x) @ _var(weight).transpose()
    return result if bias is None else binary("add", result, bias)


def bilinear(input1, input2, weight, bias=None):
    """``y[..., o] = sum_ij x1[..., i] weight[o, i, j] x2[..., j] + bias[o]``, as
    ``torch.nn.functional.bilinear``: inputs (..., in1) and (..., in2), ``weight``
    (out, in1, in2). Example: ``F.bilinear(a, b, jt.randn(5, 3, 4))`` for (N, 3) ``a`` and (N, 4) ``b``."""
    x1, x2, weight = _var(input1), _var(input2), _var(weight)
    out_features, in1, in2 = weight.shape
    leading = tuple(x1.shape[:-1])
    if x1.shape[-1] != in1 or x2.shape[-1] != in2 or tuple(x2.shape[:-1]) != leading:
        raise MetajitShapeError(f"bilinear: inputs of shapes {tuple(x1.shape)} and {tuple(x2.shape)} do not fit weight "
                                f"shape {tuple(weight.shape)}; expected (..., {in1}) and (..., {in2})")
    rows = math.prod(leading)
    projected = (x1.reshape(rows, in1) @ weight.permute(1, 0, 2).reshape(in1, out_features * in2))
    result = binary("mul", projected.reshape(rows, out_features, in2), x2.reshape(rows, 1, in2)).sum(2)
    result = result.reshape(leading + (out_features,))
    return result if bias is None else binary("add", result, bias)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """The rows of ``weight`` at the integer ``input`` indices, as
    ``torch.nn.functional.embedding``: ``padding_idx``'s row gets no gradient; ``max_norm``
    first rescales, in place, the looked-up rows whose ``norm_type``-norm exceeds it;
    ``scale_grad_by_freq`` divides each row's gradient by its count in ``input``. The
    gradient is dense (``sparse`` is accepted).

    Example: ``F.embedding(tokens, table, padding_idx=0)``."""
    indices, weight = _var(input), _var(weight)
    count = weight.shape[0]
    if padding_idx is not None:
        if not -count <= padding_idx < count:
            raise MetajitIndexError(f"embedding: padding_idx {padding_idx} is out of range for {count} embeddings; "
                                    f"give one in [-{count}, {count})")
        padding_idx %= count
    if max_norm is not None:
        _renormalise_rows(weight, indices, max_norm, norm_type)
    rows = weight[indices]
    if scale_grad_by_freq:
        from ..creation import zeros
        frequency = zeros(count, dtype=weight.dtype).scatter_add(0, indices.flatten(), 1.0)[indices]
        detached = rows.detach()
        rows = binary("add", detached, binary("div", binary("sub", rows, detached), frequency.unsqueeze(-1)))
    if padding_idx is not None:
        rows = where(binary("eq", indices, padding_idx).unsqueeze(-1), rows.detach(), rows)
    return rows


def _renormalise_rows(weight, indices, max_norm, norm_type):
    """Scale the rows of ``weight`` at ``indices`` whose norm exceeds ``max_norm`` down to
    it, in place and without gradient history (PyTorch's ``embedding_renorm_``)."""
    from ..creation import zeros
    from ..flags import no_grad
    from ..reductions import norm
    with no_grad():
        looked_up = binary("gt", zeros(weight.shape[0]).scatter(0, indices.flatten(), 1.0), 0.0)
        lengths = norm(weight, norm_type, 1)
        scale = where(binary("logical_and", looked_up, binary("gt", lengths, max_norm)),
                      binary("div", max_norm, binary("add", lengths, 1e-7)), 1.0)
        weight.assign(binary("mul", weight, scale.unsqueeze(1)))


def channel_shuffle(x, groups):
    """Interleave the channels (dim 1) of ``groups`` equal groups: channel ``g * per_group + i``
    moves to ``i * groups + g`` (ShuffleNet's shuffle, ``torch.nn.functional.channel_shuffle``)."""
    x = _var(x)
    if x.ndim < 3 or x.shape[1] % groups:
        raise MetajitShapeError(f"channel_shuffle: {groups} groups do not split the channels of shape {x.shape}")
    batch, channels = x.shape[:2]
    grouped = x.reshape((batch, groups, channels // groups) + tuple(x.shape[2:]))
    return grouped.transpose(1, 2).reshape(x.shape)


def _rebinding(function):
    """PyTorch's in-place ``F.<function>_(x, ...)``: ``x`` rebound to ``function(x, ...)``."""
    def in_place(x, *args, **kwargs):
        return x._replace(function(x, *args, **kwargs)._node)
    in_place.__name__ = function.__name__ + "_"
    in_place.__doc__ = f"``x`` rebound to ``{function.__name__}(x, ...)`` (PyTorch's in-place form); returns ``x``."
    return in_place


relu_, elu_, leaky_relu_, hardtanh_, threshold_, celu_, selu_, rrelu_ = (
    _rebinding(function) for function in (relu, elu, leaky_relu, hardtanh, threshold, celu, selu, rrelu))


# PyTorch's ``F`` also holds the functional forms defined beside their layers
from .distance import cosine_similarity, pairwise_distance, pdist  # noqa: E402
from .ctc_loss import ctc_loss  # noqa: E402
from .embedding_bag import embedding_bag  # noqa: E402
from .dropout import alpha_dropout, dropout, dropout1d, dropout2d, dropout3d, feature_alpha_dropout  # noqa: E402
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss,  # noqa: E402
                     cross_entropy, gaussian_nll_loss, hinge_embedding_loss, huber_loss, kl_div, l1_loss,
                     margin_ranking_loss, mse_loss, multi_margin_loss, multilabel_margin_loss,
                     multilabel_soft_margin_loss, nll_loss, poisson_nll_loss, smooth_l1_loss, soft_margin_loss,
                     triplet_margin_loss, triplet_margin_with_distance_loss)
from .normalization import (batch_norm, group_norm, instance_norm, layer_norm, local_response_norm,  # noqa: E402
                            rms_norm)
from .conv import conv1d, conv2d, conv_transpose2d, relu6_folded, relu_folded  # noqa: E402
from .grid_sample import affine_grid, grid_sample  # noqa: E402
from .pooling import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d  # noqa: E402
from .resampling import interpolate  # noqa: E402
from .unfold import fold, unfold  # noqa: E402
from ..shape_ops import pad  # noqa: E402
from ..tensor_ops import bmm  # noqa: E402
