"""Shape operations against numpy."""
import numpy as np
import pytest

import metajit as jt
from metajit.errors import MetajitShapeError

DATA = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def var():
    return jt.array(DATA)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (24,), (2, 12), (-1, 2), (1, 24, 1), (2, 3, 2, 2)])
def test_reshape(shape):
    np.testing.assert_array_equal(var().reshape(shape).numpy(), DATA.reshape(shape))
    np.testing.assert_array_equal(var().view(*shape).numpy(), DATA.reshape(shape))


def test_reshape_of_transpose_of_reshape():
    expected = DATA.reshape(6, 4).T.reshape(2, 2, 6)
    np.testing.assert_array_equal(var().reshape(6, 4).transpose().reshape(2, 2, 6).numpy(), expected)


def test_reshape_errors_name_shapes():
    with pytest.raises(MetajitShapeError, match=r"\(2, 3, 4\)"):
        var().reshape(5, 5)
    with pytest.raises(MetajitShapeError):
        var().reshape(-1, -1)


def test_transpose_permute_t():
    np.testing.assert_array_equal(var().transpose().numpy(), DATA.transpose())
    np.testing.assert_array_equal(var().transpose(0, 2).numpy(), DATA.swapaxes(0, 2))
    np.testing.assert_array_equal(var().transpose(1, 2, 0).numpy(), DATA.transpose(1, 2, 0))
    np.testing.assert_array_equal(var().permute(2, 0, 1).numpy(), DATA.transpose(2, 0, 1))
    np.testing.assert_array_equal(var()[0].t().numpy(), DATA[0].T)
    np.testing.assert_array_equal(var()[0].T.numpy(), DATA[0].T)


def test_flatten_squeeze_unsqueeze():
    np.testing.assert_array_equal(var().flatten().numpy(), DATA.reshape(-1))
    np.testing.assert_array_equal(var().flatten(1).numpy(), DATA.reshape(2, 12))
    x = jt.zeros((1, 3, 1))
    assert x.squeeze().shape == (3,)
    assert x.squeeze(0).shape == (3, 1)
    assert x.squeeze(-1).shape == (1, 3)
    assert var().unsqueeze(1).shape == (2, 1, 3, 4)
    assert var().unsqueeze(-1).shape == (2, 3, 4, 1)


def test_broadcast_expand():
    row = jt.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(row.broadcast_to((2, 3)).numpy(), np.broadcast_to([1, 2, 3], (2, 3)))
    np.testing.assert_array_equal(row.reshape(3, 1).expand(-1, 4).numpy(),
                                  np.broadcast_to([[1], [2], [3]], (3, 4)))
    np.testing.assert_array_equal(jt.broadcast(row, (3, 2), dims=[1]).numpy(),
                                  np.broadcast_to([[1], [2], [3]], (3, 2)))
    with pytest.raises(MetajitShapeError, match=r"\(3,\).*\(2, 4\)"):
        row.broadcast_to((2, 4))


def test_concat_stack_split_chunk():
    a, b = DATA[:, :1], DATA[:, 1:]
    np.testing.assert_array_equal(jt.concat([jt.array(a), jt.array(b)], dim=1).numpy(), DATA)
    np.testing.assert_array_equal(jt.cat([var(), var()], -1).numpy(), np.concatenate([DATA, DATA], -1))
    np.testing.assert_array_equal(jt.stack([var(), var()], 1).numpy(), np.stack([DATA, DATA], 1))
    pieces = var().split(2, dim=2)
    assert [p.shape for p in pieces] == [(2, 3, 2), (2, 3, 2)]
    np.testing.assert_array_equal(pieces[1].numpy(), DATA[:, :, 2:])
    pieces = var().split([1, 2], dim=1)
    np.testing.assert_array_equal(pieces[1].numpy(), DATA[:, 1:])
    chunks = jt.chunk(var(), 3, dim=2)
    assert [c.shape[2] for c in chunks] == [2, 2]
    with pytest.raises(MetajitShapeError):
        jt.concat([var(), jt.zeros((2, 2, 2))], dim=1)


def test_concat_promotes_and_handles_empty_pieces():
    result = jt.concat([jt.array([1, 2]), jt.array([0.5]), jt.zeros((0,))])
    assert result.dtype == "float32"
    np.testing.assert_array_equal(result.numpy(), [1, 2, 0.5])


def test_flip():
    np.testing.assert_array_equal(var().flip(0).numpy(), np.flip(DATA, 0))
    np.testing.assert_array_equal(var().flip((1, 2)).numpy(), np.flip(DATA, (1, 2)))


@pytest.mark.parametrize("mode,numpy_mode", [("constant", "constant"), ("reflect", "reflect"),
                                             ("replicate", "edge"), ("circular", "wrap")])
