"""PyTorch's ``F.ctc_loss`` and ``nn.CTCLoss``: the connectionist temporal classification
loss (Graves et al., 2006), the negative log-likelihood of a target sequence summed over
every alignment of it (with blanks and repeats) to the input frames.

The forward variables are computed in log space over the extended target (a blank around
every label), one time step after another, from meta-ops: the gradient is the autodiff
of that recursion (it reaches the log-probabilities through a gather). The lengths are
read on the host, as PyTorch's CPU implementation reads them. Example::

    log_probs = logits.log_softmax(2)                     # (T, N, C)
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths)
"""
import numpy as np

from ..creation import array
from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import binary, unary, where
from ..shape_ops import concat
from ..var import Var
from .losses import _reduce
from .module import functional_module

NEGATIVE_INFINITY = float("-inf")


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """The CTC loss of ``log_probs`` ((T, N, C) log-probabilities, or (T, C) unbatched)
    against ``targets`` ((N, S) padded, or the N targets concatenated in 1-d), as
    ``torch.nn.functional.ctc_loss``: ``input_lengths`` / ``target_lengths`` give each
    sample's frame and label counts; ``blank`` is the blank class. ``reduction``:
    "mean" (each loss divided by its target length, then averaged), "sum" or "none";
    ``zero_infinity`` turns the infinite loss of an impossible alignment (and its
    gradient) into 0."""
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
        targets = targets.unsqueeze(0) if isinstance(targets, Var) and targets.ndim == 1 else targets
    if log_probs.ndim != 3:
        raise MetajitShapeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got shape {tuple(log_probs.shape)}")
    frames, batch, classes = log_probs.shape
    input_lengths = _lengths(input_lengths, batch, "input_lengths")
    target_lengths = _lengths(target_lengths, batch, "target_lengths")
    if not 0 <= blank < classes:
        raise MetajitValueError(f"ctc_loss: blank {blank} is not a class of log_probs' {classes}")
    if (input_lengths > frames).any() or (input_lengths < 0).any():
        raise MetajitValueError(f"ctc_loss: input_lengths {input_lengths.tolist()} must lie in [0, {frames}] "
                                f"(log_probs has {frames} frames)")
    labels = _padded_targets(targets, target_lengths, batch)
    loss = binary("mul", _log_likelihood(log_probs, labels, input_lengths, target_lengths, blank), -1.0)
    if zero_infinity:
        loss = where(binary("eq", loss, float("inf")), 0.0, loss)
    if reduction == "mean":  # each loss per label first, as torch's
        loss = binary("div", loss, array(np.maximum(target_lengths, 1).astype(np.float32)).cast(loss.dtype))
    loss = _reduce(loss, reduction)
    return loss[0] if unbatched and reduction == "none" else loss


def _lengths(values, batch, name):
    """``values`` (a sequence, array, Var or int) as a 1-d int64 numpy array of ``batch`` entries."""
    found = np.asarray(values.numpy() if isinstance(values, Var) else values, dtype=np.int64).reshape(-1)
    if found.shape != (batch,):
        raise MetajitShapeError(f"ctc_loss: {name} holds {found.size} lengths for a batch of {batch}")
    return found


def _padded_targets(targets, target_lengths, batch):
    """The targets as an (N, S) integer Var (S the longest target; the padding unread)."""
    targets = targets if isinstance(targets, Var) else Var(np.asarray(targets, dtype=np.int64))
    longest = int(target_lengths.max(initial=0))
    if (target_lengths < 0).any():
        raise MetajitValueError(f"ctc_loss: target_lengths {target_lengths.tolist()} must not be negative")
    if targets.ndim == 2:
        if targets.shape[0] != batch or targets.shape[1] < longest:
            raise MetajitShapeError(f"ctc_loss: padded targets of shape {tuple(targets.shape)} do not hold {batch} "
                                    f"targets of lengths {target_lengths.tolist()}")
    elif targets.ndim != 1 or targets.shape[0] != int(target_lengths.sum()):
        raise MetajitShapeError(f"ctc_loss: concatenated targets of shape {tuple(targets.shape)} do not hold "
                                f"targets of lengths {target_lengths.tolist()} (their sum)")
    if longest == 0:
        return array(np.zeros((batch, 0), dtype=np.int64))
    if targets.ndim == 2:
        return targets[:, :longest]
    starts = np.concatenate([[0], np.cumsum(target_lengths)[:-1]])
    positions = starts[:, None] + np.arange(longest)[None, :]
    return targets[array(np.minimum(positions, targets.shape[0] - 1))]  # (past a target's end: padding)


