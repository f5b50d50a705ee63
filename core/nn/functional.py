"""Functional forms of activations and losses (``jt.nn.functional`` / ``F``), all meta-op
compositions, so they fuse and differentiate like everything else."""
import math

from ..ir import dtypes
from ..errors import MetajitIndexError, MetajitShapeError, MetajitValueError
from ..indexing import first_out_of_range, register_range_check
from ..ir.graph import index_leaf
from .. import math_ops
from ..math_ops import as_node, binary, cast, unary, where, wrap
from ..var import Var


def _var(x):
    return x if isinstance(x, Var) else wrap(as_node(x))


def relu(x):
    """``max(x, 0)`` (`metajit.relu`: gradient 0 at 0, as PyTorch's); in inference, a ReLU
    right after a biased convolution runs as that convolution's post-op
    (`conv.relu_folded`)."""
    folded = relu_folded(x)
    return folded if folded is not None else math_ops.relu(x)


def relu6(x):
    """``min(max(x, 0), 6)``; gradient 1 strictly between 0 and 6, as PyTorch; in inference,
    right after a biased convolution, that convolution's post-op (`conv.relu6_folded`)."""
    folded = relu6_folded(x)
    return folded if folded is not None else binary("minimum", relu(x), 6.0)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """``x`` clipped to ``[min_val, max_val]`` (nan stays nan); gradient 1 strictly inside, as PyTorch."""
    x = _var(x)
    inside = where(binary("ge", x, max_val), cast(max_val, x.dtype), x)
    return where(binary("le", x, min_val), cast(min_val, x.dtype), inside)


def hardsigmoid(x):
    """``relu6(x + 3) / 6``; gradient 1/6 strictly between -3 and 3, as PyTorch."""
    x = _var(x)
    return hardtanh(binary("add", binary("div", x, 6.0), 0.5), 0.0, 1.0)


def hardswish(x):
    """``x * relu6(x + 3) / 6``; gradient ``x / 3 + 1/2`` strictly between -3 and 3, as PyTorch."""
    x = _var(x)
    middle = binary("div", binary("mul", x, binary("add", x, 3.0)), 6.0)
    return where(binary("le", x, -3.0), binary("mul", x, 0.0), where(binary("ge", x, 3.0), x, middle))


def leaky_relu(x, negative_slope=0.01):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return where(binary("gt", x, 0.0), x, binary("mul", x, negative_slope))


def _non_positive_part(x, positive):
    """``x`` where not ``positive``, else 0: the argument of a negative-side branch, so
    that its unused values (``exp`` of a large ``x``) never overflow into nan gradients."""
    return where(positive, binary("mul", x, 0.0), x)


def elu(x, alpha=1.0):
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


def silu(x):
    """``x * sigmoid(x)``."""
    return binary("mul", x, unary("sigmoid", x))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """Self-normalising ELU: ``scale * elu(x, alpha)`` with PyTorch's constants."""
    return binary("mul", elu(x, SELU_ALPHA), SELU_SCALE)


def celu(x, alpha=1.0):
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


def threshold(x, threshold, value):
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
    """``log(sigmoid(x))``, stable for large ``|x|``: ``min(x, 0) - log1p(exp(-|x|))``."""
    return binary("sub", binary("minimum", x, 0.0), unary("log1p", unary("exp", unary("neg", unary("abs", x)))))


def softmin(x, dim=-1):
    """``softmax(-x)`` along ``dim``."""
    return softmax(unary("neg", x), dim)


def glu(x, dim=-1):
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second half."""
    x = _var(x)
    if x.shape[dim] % 2:
        raise MetajitShapeError(f"glu: dim {dim} of {x.shape} must have an even size")
    first, second = x.chunk(2, dim)
    return binary("mul", first, unary("sigmoid", second))


def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False):
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
    """Stable ``log(1 + exp(x))``: ``relu(x) + log1p(exp(-|x|))`` (softplus(-20) is 2.06e-9,
    not 0)."""
    return binary("add", relu(x), unary("log1p", unary("exp", unary("neg", unary("abs", x)))))


def mish(x):
    """``x * tanh(softplus(x))``."""
    return binary("mul", x, unary("tanh", softplus(x)))


def softmax(x, dim=-1):
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the max for stability."""
    x = _var(x)
    shifted = binary("sub", x, x.max(dim, keepdims=True))
    exponentials = unary("exp", shifted)
    return binary("div", exponentials, exponentials.sum(dim, keepdims=True))


