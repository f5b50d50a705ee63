"""``metajit.nn.utils`` against ``torch.nn.utils``: padding and packing sequences (values,
layouts, gradients, errors), recurrent layers on packed batches (outputs, final states and
gradients on identical weights), parameters as one vector, and the re-exported clipping."""
import numpy as np
import pytest

import metajit as jt
from metajit import nn
from metajit.nn.utils import rnn

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn


def assert_close(got, want, tolerance=1e-5):
    """Relative to the reference's largest magnitude."""
    got = got.numpy() if isinstance(got, jt.Var) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape
    assert np.abs(got - want).max(initial=0) <= tolerance * max(np.abs(want).max(initial=0), 1e-30)


def assert_same_packing(ours, theirs, tolerance=0):
    assert_close(ours.data, theirs.data, tolerance)
    assert ours.batch_sizes.dtype == "int64" and ours.batch_sizes.tolist() == theirs.batch_sizes.tolist()
    for index in ("sorted_indices", "unsorted_indices"):
        mine, reference = getattr(ours, index), getattr(theirs, index)
        assert (mine is None) == (reference is None)
        if mine is not None:
            assert mine.tolist() == reference.tolist()


def sequences(rng, lengths, features=(3,)):
    return [rng.standard_normal((n,) + features).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(rng, batch_first, padding_side):
    arrays = sequences(rng, [2, 5, 3], (2, 3))
    got = rnn.pad_sequence([jt.array(a) for a in arrays], batch_first, -1.5, padding_side)
    want = trnn.pad_sequence([torch.tensor(a) for a in arrays], batch_first, -1.5, padding_side)
    assert_close(got, want, 0)
    integers = rnn.pad_sequence([jt.array([1, 2, 3]), jt.array([4])], batch_first=True)
    assert integers.dtype == "int32" and integers.tolist() == [[1, 2, 3], [4, 0, 0]]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted", [([5, 3, 3, 1], True), ([2, 5, 3, 5], False),
                                                    ([4, 4, 4, 4], True)])
def test_pack_and_pad_round_trip_match_torch(rng, batch_first, lengths, enforce_sorted):
    x = rng.standard_normal((4, 5, 3) if batch_first else (5, 4, 3)).astype(np.float32)
    packed = rnn.pack_padded_sequence(jt.array(x), lengths, batch_first, enforce_sorted)
    reference = trnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first, enforce_sorted)
    assert_same_packing(packed, reference)
    for total_length in (None, 7):
        padded, got_lengths = rnn.pad_packed_sequence(packed, batch_first, 9.0, total_length)
        want, want_lengths = trnn.pad_packed_sequence(reference, batch_first, 9.0, total_length)
        assert_close(padded, want, 0)
        assert got_lengths.dtype == "int64" and got_lengths.tolist() == want_lengths.tolist()


def test_lengths_as_list_numpy_var_or_torch_tensor(rng):
    x = jt.array(rng.standard_normal((4, 3, 2)).astype(np.float32))
    reference = rnn.pack_padded_sequence(x, [1, 4, 2], enforce_sorted=False)
    for lengths in (np.array([1, 4, 2]), jt.array([1, 4, 2]), torch.tensor([1, 4, 2])):
        assert_same_packing(rnn.pack_padded_sequence(x, lengths, enforce_sorted=False),
                            trnn.PackedSequence(*(None if v is None else torch.tensor(v.numpy()) for v in reference)))


def test_pack_and_pad_gradients_match_torch(rng):
    x = rng.standard_normal((5, 3, 2)).astype(np.float32)
    weight = rng.standard_normal((3, 6, 2)).astype(np.float32)
    ours = jt.array(x)
    packed = rnn.pack_padded_sequence(ours, [3, 5, 2], enforce_sorted=False)
    padded, _ = rnn.pad_packed_sequence(packed, batch_first=True, total_length=6)
    (gradient,) = jt.grad((padded * jt.array(weight)).sum(), [ours])
    theirs = torch.tensor(x, requires_grad=True)
    packed = trnn.pack_padded_sequence(theirs, [3, 5, 2], enforce_sorted=False)
    (trnn.pad_packed_sequence(packed, batch_first=True, total_length=6)[0] * torch.tensor(weight)).sum().backward()
    assert_close(gradient, theirs.grad, 0)


