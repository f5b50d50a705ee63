"""``F.ctc_loss`` / ``nn.CTCLoss`` against torch's: padded and concatenated targets,
varying input and target lengths (an empty target, repeated labels that need a blank
between them), every reduction, an impossible alignment with and without
``zero_infinity``, unbatched inputs, a blank other than 0, and the gradient with respect
to the logits before ``log_softmax``."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn
from tests.oracle import assert_close_to

torch = pytest.importorskip("torch")


def assert_close(got, want, tolerance=1e-4):
    assert_close_to(got, want, tolerance)


def problem(rng, frames=12, batch=4, classes=5):
    logits = rng.standard_normal((frames, batch, classes)).astype(np.float32)
    targets = np.array([[1, 1, 2, 3], [2, 0, 0, 0], [4, 3, 4, 1], [0, 0, 0, 0]]) % classes
    targets[targets == 0] = 1
    input_lengths = np.array([12, 7, 10, 5])
    target_lengths = np.array([4, 1, 4, 0])
    return logits, targets, input_lengths, target_lengths


def both(logits, targets, input_lengths, target_lengths, **settings):
    """(torch's loss and logits gradient, ours)."""
    theirs_logits = torch.from_numpy(logits).requires_grad_()
    theirs = torch.nn.functional.ctc_loss(theirs_logits.log_softmax(-1), torch.from_numpy(targets),
                                          torch.from_numpy(input_lengths), torch.from_numpy(target_lengths),
                                          **settings)
    theirs.sum().backward()
    our_logits = jt.array(logits)
    ours = nn.functional.ctc_loss(our_logits.log_softmax(-1), jt.array(targets), input_lengths, target_lengths,
                                  **settings)
    (grad,) = jt.grad(ours.sum(), [our_logits])
    return (theirs, theirs_logits.grad), (ours, grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_loss_matches_torch_with_padded_targets(rng, reduction):
    (theirs, their_grad), (ours, grad) = both(*problem(rng), reduction=reduction)
    assert_close(ours, theirs)
    assert_close(grad, their_grad)


def test_concatenated_targets_and_a_module_match_torch(rng):
    logits, targets, input_lengths, target_lengths = problem(rng)
    concatenated = np.concatenate([row[:n] for row, n in zip(targets, target_lengths)])
    (theirs, their_grad), (ours, grad) = both(logits, concatenated, input_lengths, target_lengths)
    assert_close(ours, theirs)
    assert_close(grad, their_grad)
    module = nn.CTCLoss(reduction="sum")
    expected = torch.nn.CTCLoss(reduction="sum")(torch.from_numpy(logits).log_softmax(-1), torch.from_numpy(targets),
                                                  torch.from_numpy(input_lengths), torch.from_numpy(target_lengths))
    assert_close(module(jt.array(logits).log_softmax(-1), jt.array(targets), input_lengths, target_lengths), expected)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_an_impossible_alignment_is_infinite_or_zero_as_torch(rng, zero_infinity):
    logits = rng.standard_normal((3, 2, 4)).astype(np.float32)
    targets = np.array([[1, 1, 2], [3, 2, 0]])  # the first needs 4 frames (a blank between the 1s)
    lengths = np.array([3, 3]), np.array([3, 2])
    (theirs, their_grad), (ours, grad) = both(logits, targets, *lengths, reduction="none", zero_infinity=zero_infinity)
    assert_close(ours, theirs)
    if zero_infinity:
        assert_close(grad, their_grad)
    else:
        assert np.isinf(ours.numpy()[0]) and np.isfinite(ours.numpy()[1])


def test_unbatched_input_and_another_blank_match_torch(rng):
    logits = rng.standard_normal((9, 6)).astype(np.float32)
    targets = np.array([0, 2, 2, 5])
    theirs_logits = torch.from_numpy(logits).requires_grad_()
    theirs = torch.nn.functional.ctc_loss(theirs_logits.log_softmax(-1), torch.from_numpy(targets), torch.tensor(9),
                                          torch.tensor(4), blank=3)
    theirs.backward()
    our_logits = jt.array(logits)
    ours = nn.functional.ctc_loss(our_logits.log_softmax(-1), jt.array(targets), 9, 4, blank=3)
    assert ours.shape == ()
    assert_close(ours, theirs)
    assert_close(jt.grad(ours, [our_logits])[0], theirs_logits.grad)


def test_ctc_loss_names_the_mistake(rng):
    logits, targets, input_lengths, target_lengths = problem(rng)
    log_probs = jt.array(logits).log_softmax(-1)
    with pytest.raises(jt.MetajitValueError, match="input_lengths .* must lie in"):
        nn.functional.ctc_loss(log_probs, jt.array(targets), [13, 1, 1, 1], target_lengths)
    with pytest.raises(jt.MetajitShapeError, match="holds 3 lengths for a batch of 4"):
        nn.functional.ctc_loss(log_probs, jt.array(targets), input_lengths, [1, 1, 1])
    with pytest.raises(jt.MetajitShapeError, match="concatenated targets"):
        nn.functional.ctc_loss(log_probs, jt.array([1, 2]), input_lengths, target_lengths)
    with pytest.raises(jt.MetajitValueError, match="blank 5 is not a class"):
        nn.functional.ctc_loss(log_probs, jt.array(targets), input_lengths, target_lengths, blank=5)