def log_softmax(x, dim=-1):
    """``x - logsumexp(x)`` along ``dim``."""
    x = _var(x)
    shifted = binary("sub", x, x.max(dim, keepdims=True))
    return binary("sub", shifted, unary("log", unary("exp", shifted).sum(dim, keepdims=True)))


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise MetajitValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(name, output, target):
    if output.shape != target.shape:
        raise MetajitShapeError(f"{name}: output shape {output.shape} and target shape "
                                f"{target.shape} differ")


def mse_loss(output, target, reduction="mean"):
    """Mean squared error."""
    output, target = _var(output), _var(target)
    _same_shape("mse_loss", output, target)
    difference = binary("sub", output, target)
    return _reduce(binary("mul", difference, difference), reduction)


def l1_loss(output, target, reduction="mean"):
    """Mean absolute error."""
    output, target = _var(output), _var(target)
    _same_shape("l1_loss", output, target)
    return _reduce(unary("abs", binary("sub", output, target)), reduction)


def smooth_l1_loss(output, target, reduction="mean", beta=1.0):
    """Huber-like: ``0.5 d^2 / beta`` below ``beta``, ``|d| - 0.5 beta`` above."""
    output, target = _var(output), _var(target)
    _same_shape("smooth_l1_loss", output, target)
    distance = unary("abs", binary("sub", output, target))
    quadratic = binary("div", binary("mul", binary("mul", distance, distance), 0.5), beta)
    return _reduce(where(binary("lt", distance, beta), quadratic, binary("sub", distance, 0.5 * beta)),
                   reduction)


def huber_loss(output, target, reduction="mean", delta=1.0):
    """Huber loss: ``0.5 d^2`` below ``delta``, ``delta (|d| - 0.5 delta)`` above (PyTorch's;
    `smooth_l1_loss` divided by ``delta`` is the same curve scaled)."""
    output, target = _var(output), _var(target)
    _same_shape("huber_loss", output, target)
    distance = unary("abs", binary("sub", output, target))
    quadratic = binary("mul", binary("mul", distance, distance), 0.5)
    linear = binary("mul", binary("sub", distance, 0.5 * delta), delta)
    return _reduce(where(binary("lt", distance, delta), quadratic, linear), reduction)


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


def binary_cross_entropy(output, target, weight=None, reduction="mean"):
    """BCE on probabilities; logs are clamped at -100 as in PyTorch."""
    output, target = _var(output), _var(target)
    _same_shape("binary_cross_entropy", output, target)
    log_p = binary("maximum", unary("log", output), -100.0)
    log_q = binary("maximum", unary("log", binary("sub", 1.0, output)), -100.0)
    loss = unary("neg", binary("add", binary("mul", target, log_p),
                               binary("mul", binary("sub", 1.0, target), log_q)))
    if weight is not None:
        loss = binary("mul", loss, weight)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(output, target, weight=None, reduction="mean", pos_weight=None):
    """BCE on logits, computed stably: ``(1 - t) x + (1 + (w - 1) t) log(1 + exp(-x))``."""
    output, target = _var(output), _var(target)
    _same_shape("binary_cross_entropy_with_logits", output, target)
    log_weight = 1.0 if pos_weight is None else binary("add", binary("mul", binary("sub", pos_weight, 1.0),
                                                                     target), 1.0)
    loss = binary("add", binary("mul", binary("sub", 1.0, target), output),
                  binary("mul", log_weight, _log1p_exp(unary("neg", output))))
    if weight is not None:
        loss = binary("mul", loss, weight)
    return _reduce(loss, reduction)


def _pick(log_probabilities, target, ignore_index):
    """``-log_probabilities[n, target[n], ...]`` (class dim 1) and the valid mask."""
    target = _var(target)
    if not dtypes.is_integer(target.dtype):
        raise MetajitValueError(f"class-index targets must be integers, got {target.dtype}")
    expected = log_probabilities.shape[:1] + log_probabilities.shape[2:]
    if target.shape != expected:
        raise MetajitShapeError(f"target shape {target.shape} does not match output shape "
                                f"{log_probabilities.shape} (expected {expected})")
    classes = log_probabilities.shape[1]

    def message(bad):  # a wrong class is an error, not a finite loss
        return f"class index {bad} is out of range for {classes} classes (ignore_index is {ignore_index})"
    host = target._node.host_data
    if host is not None:  # labels still on the host: checked now
        bad = first_out_of_range(host[host != ignore_index], 0, classes)
        if bad is not None:
            raise MetajitIndexError(message(bad))
    positions = wrap(index_leaf(log_probabilities.shape, 1))
    one_hot = binary("eq", positions, target.unsqueeze(1))
    picked = unary("neg", where(one_hot, log_probabilities, 0.0).sum(1))
    valid = binary("ne", target, ignore_index)
    if host is None:  # labels computed on the device: checked when the loss or its gradient is
        register_range_check(one_hot._node, where(valid, target, 0)._node, 0, classes, message)
    return where(valid, picked, 0.0), valid