def test_pack_sequence_unpack_and_unpad(rng):
    arrays = sequences(rng, [2, 4, 1])
    packed = rnn.pack_sequence([jt.array(a) for a in arrays], enforce_sorted=False)
    assert_same_packing(packed, trnn.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=False))
    for got, want in zip(rnn.unpack_sequence(packed), arrays):
        assert_close(got, want, 0)
    padded = rnn.pad_sequence([jt.array(a) for a in arrays], batch_first=True)
    for got, want in zip(rnn.unpad_sequence(padded, jt.array([2, 4, 1]), batch_first=True), arrays):
        assert_close(got, want, 0)


def test_packed_sequence_is_torchs_named_tuple():
    packed = rnn.pack_sequence([jt.array([1.0, 2.0]), jt.array([3.0])])
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    assert packed._fields == trnn.PackedSequence._fields
    assert batch_sizes.tolist() == [2, 1] and sorted_indices is None and unsorted_indices is None
    assert packed.double().data.dtype == "float64" and packed.to(jt.float64).batch_sizes is batch_sizes
    explicit = rnn.PackedSequence(data, [2, 1], jt.array([1, 0]))
    assert explicit.unsorted_indices.tolist() == [1, 0]


def test_packing_errors():
    x = jt.zeros((4, 3, 2))
    with pytest.raises(rnn.SequenceError, match="enforce_sorted=False") as caught:
        rnn.pack_padded_sequence(x, [2, 4, 1])
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, jt.MetajitError)
    with pytest.raises(rnn.SequenceError, match="exceed the 4 steps"):
        rnn.pack_padded_sequence(x, [5, 3, 1])
    with pytest.raises(rnn.SequenceError, match="exceed the 2 steps"):
        rnn.pack_padded_sequence(jt.zeros((3, 2, 2)), [4, 3, 1], batch_first=True)
    with pytest.raises(rnn.SequenceError, match="positive"):
        rnn.pack_padded_sequence(x, [3, 2, 0])
    with pytest.raises(rnn.SequenceError, match="batch_size=3"):
        rnn.pack_padded_sequence(x, [3, 2])
    packed = rnn.pack_padded_sequence(x, [4, 3, 1])
    with pytest.raises(ValueError, match="total_length=2"):
        rnn.pad_packed_sequence(packed, total_length=2)
    with pytest.raises(RuntimeError, match="empty list"):
        rnn.pad_sequence([])
    with pytest.raises(jt.MetajitShapeError, match="same"):
        rnn.pad_sequence([jt.zeros((2, 3)), jt.zeros((2, 4))])
    with pytest.raises(jt.MetajitValueError, match="'left' or 'right'"):
        rnn.pad_sequence([jt.zeros(2)], padding_side="middle")


def paired(kind, *args, **kwargs):
    reference = getattr(torch.nn, kind)(*args, **kwargs)
    ours = getattr(nn, kind)(*args, **kwargs)
    ours.load_state_dict({name: value.detach().numpy() for name, value in reference.state_dict().items()})
    return ours, reference


def states(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("kind,options", [
    ("LSTM", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}), ("LSTM", {"proj_size": 2, "bidirectional": True}),
    ("GRU", {}), ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("RNN", {"nonlinearity": "relu", "bidirectional": True})])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_packed_layers_match_torch_with_gradients(rng, kind, options, with_initial_state):
    ours, reference = paired(kind, 3, 4, batch_first=True, **options)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    lengths = [3, 6, 1, 4]
    layers = reference.num_layers * (2 if reference.bidirectional else 1)
    shapes = [(layers, 4, reference.proj_size or 4), (layers, 4, 4)][:2 if kind == "LSTM" else 1]
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in shapes] if with_initial_state else None

    def run(library, module, inputs, initial_state):
        packed = library.nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        if initial_state is not None and kind != "LSTM":
            initial_state = initial_state[0]
        return module(packed, tuple(initial_state) if isinstance(initial_state, list) else initial_state)

    theirs = torch.tensor(x, requires_grad=True)
    their_initial = [torch.tensor(s, requires_grad=True) for s in initial] if initial else None
    their_output, their_state = run(torch, reference, theirs, their_initial)
    mine = jt.array(x)
    my_initial = [jt.array(s) for s in initial] if initial else None
    output, state = run(jt, ours, mine, my_initial)
    assert isinstance(output, rnn.PackedSequence)
    assert_same_packing(output, their_output, 1e-5)
    for got, want in zip(states(state), states(their_state)):
        assert_close(got, want)
    weight = rng.standard_normal(tuple(their_output.data.shape)).astype(np.float32)
    ((their_output.data * torch.tensor(weight)).sum() + sum((s ** 2).sum() for s in states(their_state))).backward()
    loss = (output.data * jt.array(weight)).sum() + sum((s ** 2).sum() for s in states(state))
    wrt = [mine, ours.weight_ih_l0, ours.weight_hh_l0] + ([ours.bias_hh_l0] if ours.bias else []) + (my_initial or [])
    expected = [theirs.grad, reference.weight_ih_l0.grad, reference.weight_hh_l0.grad] + \
        ([reference.bias_hh_l0.grad] if reference.bias else []) + [s.grad for s in their_initial or []]
    for got, want in zip(jt.grad(loss, wrt), expected):
        assert_close(got, want)


