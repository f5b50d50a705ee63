"""Loss functions (``F.mse_loss`` ... ``F.triplet_margin_loss``) and their modules
(``nn.MSELoss`` ...), as PyTorch's: the same arguments, defaults and reductions, the
deprecated ``size_average`` / ``reduce`` flags included; all meta-op compositions."""
import math

from .. import creation
from ..errors import MetajitIndexError, MetajitShapeError, MetajitValueError
from ..indexing import first_out_of_range, register_range_check
from ..ir import dtypes
from ..ir.graph import index_leaf
from ..math_ops import binary, cast, unary, where, wrap
from ..function import Function
from .distance import pairwise_distance
from .functional import _log1p_exp, _var, log_softmax, logsigmoid, relu
from .module import functional_module


def _reduction(reduction, size_average, reduce):
    """``reduction``, unless PyTorch's deprecated flags are given: ``reduce=False`` is
    ``"none"``, else ``size_average=False`` is ``"sum"``, else ``"mean"``."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise MetajitValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _weighted_reduce(loss, weight, reduction, weighted_mean):
    """``loss * weight`` (``weight`` of the loss's shape) reduced; ``weighted_mean``: the mean
    divides by the summed weights (PyTorch's `mse_loss`, `l1_loss`), else by the count."""
    if weight is None:
        return _reduce(loss, reduction)
    weight = _var(weight)
    if weight.shape != loss.shape:
        raise MetajitShapeError(f"weight shape {tuple(weight.shape)} differs from the input shape "
                                f"{tuple(loss.shape)}; pass one weight per element")
    loss = binary("mul", loss, weight)
    if reduction == "mean" and weighted_mean:
        return binary("div", loss.sum(), weight.sum())
    return _reduce(loss, reduction)


def _same_shape(name, output, target):
    if output.shape != target.shape:
        raise MetajitShapeError(f"{name}: output shape {output.shape} and target shape "
                                f"{target.shape} differ")


def _clamp_min_zero(x):
    """``max(x, 0)`` with gradient 1 at 0, as PyTorch's ``clamp_min`` in its hinge losses."""
    return where(binary("ge", x, 0.0), x, 0.0)


def mse_loss(output, target, reduction="mean", size_average=None, reduce=None, weight=None):
    """Mean squared error; ``weight`` (one per element) makes the mean a weighted mean.

    Example: ``F.mse_loss(prediction, target, reduction="sum")``."""
    output, target = _var(output), _var(target)
    _same_shape("mse_loss", output, target)
    difference = binary("sub", output, target)
    return _weighted_reduce(binary("mul", difference, difference), weight,
                            _reduction(reduction, size_average, reduce), True)


def l1_loss(output, target, reduction="mean", size_average=None, reduce=None, weight=None):
    """Mean absolute error; ``weight`` (one per element) makes the mean a weighted mean.

    Example: ``F.l1_loss(prediction, target)``."""
    output, target = _var(output), _var(target)
    _same_shape("l1_loss", output, target)
    return _weighted_reduce(unary("abs", binary("sub", output, target)), weight,
                            _reduction(reduction, size_average, reduce), True)


def smooth_l1_loss(output, target, reduction="mean", beta=1.0, size_average=None, reduce=None):
    """Huber-like: ``0.5 d^2 / beta`` below ``beta``, ``|d| - 0.5 beta`` above (``beta=0``:
    the L1 loss). Example: ``F.smooth_l1_loss(boxes, targets, beta=1 / 9)``."""
    if beta < 0:
        raise MetajitValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    output, target = _var(output), _var(target)
    _same_shape("smooth_l1_loss", output, target)
    distance = unary("abs", binary("sub", output, target))
    if beta:
        quadratic = binary("div", binary("mul", binary("mul", distance, distance), 0.5), beta)
        distance = where(binary("lt", distance, beta), quadratic, binary("sub", distance, 0.5 * beta))
    return _reduce(distance, _reduction(reduction, size_average, reduce))


def huber_loss(output, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss: ``0.5 d^2`` below ``delta``, ``delta (|d| - 0.5 delta)`` above (PyTorch's;
    `smooth_l1_loss` divided by ``delta`` is the same curve scaled); ``weight`` (one per
    element) scales each term, the mean still divides by the count, as PyTorch.

    Example: ``F.huber_loss(prediction, target, delta=2.0)``."""
    output, target = _var(output), _var(target)
    _same_shape("huber_loss", output, target)
    distance = unary("abs", binary("sub", output, target))
    quadratic = binary("mul", binary("mul", distance, distance), 0.5)
    linear = binary("mul", binary("sub", distance, 0.5 * delta), delta)
    return _weighted_reduce(where(binary("lt", distance, delta), quadratic, linear), weight, reduction, False)


def _clamped_logs(p):
    """``log p`` and ``log (1 - p)``, each at least -100 (PyTorch's BCE clamp)."""
    return (binary("maximum", unary("log", p), -100.0),
            binary("maximum", unary("log", binary("sub", 1.0, p)), -100.0))


class _BinaryCrossEntropy(Function):
    """Element-wise BCE with PyTorch's gradient ``(p - t) / max(p (1 - p), 1e-12)``: finite
    at a saturated probability (exactly 0 or 1), where the clamped logs' own derivative is
    nan (0 times infinity), and written with ops, so it can be differentiated again."""

    def execute(self, p, t):
        self.p, self.t = p, t
        log_p, log_q = _clamped_logs(p)
        return unary("neg", binary("add", binary("mul", t, log_p), binary("mul", binary("sub", 1.0, t), log_q)))

    def grad(self, grad_output):
        p, t = self.p, self.t
        slope = binary("div", binary("sub", p, t),
                       binary("maximum", binary("mul", p, binary("sub", 1.0, p)), 1e-12))
        # the target's, as torch's, is not clamped: infinite at a saturated probability
        log_odds = binary("sub", unary("log1p", unary("neg", p)), unary("log", p))
        return binary("mul", grad_output, slope), binary("mul", grad_output, log_odds)


def binary_cross_entropy(output, target, weight=None, reduction="mean", size_average=None, reduce=None):
    """BCE on probabilities; logs are clamped at -100 and the gradient is PyTorch's (finite
    at probabilities of exactly 0 or 1).

    Example: ``F.binary_cross_entropy(x.sigmoid(), labels)``."""
    output, target = _var(output), _var(target)
    _same_shape("binary_cross_entropy", output, target)
    loss = _BinaryCrossEntropy()(output, target)
    if weight is not None:
        loss = binary("mul", loss, weight)
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def binary_cross_entropy_with_logits(output, target, weight=None, reduction="mean", pos_weight=None,
                                     size_average=None, reduce=None):
    """BCE on logits, computed stably: ``(1 - t) x + (1 + (w - 1) t) log(1 + exp(-x))``.

    Example: ``F.binary_cross_entropy_with_logits(logits, labels, pos_weight=ratio)``."""
    output, target = _var(output), _var(target)
    _same_shape("binary_cross_entropy_with_logits", output, target)
    log_weight = 1.0 if pos_weight is None else binary("add", binary("mul", binary("sub", pos_weight, 1.0),
                                                                     target), 1.0)
    loss = binary("add", binary("mul", binary("sub", 1.0, target), output),
                  binary("mul", log_weight, _log1p_exp(unary("neg", output))))
    if weight is not None:
        loss = binary("mul", loss, weight)
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def _target_mask(scores, target, ignore_index=None):
    """Bool mask shaped as ``scores`` (class dim 1) of each sample's class in the integer
    class-index ``target`` (``scores``' shape less dim 1); a class outside ``[0, C)``
    (``ignore_index`` excepted) raises (`_check_range`)."""
    if not dtypes.is_integer(target.dtype):
        raise MetajitValueError(f"class-index targets must be integers, got {target.dtype}")
    expected = scores.shape[:1] + scores.shape[2:]
    if target.shape != expected:
        raise MetajitShapeError(f"target shape {target.shape} does not match output shape "
                                f"{scores.shape} (expected {expected})")
    classes = scores.shape[1]

    def message(bad):  # a wrong class is an error, not a finite loss
        ignored = "" if ignore_index is None else f" (ignore_index is {ignore_index})"
        return f"class index {bad} is out of range for {classes} classes{ignored}; targets must lie in [0, {classes})"
    mask = binary("eq", wrap(index_leaf(scores.shape, 1)), target.unsqueeze(1))
    _check_range(target, 0, classes, mask, message, ignore_index)
    return mask


def _check_range(target, low, high, guarded, message, ignore_index=None):
    """Raise `MetajitIndexError` with ``message(value)`` for a value of the integer
    ``target`` outside ``[low, high)`` (``ignore_index`` excepted): now when the values are
    on the host, else when ``guarded`` (computed from them) is."""
    host = target._node.host_data
    if host is None:
        if ignore_index is not None:
            target = where(binary("ne", target, ignore_index), target, low)
        register_range_check(guarded._node, target._node, low, high, message)
        return
    bad = first_out_of_range(host if ignore_index is None else host[host != ignore_index], low, high)
    if bad is not None:
        raise MetajitIndexError(message(bad))


def _pick(log_probabilities, target, ignore_index):
    """``-log_probabilities[n, target[n], ...]`` (class dim 1) and the valid mask."""
    target = _var(target)
    mask = _target_mask(log_probabilities, target, ignore_index)
    picked = unary("neg", where(mask, log_probabilities, 0.0).sum(1))
    valid = binary("ne", target, ignore_index)
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


def _one_sample(function, scores, target, reduction, *args, **kwargs):
    """``function`` of one unbatched sample (``scores`` with no batch dim) as a batch of one."""
    loss = function(scores.unsqueeze(0), _var(target).unsqueeze(0), *args, reduction=reduction, **kwargs)
    return loss.squeeze(0) if reduction == "none" else loss


def nll_loss(output, target, weight=None, ignore_index=-100, reduction="mean", size_average=None, reduce=None):
    """Negative log likelihood of class indices ``target`` (N, ...) under log-probabilities
    ``output`` (N, C, ...) or (C,), with optional per-class ``weight`` (the mean divides by
    the summed weights) and ``ignore_index``.

    Example: ``F.nll_loss(F.log_softmax(logits, 1), labels)``."""
    output, target = _var(output), _var(target)
    reduction = _reduction(reduction, size_average, reduce)
    if output.ndim == 1:
        return _one_sample(nll_loss, output, target, reduction, weight, ignore_index)
    loss, valid = _pick(output, target, ignore_index)
    return _finish(*_class_weighted(loss, valid, target, weight, output.dtype), reduction)


def cross_entropy(output, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  size_average=None, reduce=None):
    """Softmax cross-entropy over dim 1 (dim 0 of an unbatched (C,) ``output``) with
    class-index or probability targets, per-class ``weight``, ``ignore_index`` and label
    smoothing, as ``torch.nn.functional.cross_entropy``.

    Example: ``F.cross_entropy(logits, labels, label_smoothing=0.1)``."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise MetajitValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    output, target = _var(output), _var(target)
    reduction = _reduction(reduction, size_average, reduce)
    if output.ndim == 1:
        return _one_sample(cross_entropy, output, target, reduction, weight, ignore_index,
                           label_smoothing=label_smoothing)
    log_probabilities = log_softmax(output, 1)
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


def kl_div(output, target, reduction="mean", log_target=False, size_average=None, reduce=None):
    """KL divergence with ``output`` as log-probabilities (PyTorch's argument order);
    ``reduction="batchmean"`` divides the sum by the batch size, the true KL divergence.

    Example: ``F.kl_div(F.log_softmax(student, 1), F.softmax(teacher, 1), reduction="batchmean")``."""
    output, target = _var(output), _var(target)
    if log_target:
        loss = binary("mul", unary("exp", target), binary("sub", target, output))
    else:
        zero = binary("eq", target, 0.0)  # contributes 0; a negative target gives nan, as torch's
        safe = where(zero, 1.0, target)
        loss = where(zero, 0.0, binary("mul", target, binary("sub", unary("log", safe), output)))
    reduction = _reduction(reduction, size_average, reduce)
    if reduction == "batchmean":
        return binary("div", loss.sum(), output.shape[0] if output.ndim else 1)
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``1 - cos(x1, x2)`` where ``target`` is 1, ``max(0, cos(x1, x2) - margin)`` where it
    is -1: rows of (N, D) inputs with an (N,) target, or (D,) inputs with a 0-d target.

    Example: ``F.cosine_embedding_loss(a, b, jt.array([1, -1]))``."""
    input1, input2, target = _var(input1), _var(input2), _var(target)
    if target.ndim > 1 or input1.ndim != target.ndim + 1 or input2.ndim != target.ndim + 1:
        raise MetajitShapeError(f"cosine_embedding_loss: expected (N, D) inputs and an (N,) target, or (D,) inputs "
                                f"and a 0-d target; got shapes {tuple(input1.shape)}, {tuple(input2.shape)} and "
                                f"{tuple(target.shape)}")
    dim = target.ndim
    magnitudes = binary("mul", binary("add", binary("mul", input1, input1).sum(dim), 1e-12),
                        binary("add", binary("mul", input2, input2).sum(dim), 1e-12))
    cosine = binary("div", binary("mul", input1, input2).sum(dim), unary("sqrt", magnitudes))
    loss = binary("add", where(binary("eq", target, 1), binary("sub", 1.0, cosine), 0.0),
                  where(binary("eq", target, -1), _clamp_min_zero(binary("sub", cosine, margin)), 0.0))
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """``max(0, -target * (x1 - x2) + margin)``: ``target`` 1 asks ``x1`` to rank above
    ``x2`` by ``margin``, -1 below. Example: ``F.margin_ranking_loss(good, bad, jt.ones(n))``."""
    input1, input2, target = _var(input1), _var(input2), _var(target)
    if not input1.ndim == input2.ndim == target.ndim:
        raise MetajitShapeError(f"margin_ranking_loss: inputs and target need the same number of dims, got shapes "
                                f"{tuple(input1.shape)}, {tuple(input2.shape)} and {tuple(target.shape)}")
    loss = binary("add", binary("mul", unary("neg", target), binary("sub", input1, input2)), margin)
    return _reduce(_clamp_min_zero(loss), _reduction(reduction, size_average, reduce))


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """``x`` where ``target`` is 1, ``max(0, margin - x)`` where it is -1 (``input`` is
    typically a distance). Example: ``F.hinge_embedding_loss(distances, labels)``."""
    input, target = _var(input), _var(target)
    loss = binary("add", where(binary("ne", target, 1), _clamp_min_zero(binary("sub", margin, input)), 0.0),
                  where(binary("ne", target, -1), input, 0.0))
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Two-class logistic loss ``log(1 + exp(-target * x))`` for targets of +-1, computed
    stably (finite where PyTorch's float32 ``exp`` overflows to inf).

    Example: ``F.soft_margin_loss(scores, labels)``."""
    input, target = _var(input), _var(target)
    loss = _log1p_exp(unary("neg", binary("mul", input, target)))
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Per-class binary logistic loss on (N, C) scores and 0/1 ``target``, averaged over
    the classes (optional per-class ``weight``).

    Example: ``F.multilabel_soft_margin_loss(scores, tags.float())``."""
    input, target = _var(input), _var(target)
    loss = unary("neg", binary("add", binary("mul", target, logsigmoid(input)),
                               binary("mul", binary("sub", 1.0, target), logsigmoid(unary("neg", input)))))
    if weight is not None:
        loss = binary("mul", loss, weight)
    classes = input.shape[-1]
    return _reduce(binary("div", loss.sum(input.ndim - 1), classes), _reduction(reduction, size_average, reduce))


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-class multi-label hinge loss: for (N, C) scores and integer ``target`` (N, C)
    listing each sample's classes up to the first -1, the sum over listed ``j`` and
    unlisted ``i`` of ``max(0, 1 - (x[j] - x[i]))``, divided by C.

    Example: ``F.multilabel_margin_loss(scores, jt.array([[3, 0, -1, 1]]))``."""
    input, target = _var(input), _var(target)
    reduction = _reduction(reduction, size_average, reduce)
    if input.ndim not in (1, 2) or target.shape != input.shape or not dtypes.is_integer(target.dtype):
        raise MetajitShapeError(f"multilabel_margin_loss: expected (C,) or (N, C) scores and an integer target of "
                                f"their shape, got {tuple(input.shape)} and {tuple(target.shape)} {target.dtype}")
    if input.ndim == 1:
        return _one_sample(multilabel_margin_loss, input, target, reduction)
    classes = input.shape[1]
    listed = binary("eq", cast(binary("eq", target, -1), "int32").cumsum(1), 0)
    safe_target = where(listed, target, 0)
    _check_range(target, -1, classes, safe_target, lambda bad: (
        f"multilabel_margin_loss: class index {bad} is out of range for {classes} classes; list classes in "
        f"[0, {classes}), then -1 to end the list"))
    is_target = binary("logical_and", listed.unsqueeze(2),
                       binary("eq", safe_target.unsqueeze(2), wrap(index_leaf((1, 1, classes), 2)))).any(1)
    margins = relu(binary("add", binary("sub", 1.0, input.gather(1, safe_target).unsqueeze(2)), input.unsqueeze(1)))
    counted = binary("logical_and", listed.unsqueeze(2), unary("logical_not", is_target).unsqueeze(1))
    return _reduce(binary("div", where(counted, margins, 0.0).sum((1, 2)), classes), reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """Multi-class hinge loss: for (N, C) scores and class indices ``target`` (N,), the sum
    over classes ``i`` other than the target ``y`` of ``max(0, margin - x[y] + x[i])**p``
    (times ``weight[y]``), divided by C. ``p`` is 1 or 2.

    Example: ``F.multi_margin_loss(scores, labels, margin=0.5)``."""
    if p not in (1, 2):
        raise MetajitValueError(f"multi_margin_loss: p must be 1 or 2, got {p}")
    input, target = _var(input), _var(target)
    reduction = _reduction(reduction, size_average, reduce)
    if input.ndim not in (1, 2):
        raise MetajitShapeError(f"multi_margin_loss: expected (C,) or (N, C) scores, got {tuple(input.shape)}")
    if input.ndim == 1:
        return _one_sample(multi_margin_loss, input, target, reduction, p, margin, weight)
    mask = _target_mask(input, target)
    target_score = where(mask, input, 0.0).sum(1, keepdims=True)
    margins = relu(binary("add", binary("sub", margin, target_score), input))
    if p == 2:
        margins = binary("mul", margins, margins)
    if weight is not None:
        margins = binary("mul", margins, _var(weight)[target].unsqueeze(1))
    return _reduce(binary("div", where(mask, 0.0, margins).sum(1), input.shape[1]), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0,
                                      swap=False, reduction="mean"):
    """``max(0, margin + d(anchor, positive) - d(anchor, negative))`` for a distance
    function ``d`` (default `pairwise_distance`); ``swap`` also uses ``d(positive,
    negative)`` when smaller (the distance swap of Balntas et al.).

    Example: ``F.triplet_margin_with_distance_loss(a, p, n, distance_function=lambda x, y:
    1 - F.cosine_similarity(x, y))``."""
    if margin <= 0:
        raise MetajitValueError(f"triplet margin loss: margin must be greater than 0, got {margin}")
    anchor, positive, negative = _var(anchor), _var(positive), _var(negative)
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise MetajitShapeError(f"triplet margin loss: anchor, positive and negative need the same number of dims, "
                                f"got shapes {tuple(anchor.shape)}, {tuple(positive.shape)} and "
                                f"{tuple(negative.shape)}")
    distance = pairwise_distance if distance_function is None else distance_function
    positive_distance, negative_distance = distance(anchor, positive), distance(anchor, negative)
    if swap:
        negative_distance = binary("minimum", negative_distance, distance(positive, negative))
    loss = _clamp_min_zero(binary("sub", binary("add", positive_distance, margin), negative_distance))
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """`triplet_margin_with_distance_loss` with the ``p``-norm `pairwise_distance`.

    Example: ``F.triplet_margin_loss(anchor, positive, negative, margin=0.2)``."""
    return triplet_margin_with_distance_loss(
        anchor, positive, negative, distance_function=lambda x, y: pairwise_distance(x, y, p, eps),
        margin=margin, swap=swap, reduction=_reduction(reduction, size_average, reduce))


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Negative log likelihood of ``target`` counts under a Poisson distribution of rate
    ``exp(input)`` (``log_input``) or ``input``; ``full`` adds Stirling's approximation of
    ``log(target!)`` for targets above 1.

    Example: ``F.poisson_nll_loss(log_rates, counts)``."""
    input, target = _var(input), _var(target)
    if log_input:
        loss = binary("sub", unary("exp", input), binary("mul", target, input))
    else:
        loss = binary("sub", input, binary("mul", target, unary("log", binary("add", input, eps))))
    if full:
        above_one = binary("gt", target, 1.0)
        safe = where(above_one, target, 1.0)
        stirling = binary("add", binary("sub", binary("mul", safe, unary("log", safe)), safe),
                          binary("mul", unary("log", binary("mul", safe, 2 * math.pi)), 0.5))
        loss = binary("add", loss, where(above_one, stirling, 0.0))
    return _reduce(loss, _reduction(reduction, size_average, reduce))


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log likelihood of ``target`` under Gaussians of mean ``input`` and variance
    ``var``: ``0.5 (log(var) + (input - target)**2 / var)`` (plus ``0.5 log(2 pi)`` with
    ``full``). ``var`` is a float, of ``input``'s shape, or one size-1 (or missing last)
    dim short of it; it is clamped at ``eps`` with the gradient passing through, as PyTorch.

    Example: ``F.gaussian_nll_loss(mean, target, variance)``."""
    input, target = _var(input), _var(target)
    if isinstance(var, (int, float)):
        if var < 0:
            raise MetajitValueError(f"gaussian_nll_loss: var must be non-negative, got {var}")
        var = creation.full(input.shape, float(var), input.dtype)
    var = _var(var)
    if var.shape != input.shape:
        if tuple(var.shape) == tuple(input.shape[:-1]):
            var = var.unsqueeze(-1)
        elif var.ndim != input.ndim or sum(v != i for v, i in zip(var.shape, input.shape)) != 1 or any(
                v not in (i, 1) for v, i in zip(var.shape, input.shape)):
            raise MetajitShapeError(f"gaussian_nll_loss: var shape {tuple(var.shape)} does not fit input shape "
                                    f"{tuple(input.shape)}; give one variance per element, or per sample with "
                                    f"the last dim (or one dim of size 1) left out")
    host = var._node.host_data
    if host is not None and (host < 0).any():
        raise MetajitValueError("gaussian_nll_loss: var has negative entries; variances must be >= 0")
    if reduction not in ("mean", "sum", "none"):
        raise MetajitValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    clamped = binary("add", var, binary("sub", binary("maximum", var, eps), var).detach())
    difference = binary("sub", input, target)
    loss = binary("mul", binary("add", unary("log", clamped),
                                binary("div", binary("mul", difference, difference), clamped)), 0.5)
    if full:
        loss = binary("add", loss, 0.5 * math.log(2 * math.pi))
    return _reduce(loss, reduction)


def _loss(name, function, settings):
    """The loss Module ``name`` calling ``function`` (see `functional_module`)."""
    return functional_module(name, function, settings,
                             f"Module form of ``{function.__name__}``: the same settings, given once (each "
                             f"also an attribute, e.g. ``criterion.reduction``). Example: ``nn.{name}()(*inputs)``.")


# Jittor's positional order for the modules Jittor has; PyTorch's for the rest
MSELoss = _loss("MSELoss", mse_loss, ("reduction",))
L1Loss = _loss("L1Loss", l1_loss, ("reduction",))
SmoothL1Loss = _loss("SmoothL1Loss", smooth_l1_loss, ("reduction", "beta"))
BCELoss = _loss("BCELoss", binary_cross_entropy, ("weight", "reduction"))
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", binary_cross_entropy_with_logits,
                          ("weight", "reduction", "pos_weight"))
CrossEntropyLoss = _loss("CrossEntropyLoss", cross_entropy,
                         ("weight", "ignore_index", "reduction", "label_smoothing"))
NLLLoss = _loss("NLLLoss", nll_loss, ("weight", "ignore_index", "reduction"))
KLDivLoss = _loss("KLDivLoss", kl_div, ("reduction", "log_target"))
_LEGACY = ("size_average", "reduce", "reduction")
HuberLoss = _loss("HuberLoss", huber_loss, ("reduction", "delta"))
CosineEmbeddingLoss = _loss("CosineEmbeddingLoss", cosine_embedding_loss, ("margin",) + _LEGACY)
MarginRankingLoss = _loss("MarginRankingLoss", margin_ranking_loss, ("margin",) + _LEGACY)
HingeEmbeddingLoss = _loss("HingeEmbeddingLoss", hinge_embedding_loss, ("margin",) + _LEGACY)
SoftMarginLoss = _loss("SoftMarginLoss", soft_margin_loss, _LEGACY)
MultiLabelSoftMarginLoss = _loss("MultiLabelSoftMarginLoss", multilabel_soft_margin_loss, ("weight",) + _LEGACY)
MultiLabelMarginLoss = _loss("MultiLabelMarginLoss", multilabel_margin_loss, _LEGACY)
MultiMarginLoss = _loss("MultiMarginLoss", multi_margin_loss, ("p", "margin", "weight") + _LEGACY)
TripletMarginLoss = _loss("TripletMarginLoss", triplet_margin_loss, ("margin", "p", "eps", "swap") + _LEGACY)
TripletMarginWithDistanceLoss = _loss("TripletMarginWithDistanceLoss", triplet_margin_with_distance_loss, ())
PoissonNLLLoss = _loss("PoissonNLLLoss", poisson_nll_loss, ("log_input", "full", "size_average", "eps", "reduce",
                                                             "reduction"))
GaussianNLLLoss = _loss("GaussianNLLLoss", gaussian_nll_loss, ())
