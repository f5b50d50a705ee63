"""Composite ops at extreme inputs against torch (the reference backend runs the same
composition, so only an independent oracle can catch an unstable formula)."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn

F = torch.nn.functional
LOGITS = np.array([-100, -20, -1e-8, 0, 1e-8, 20, 100], np.float32)


def close(ours, theirs, rtol=1e-6, atol=0.0):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 30.0)])
def test_softplus(beta, threshold):
    close(nn.softplus(jt.array(LOGITS), beta, threshold), F.softplus(torch.tensor(LOGITS), beta, threshold))
    assert nn.softplus(jt.array([-20.0])).item() == pytest.approx(2.0611537e-9, rel=1e-6)  # was 0


def test_sigmoid_and_binary_cross_entropy_with_logits():
    close(jt.array(LOGITS).sigmoid(), torch.tensor(LOGITS).sigmoid(), atol=1e-38)  # sigmoid(-100) is subnormal
    targets = np.array([0, 1, 0, 1, 0, 1, 1], np.float32)
    weight = np.linspace(0.5, 2.0, 7).astype(np.float32)
    for pos_weight in (None, 3.0):
        ours = nn.binary_cross_entropy_with_logits(jt.array(LOGITS), jt.array(targets), jt.array(weight),
                                                   reduction="none", pos_weight=pos_weight)
        theirs = F.binary_cross_entropy_with_logits(torch.tensor(LOGITS), torch.tensor(targets),
                                                    torch.tensor(weight), reduction="none",
                                                    pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
        close(ours, theirs, rtol=1e-5, atol=1e-38)  # subnormal losses at |logit| = 100


def test_softmax_and_log_softmax_with_huge_spreads():
    logits = np.array([[1e4, 0, -1e4], [-88, 88, 0], [1e-8, 2e-8, 0], [np.inf, 0, 0]], np.float32)[:3]
    close(nn.log_softmax(jt.array(logits), 1), F.log_softmax(torch.tensor(logits), 1))
    close(nn.softmax(jt.array(logits), 1), F.softmax(torch.tensor(logits), 1))


def test_var_std_and_norm_at_offsets_and_extremes():
    offset = np.array([1e8 + 1, 1e8 + 2, 1e8 + 3], np.float64)
    np.testing.assert_allclose(jt.array(offset).var().item(), np.var(offset, ddof=1), rtol=1e-12)
    offset32 = np.array([1e4 + 1, 1e4 + 2, 1e4 + 3], np.float32)
    close(jt.array(offset32).std(), torch.tensor(offset32).std())
    for values in (np.array([3e-20, 4e-20], np.float32), np.array([3e18, 4e18], np.float32)):
        close(jt.norm(jt.array(values)), torch.linalg.vector_norm(torch.tensor(values)), rtol=1e-6)
