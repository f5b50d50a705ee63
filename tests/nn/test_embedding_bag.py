"""``nn.EmbeddingBag`` / ``F.embedding_bag`` against torch's: every mode on 2-d inputs and
on 1-d inputs cut by offsets (empty bags, a trailing empty bag, ``include_last_offset``),
``padding_idx``, ``per_sample_weights``, gradients of the table and the weights, and the
errors for misuse."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn
from tests.oracle import assert_close_to

torch = pytest.importorskip("torch")


def assert_close(got, want, tolerance=1e-5):
    assert_close_to(got, want, tolerance)


CASES = {
    "rows": (np.array([[1, 2, 4], [4, 3, 9], [0, 0, 5]]), None),
    "offsets": (np.array([1, 2, 4, 5, 4, 3, 2, 9, 7]), np.array([0, 4])),
    "empty bags": (np.array([1, 2, 4, 5, 4, 3, 2, 9, 7]), np.array([0, 2, 2, 6, 9])),
}


def pair(rng, mode, padding_idx=None, include_last_offset=False):
    theirs = torch.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=padding_idx, include_last_offset=include_last_offset)
    ours = nn.EmbeddingBag(10, 4, mode=mode, padding_idx=padding_idx, include_last_offset=include_last_offset)
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    return theirs, ours


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 4])
def test_embedding_bag_matches_torch_values_and_gradients(rng, case, mode, padding_idx):
    indices, offsets = CASES[case]
    theirs, ours = pair(rng, mode, padding_idx)
    torch_offsets = None if offsets is None else torch.from_numpy(offsets)
    expected = theirs(torch.from_numpy(indices), torch_offsets)
    weights = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    (expected * torch.from_numpy(weights)).sum().backward()
    got = ours(jt.array(indices), None if offsets is None else jt.array(offsets))
    assert_close(got, expected)
    (grad,) = jt.grad((got * jt.array(weights)).sum(), [ours.weight])
    assert_close(grad, theirs.weight.grad)


def test_include_last_offset_and_per_sample_weights_match_torch(rng):
    indices, offsets = np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 3, 3, 8])
    theirs, ours = pair(rng, "sum", include_last_offset=True)
    scales = rng.standard_normal(indices.shape).astype(np.float32)
    torch_scales = torch.from_numpy(scales).requires_grad_()
    expected = theirs(torch.from_numpy(indices), torch.from_numpy(offsets), torch_scales)
    expected.sum().backward()
    our_scales = jt.array(scales)
    got = ours(jt.array(indices), jt.array(offsets), our_scales)
    assert got.shape == (3, 4)
    assert_close(got, expected)
    weight_grad, scale_grad = jt.grad(got.sum(), [ours.weight, our_scales])
    assert_close(weight_grad, theirs.weight.grad)
    assert_close(scale_grad, torch_scales.grad)


def test_functional_embedding_bag_and_from_pretrained_match_torch(rng):
    table = rng.standard_normal((6, 3)).astype(np.float32)
    indices = np.array([[0, 5], [2, 2]])
    expected = torch.nn.functional.embedding_bag(torch.from_numpy(indices), torch.from_numpy(table), mode="max")
    assert_close(jt.nn.functional.embedding_bag(jt.array(indices), jt.array(table), mode="max"), expected)
    bag = nn.EmbeddingBag.from_pretrained(jt.array(table), mode="sum")
    assert not bag.weight.requires_grad
    assert_close(bag(jt.array(indices)), table[indices].sum(1))


def test_embedding_bag_names_the_mistake():
    bag = nn.EmbeddingBag(5, 2)
    with pytest.raises(jt.MetajitValueError, match="offsets must be None"):
        bag(jt.array([[1, 2]]), jt.array([0]))
    with pytest.raises(jt.MetajitValueError, match="needs offsets"):
        bag(jt.array([1, 2]))
    with pytest.raises(jt.MetajitValueError, match="only supported for mode='sum'"):
        bag(jt.array([[1, 2]]), per_sample_weights=jt.array([[1.0, 2.0]]))
    with pytest.raises(jt.MetajitValueError, match="mode must be"):
        nn.EmbeddingBag(5, 2, mode="median")
    with pytest.raises(jt.MetajitValueError, match="integer indices"):
        bag(jt.array([[1.0, 2.0]]))