def test_pad_modes(mode, numpy_mode):
    result = jt.pad(var(), (1, 2, 2, 1), mode=mode)
    expected = np.pad(DATA, ((0, 0), (2, 1), (1, 2)), mode=numpy_mode)
    np.testing.assert_array_equal(result.numpy(), expected)


def test_pad_constant_value_and_crop():
    np.testing.assert_array_equal(jt.pad(jt.array([1.0, 2.0]), (1, 1), value=9).numpy(), [9, 1, 2, 9])
    np.testing.assert_array_equal(jt.pad(jt.array([1.0, 2.0, 3.0]), (-1, 0)).numpy(), [2, 3])


def test_repeat_tile():
    np.testing.assert_array_equal(var().repeat(1, 2, 1).numpy(), np.tile(DATA, (1, 2, 1)))
    np.testing.assert_array_equal(jt.array([1, 2]).repeat(2, 2).numpy(), np.tile([1, 2], (2, 2)))


def test_reindex_string_form_with_overflow():
    x = jt.array(np.arange(6.0).reshape(2, 3))
    shifted = x.reindex([2, 3], ["i0", "i1-1"], overflow_value=-1)
    np.testing.assert_array_equal(shifted.numpy(), [[-1, 0, 1], [-1, 3, 4]])
    masked = x.reindex([2, 3], ["i0", "i1"], overflow_conditions=["i0 == i1"])
    np.testing.assert_array_equal(masked.numpy(), [[0, 1, 2], [3, 0, 5]])
    doubled = x.reindex([2, 6], ["i0", "i1/2"])
    np.testing.assert_array_equal(doubled.numpy(), np.repeat(np.arange(6.0).reshape(2, 3), 2, 1))
    named = x.reindex([3, 2], ["xshape0-1-i1", "i0"])
    np.testing.assert_array_equal(named.numpy(), np.arange(6.0).reshape(2, 3)[::-1].T)


def test_reindex_with_extra_index_var():
    x = jt.array([10.0, 20.0, 30.0])
    idx = jt.array([2, 0, 2, 1])
    np.testing.assert_array_equal(x.reindex([4], ["@e0(i0)"], extras=[idx]).numpy(), [30, 10, 30, 20])


def test_reindex_reduce():
    x = jt.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(x.reindex_reduce("add", [2], ["i0 % 2"]).numpy(), [4, 6])
    np.testing.assert_array_equal(x.reindex_reduce("maximum", [2], ["i0 / 2"]).numpy(), [2, 4])
    np.testing.assert_array_equal(x.reindex_reduce("multiply", [3], ["i0-1"]).numpy(), [2, 3, 4])
    skipped = x.reindex_reduce("add", [2], ["i0 % 2"], overflow_conditions=["i0 >= 2"])
    np.testing.assert_array_equal(skipped.numpy(), [1, 2])


def test_concat_and_stack_accept_arrays_and_lists():
    np.testing.assert_array_equal(jt.concat([np.ones(2), [3.0]]).numpy(), [1, 1, 3])
    np.testing.assert_array_equal(jt.stack([[1, 2], np.array([3, 4])]).numpy(), [[1, 2], [3, 4]])


def test_reindex_reduce_into_a_larger_output_through_identity_indices():
    x = jt.array([1.0, 2.0])
    np.testing.assert_array_equal(x.reindex_reduce("add", [3], ["i0"]).numpy(), [1, 2, 0])
    np.testing.assert_array_equal(x.reindex_reduce("maximum", [3], ["i0"]).numpy(), [1, 2, -np.inf])


def test_each_concatenated_piece_reads_its_gradient_where_it_lies(rng):
    """A concatenation is a select tree over its pieces: each piece's gradient gathers its
    channels of the output gradient itself, not of the gradient masked once per tree level
    (which DenseNet's training step stored in full for every level); values against torch."""
    import torch
    pieces = [rng.standard_normal((2, c, 5, 5)).astype(np.float32) for c in (3, 4, 2, 5, 1) * 4]
    weights = rng.standard_normal((2, 60, 5, 5)).astype(np.float32)
    xs = [jt.array(p) for p in pieces]
    joined = jt.concat(xs, dim=1)
    grads = jt.grad((jt.nn.relu(joined) * jt.array(weights)).sum(), xs)
    assert all(grad._node.op == "reindex" and grad._node.inputs[0].op != "select" for grad in grads)
    torch_pieces = [torch.tensor(p, requires_grad=True) for p in pieces]
    (torch.relu(torch.cat(torch_pieces, 1)) * torch.from_numpy(weights)).sum().backward()
    for grad, expected in zip(grads, torch_pieces):
        np.testing.assert_allclose(grad.numpy(), expected.grad.numpy(), rtol=1e-6)