def test_packed_layer_second_order_gradient_matches_torch(rng):
    ours, reference = paired("LSTM", 3, 4)
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    theirs = torch.tensor(x, requires_grad=True)
    output = reference(trnn.pack_padded_sequence(theirs, [5, 2, 4], enforce_sorted=False))[0]
    (first,) = torch.autograd.grad((output.data ** 2).sum(), theirs, create_graph=True)
    (first ** 2).sum().backward()
    mine = jt.array(x)
    output = ours(rnn.pack_padded_sequence(mine, [5, 2, 4], enforce_sorted=False))[0]
    (gradient,) = jt.grad((output.data ** 2).sum(), [mine])
    assert_close(jt.grad((gradient ** 2).sum(), [mine])[0], theirs.grad)


def test_packed_input_of_full_lengths_equals_padded_input(rng):
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = jt.array(rng.standard_normal((5, 2, 3)).astype(np.float32))
    output, (h, c) = lstm(x)
    packed_output, (packed_h, packed_c) = lstm(rnn.pack_padded_sequence(x, [5, 5]))
    assert_close(rnn.pad_packed_sequence(packed_output)[0], output.numpy(), 0)
    assert_close(packed_h, h.numpy(), 0)
    assert_close(packed_c, c.numpy(), 0)


def test_torch_packed_sequence_input(rng):
    ours, reference = paired("GRU", 3, 4)
    packed = trnn.pack_sequence([torch.tensor(a) for a in sequences(rng, [2, 5, 3])], enforce_sorted=False)
    output, h = ours(packed)
    want, want_h = reference(packed)
    assert isinstance(output, rnn.PackedSequence)
    assert_close(output.data, want.data)
    assert_close(h, want_h)


def test_flatten_parameters_and_all_weights():
    for options in ({}, {"num_layers": 2, "bidirectional": True, "proj_size": 2, "bias": False}):
        ours, reference = paired("LSTM", 3, 4, **options)
        assert ours.flatten_parameters() is None and reference.flatten_parameters() is None
        names = {id(value): name for name, value in ours.named_parameters()}
        assert [[names[id(w)] for w in group] for group in ours.all_weights] == reference._all_weights


def test_utils_exports_and_clipping_is_the_optimisers():
    from metajit.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters
    assert clip_grad_norm_ is jt.optim.clip_grad_norm_ and clip_grad_value_ is jt.optim.clip_grad_value_
    assert jt.nn.utils.rnn is rnn and callable(parameters_to_vector) and callable(vector_to_parameters)


def test_parameters_to_vector_and_back_match_torch(rng):
    ours, reference = paired("GRU", 3, 4)
    vector = nn.utils.parameters_to_vector(ours.parameters())
    assert_close(vector, torch.nn.utils.parameters_to_vector(reference.parameters()), 0)
    (gradient,) = jt.grad((vector * vector).sum(), [ours.weight_hh_l0])
    assert_close(gradient, 2 * ours.weight_hh_l0.numpy(), 0)
    new = rng.standard_normal(tuple(vector.shape)).astype(np.float32)
    kept = ours.weight_ih_l0
    nn.utils.vector_to_parameters(jt.array(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), reference.parameters())
    assert ours.weight_ih_l0 is kept
    for (name, got), want in zip(ours.named_parameters(), reference.parameters()):
        assert_close(got, want, 0)
    with pytest.raises(jt.MetajitShapeError, match="hold"):
        nn.utils.vector_to_parameters(jt.array(new[:-1]), ours.parameters())
    with pytest.raises(TypeError, match="expected a Var"):
        nn.utils.vector_to_parameters(new, ours.parameters())