def _class_weighted(loss, valid, target, weight, dtype):
    """Per-sample ``loss`` scaled by the target class's weight, and the weights counted
    (zero where ignored): the numerator and denominator of PyTorch's weighted mean."""
    counted = cast(valid, dtype)
    if weight is None:
        return loss, counted
    target_weight = _var(weight)[where(valid, target, 0)]
    return binary("mul", loss, target_weight), binary("mul", counted, target_weight)


def _finish(loss, counted, reduction):
    if reduction == "mean":
        return binary("div", loss.sum(), counted.sum())
    return _reduce(loss, reduction)


def nll_loss(output, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log likelihood of class indices ``target`` under log-probabilities ``output``,
    with optional per-class ``weight`` (the mean divides by the summed weights)."""
    output, target = _var(output), _var(target)
    loss, valid = _pick(output, target, ignore_index)
    return _finish(*_class_weighted(loss, valid, target, weight, output.dtype), reduction)


def cross_entropy(output, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy over dim 1 with class-index or probability targets, per-class
    ``weight``, ``ignore_index`` and label smoothing, as ``torch.nn.functional.cross_entropy``."""
    output = _var(output)
    log_probabilities = log_softmax(output, 1)
    target = _var(target)
    classes = output.shape[1]
    class_shape = [1, classes] + [1] * (output.ndim - 2)
    if dtypes.is_float(target.dtype):
        _same_shape("cross_entropy", output, target)
        smoothed = binary("add", binary("mul", target, 1.0 - label_smoothing), label_smoothing / classes)
        if weight is not None:
            smoothed = binary("mul", smoothed, _var(weight).reshape(class_shape))
        return _reduce(unary("neg", binary("mul", log_probabilities, smoothed).sum(1)), reduction)
    loss, valid = _pick(log_probabilities, target, ignore_index)
    loss, counted = _class_weighted(loss, valid, target, weight, output.dtype)
    if label_smoothing:
        per_class = log_probabilities if weight is None else binary(
            "mul", log_probabilities, _var(weight).reshape(class_shape))
        uniform = where(valid, unary("neg", per_class.sum(1)), 0.0)
        loss = binary("add", binary("mul", loss, 1.0 - label_smoothing),
                      binary("mul", uniform, label_smoothing / classes))
    return _finish(loss, counted, reduction)


def kl_div(output, target, reduction="mean", log_target=False):
    """KL divergence with ``output`` as log-probabilities (PyTorch's argument order)."""
    output, target = _var(output), _var(target)
    if log_target:
        loss = binary("mul", unary("exp", target), binary("sub", target, output))
    else:
        safe = where(binary("gt", target, 0.0), target, 1.0)
        loss = where(binary("gt", target, 0.0), binary("mul", target, binary("sub", unary("log", safe), output)), 0.0)
    if reduction == "batchmean":
        return binary("div", loss.sum(), output.shape[0])
    return _reduce(loss, reduction)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``."""
    result = _var(x) @ _var(weight).transpose()
    return result if bias is None else binary("add", result, bias)


def channel_shuffle(x, groups):
    """Interleave the channels (dim 1) of ``groups`` equal groups: channel ``g * per_group + i``
    moves to ``i * groups + g`` (ShuffleNet's shuffle, ``torch.nn.functional.channel_shuffle``)."""
    x = _var(x)
    if x.ndim < 3 or x.shape[1] % groups:
        raise MetajitShapeError(f"channel_shuffle: {groups} groups do not split the channels of shape {x.shape}")
    batch, channels = x.shape[:2]
    grouped = x.reshape((batch, groups, channels // groups) + tuple(x.shape[2:]))
    return grouped.transpose(1, 2).reshape(x.shape)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` when training."""
    if not training or p == 0:
        return x
    if not 0 <= p < 1:
        raise MetajitValueError(f"dropout probability must be in [0, 1), got {p}")
    from ..creation import rand
    keep = binary("ge", rand(*_var(x).shape), p)
    return where(keep, binary("mul", x, 1.0 / (1.0 - p)), 0.0)


# PyTorch's ``F`` also holds the functional forms defined beside their layers
from .conv import conv1d, conv2d, conv_transpose2d, relu6_folded, relu_folded  # noqa: E402
from .grid_sample import affine_grid, grid_sample  # noqa: E402
from .pooling import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d  # noqa: E402
from .resampling import interpolate  # noqa: E402
from .unfold import fold, unfold  # noqa: E402
from ..shape_ops import pad  # noqa: E402
from ..tensor_ops import bmm  # noqa: E402