def _log_likelihood(log_probs, labels, input_lengths, target_lengths, blank):
    """Each sample's log-likelihood: the forward recursion over the extended labels."""
    frames, batch, _ = log_probs.shape
    width = 2 * labels.shape[1] + 1  # blank, label, blank, ..., label, blank
    extended = _extended(labels, blank, width)
    emissions = log_probs.gather(2, extended.unsqueeze(0).broadcast_to(frames, batch, width))
    skips = _skip_allowed(extended, blank)
    positions = np.arange(width)[None, :]
    alpha = where(array(positions < np.minimum(2, 2 * target_lengths[:, None] + 1)), emissions[0], NEGATIVE_INFINITY)
    for t in range(1, int(input_lengths.max(initial=0))):
        previous = _shifted(alpha, 1)
        before_previous = where(skips, _shifted(alpha, 2), NEGATIVE_INFINITY)
        advanced = binary("add", _log_sum_exp([alpha, previous, before_previous]), emissions[t])
        alpha = where(array((t < input_lengths)[:, None]), advanced, alpha)
    last = 2 * target_lengths  # the final blank; the final label sits just before it
    rows = np.arange(batch)
    ends = [alpha[array(rows), array(last)],
            where(array(last > 0), alpha[array(rows), array(np.maximum(last - 1, 0))], NEGATIVE_INFINITY)]
    likelihood = _log_sum_exp(ends)
    return where(array(input_lengths == 0), where(array(target_lengths == 0), 0.0, NEGATIVE_INFINITY), likelihood)


def _extended(labels, blank, width):
    """(N, 2S + 1): blank at even positions, the labels at odd ones."""
    batch = labels.shape[0]
    blanks = array(np.full((batch, 1), blank, dtype=np.int64))
    if width == 1:
        return blanks
    pairs = concat([blanks.broadcast_to(batch, labels.shape[1]).unsqueeze(2), labels.int64().unsqueeze(2)], 2)
    return concat([pairs.reshape(batch, width - 1), blanks], 1)


def _skip_allowed(extended, blank):
    """Where a path may come from two positions back: a label unlike the one before it."""
    batch, width = extended.shape
    if width < 3:
        return array(np.zeros((batch, width), dtype=bool))
    different = binary("logical_and", binary("ne", extended[:, 2:], extended[:, :-2]),
                       binary("ne", extended[:, 2:], blank))
    return concat([array(np.zeros((batch, 2), dtype=bool)), different], 1)


def _shifted(alpha, by):
    """``alpha`` moved ``by`` positions along the extended labels, -inf coming in."""
    batch, width = alpha.shape
    if by >= width:
        return array(np.full((batch, width), NEGATIVE_INFINITY, dtype=np.float32)).cast(alpha.dtype)
    filler = array(np.full((batch, by), NEGATIVE_INFINITY, dtype=np.float32)).cast(alpha.dtype)
    return concat([filler, alpha[:, :width - by]], 1)


def _log_sum_exp(terms):
    """``log(sum(exp(term)))`` of same-shaped Vars, -inf where every term is, with a
    finite gradient there (zero) instead of 0 / 0."""
    largest = terms[0]
    for term in terms[1:]:
        largest = binary("maximum", largest, term)
    shift = where(binary("eq", largest, NEGATIVE_INFINITY), 0.0, largest).detach()
    total = unary("exp", binary("sub", terms[0], shift))
    for term in terms[1:]:
        total = binary("add", total, unary("exp", binary("sub", term, shift)))
    empty = binary("eq", total, 0.0)
    return where(empty, NEGATIVE_INFINITY, binary("add", shift, unary("log", where(empty, 1.0, total))))


CTCLoss = functional_module(
    "CTCLoss", ctc_loss, ("blank", "reduction", "zero_infinity"),
    "Module form of `ctc_loss` with PyTorch's settings (``blank=0``, ``reduction='mean'``, "
    "``zero_infinity=False``). Example: ``nn.CTCLoss()(log_probs, targets, input_lengths, target_lengths)``.")
