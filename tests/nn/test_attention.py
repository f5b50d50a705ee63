"""Attention and transformer layers against PyTorch: `scaled_dot_product_attention`,
`MultiheadAttention` and the `Transformer` family with weights copied through state_dict
(loaded strictly), outputs, attention weights and the gradients of inputs and parameters."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")
# torch warns about mixing boolean and float masks (tested on purpose) and nested tensors
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched", "ignore:enable_nested_tensor")


def _pair_of(data, requires_grad=True):
    """(metajit Var, torch tensor) of one numpy array."""
    return jt.array(data), torch.tensor(data, requires_grad=requires_grad and data.dtype != np.bool_)


def _close(ours, theirs, tolerance=1e-4):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=tolerance, atol=tolerance)


def _check_gradients(out, tout, ours_inputs, theirs_inputs, rng, ours_module=None, theirs_module=None):
    """Gradients of a random projection of the outputs, for the inputs and (by name) the
    modules' parameters."""
    weights = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    (tout * torch.tensor(weights)).sum().backward()
    names = [name for name, _ in theirs_module.named_parameters()] if theirs_module is not None else []
    ours_parameters = dict(ours_module.named_parameters()) if ours_module is not None else {}
    grads = jt.grad((out * jt.array(weights)).sum(), list(ours_inputs) + [ours_parameters[n] for n in names])
    expected = [t.grad for t in theirs_inputs] + [p.grad for _, p in theirs_module.named_parameters()] \
        if theirs_module is not None else [t.grad for t in theirs_inputs]
    for grad, want, name in zip(grads, expected, ["input"] * len(theirs_inputs) + names):
        np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


SDPA_CASES = [
    ({}, None),
    ({"is_causal": True}, None),  # L != S: top-left aligned, as torch.tril
    ({"scale": 0.3}, "bool"),  # an (L, S) boolean mask broadcast over batch and heads
    ({}, "float"),  # an additive (N, 1, L, S) mask, itself differentiated
    ({}, "empty_row"),  # a query no key may see: zeros, as PyTorch's fused kernel
]


@pytest.mark.parametrize("settings,mask", SDPA_CASES, ids=[f"{s}-{m}" for s, m in SDPA_CASES])
def test_scaled_dot_product_attention_matches_torch(settings, mask, rng):
    shapes = [(2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)]
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    pairs = [_pair_of(d) for d in (q, k, v)]
    masks = {"bool": rng.random((4, 5)) > 0.3, "float": rng.standard_normal((2, 1, 4, 5)).astype(np.float32),
             "empty_row": np.array([[True] * 5, [False] * 5, [True, False] * 2 + [True], [False] * 4 + [True]])}
    ours_args, theirs_args = [p[0] for p in pairs], [p[1] for p in pairs]
    if mask is not None:
        ours_mask, theirs_mask = _pair_of(masks[mask])
        ours_args.append(ours_mask)
        theirs_args.append(theirs_mask)
    out = jt.nn.functional.scaled_dot_product_attention(*ours_args, **settings)
    tout = torch.nn.functional.scaled_dot_product_attention(*theirs_args, **settings)
    _close(out, tout)
    differentiated = 4 if mask == "float" else 3
    _check_gradients(out, tout, ours_args[:differentiated], theirs_args[:differentiated], rng)


def test_scaled_dot_product_attention_grouped_query_heads_and_errors(rng):
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in [(1, 4, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)])
    out = jt.nn.functional.scaled_dot_product_attention(jt.array(q), jt.array(k), jt.array(v), enable_gqa=True)
    tout = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), enable_gqa=True)
    _close(out, tout)
    with pytest.raises(jt.MetajitValueError, match="not both"):
        jt.nn.functional.scaled_dot_product_attention(jt.array(q), jt.array(k), jt.array(v),
                                                      attn_mask=jt.ones((3, 5)).bool(), is_causal=True)
    with pytest.raises(jt.MetajitDtypeError, match="bool or floating"):
        jt.nn.functional.scaled_dot_product_attention(jt.array(q), jt.array(k), jt.array(v),
                                                      attn_mask=jt.ones((3, 5)).int32())


MHA_CASES = [
    # self-attention, (L, N, E): a boolean key padding mask and a float (L, S) mask
    ({"batch_first": False}, {"self": True, "padding": True, "mask": "float"}),
    # cross-attention over other key and value widths, batch first, a 3-d boolean mask,
    # the weights of every head
    ({"batch_first": True, "kdim": 3, "vdim": 5}, {"mask": "bool3", "average_attn_weights": False}),
    # learned key/value biases and a zero key appended, no projection biases, no weights
    ({"batch_first": True, "add_bias_kv": True, "add_zero_attn": True, "bias": False},
     {"self": True, "padding": True, "need_weights": False}),
]


@pytest.mark.parametrize("settings,call", MHA_CASES, ids=[str(s) for s, _ in MHA_CASES])
def test_multihead_attention_matches_torch(settings, call, rng):
    theirs = torch.nn.MultiheadAttention(8, 2, **settings)
    ours = jt.nn.MultiheadAttention(8, 2, **settings)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    batch, target, source = 2, 3, 4
    seq_first = not settings["batch_first"]
    query = rng.standard_normal((target, batch, 8) if seq_first else (batch, target, 8)).astype(np.float32)
    if call.get("self"):
        key_data = value_data = None
    else:
        key_data = rng.standard_normal((batch, source, settings.get("kdim", 8))).astype(np.float32)
        value_data = rng.standard_normal((batch, source, settings.get("vdim", 8))).astype(np.float32)
    length = target if call.get("self") else source
    pairs = [_pair_of(query)] + ([] if call.get("self") else [_pair_of(key_data), _pair_of(value_data)])
    ours_inputs = [p[0] for p in pairs] * (3 if call.get("self") else 1)
    theirs_inputs = [p[1] for p in pairs] * (3 if call.get("self") else 1)
    options = {"need_weights": call.get("need_weights", True),
               "average_attn_weights": call.get("average_attn_weights", True)}
    ours_options, theirs_options = dict(options), dict(options)
    if call.get("padding"):
        padding = np.zeros((batch, length), bool)
        padding[0, -1] = padding[1, 0] = True
        ours_options["key_padding_mask"], theirs_options["key_padding_mask"] = _pair_of(padding)
    if call.get("mask") == "float":
        mask = rng.standard_normal((target, length)).astype(np.float32)
        ours_options["attn_mask"], theirs_options["attn_mask"] = _pair_of(mask, requires_grad=False)
    elif call.get("mask") == "bool3":
        mask = rng.random((batch * 2, target, length)) > 0.7
        mask[..., 0] = False  # every query keeps a key
        ours_options["attn_mask"], theirs_options["attn_mask"] = _pair_of(mask)
    out, weights = ours(*ours_inputs, **ours_options)
    tout, tweights = theirs(*theirs_inputs, **theirs_options)
    _close(out, tout)
    if options["need_weights"]:
        _close(weights, tweights)
    else:
        assert weights is None and tweights is None
    _check_gradients(out, tout, [p[0] for p in pairs], [p[1] for p in pairs], rng, ours, theirs)


def test_multihead_attention_unbatched_causal_hint_and_errors(rng):
    theirs, ours = torch.nn.MultiheadAttention(8, 2), jt.nn.MultiheadAttention(8, 2)
    ours.load_state_dict(theirs.state_dict())
    data = rng.standard_normal((4, 8)).astype(np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(jt.nn.Transformer.generate_square_subsequent_mask(4).numpy(), causal.numpy())
    x, tx = jt.array(data), torch.tensor(data)
    # is_causal with the mask given: the hint replaces the mask where nothing else masks
    out, weights = ours(x, x, x, attn_mask=jt.nn.Transformer.generate_square_subsequent_mask(4), is_causal=True,
                        need_weights=False)
    tout, _ = theirs(tx, tx, tx, attn_mask=causal, is_causal=True, need_weights=False)
    _close(out, tout)
    out, weights = ours(x, x, x, attn_mask=jt.nn.Transformer.generate_square_subsequent_mask(4))
    tout, tweights = theirs(tx, tx, tx, attn_mask=causal)
    _close(out, tout)
    _close(weights, tweights)
    with pytest.raises(jt.MetajitValueError, match="generate_square_subsequent_mask"):
        ours(x, x, x, is_causal=True)
    # the functional form with precomputed keys and values (N * num_heads, S, head_dim)
    static_k, static_v = (rng.standard_normal((2, 5, 4)).astype(np.float32) for _ in range(2))
    arguments = (8, 2, theirs.in_proj_weight, theirs.in_proj_bias, None, None, False, 0.0, theirs.out_proj.weight,
                 theirs.out_proj.bias)
    tout, tweights = torch.nn.functional.multi_head_attention_forward(
        tx, tx, tx, *arguments, static_k=torch.tensor(static_k), static_v=torch.tensor(static_v))
    out, weights = jt.nn.functional.multi_head_attention_forward(
        x, x, x, *(jt.array(a.detach().numpy()) if isinstance(a, torch.Tensor) else a for a in arguments),
        static_k=jt.array(static_k), static_v=jt.array(static_v))
    _close(out, tout)
    _close(weights, tweights)
    with pytest.raises(jt.MetajitValueError, match="divisible"):
        jt.nn.MultiheadAttention(10, 3)


def _transformer_inputs(rng, batch_first, length, batch=2, features=8):
    shape = (batch, length, features) if batch_first else (length, batch, features)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("batch_first,norm_first,activation", [(False, False, "relu"), (True, True, "gelu")])
def test_transformer_encoder_matches_torch(batch_first, norm_first, activation, rng):
    settings = dict(dim_feedforward=16, dropout=0.0, activation=activation, batch_first=batch_first,
                    norm_first=norm_first)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **settings), 2,
                                         torch.nn.LayerNorm(8), enable_nested_tensor=False)
    ours = jt.nn.TransformerEncoder(jt.nn.TransformerEncoderLayer(8, 2, **settings), 2, jt.nn.LayerNorm(8),
                                    enable_nested_tensor=False)
    ours.load_state_dict(theirs.state_dict())
    x, tx = _pair_of(_transformer_inputs(rng, batch_first, 4))
    padding = np.array([[False, False, False, True], [False, False, False, False]])
    out = ours(x, mask=jt.nn.Transformer.generate_square_subsequent_mask(4), src_key_padding_mask=jt.array(padding))
    tout = theirs(tx, mask=torch.nn.Transformer.generate_square_subsequent_mask(4),
                  src_key_padding_mask=torch.tensor(padding))
    _close(out, tout)
    _check_gradients(out, tout, [x], [tx], rng, ours, theirs)


def test_transformer_matches_torch(rng):
    """The whole encoder-decoder with norm_first, no biases (LayerNorms without one too):
    masks on every attention, gradients of both inputs and every parameter."""
    settings = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16,
                    dropout=0.0, norm_first=True, bias=False)
    theirs = torch.nn.Transformer(**settings)
    ours = jt.nn.Transformer(**settings)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    src, tsrc = _pair_of(_transformer_inputs(rng, False, 4))
    tgt, ttgt = _pair_of(_transformer_inputs(rng, False, 3))
    padding = np.array([[False, False, True, True], [False, False, False, False]])
    out = ours(src, tgt, tgt_mask=jt.nn.Transformer.generate_square_subsequent_mask(3),
               memory_key_padding_mask=jt.array(padding), src_key_padding_mask=jt.array(padding))
    tout = theirs(tsrc, ttgt, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(3),
                  memory_key_padding_mask=torch.tensor(padding), src_key_padding_mask=torch.tensor(padding))
    _close(out, tout)
    _check_gradients(out, tout, [src, tgt], [tsrc, ttgt], rng, ours, theirs)


def test_transformer_decoder_layer_post_norm_matches_torch(rng):
    settings = dict(dim_feedforward=16, dropout=0.0, batch_first=True)
    theirs = torch.nn.TransformerDecoderLayer(8, 2, **settings)
    ours = jt.nn.TransformerDecoderLayer(8, 2, **settings)
    ours.load_state_dict(theirs.state_dict())
    tgt, ttgt = _pair_of(_transformer_inputs(rng, True, 3))
    memory, tmemory = _pair_of(_transformer_inputs(rng, True, 5))
    memory_mask = rng.standard_normal((3, 5)).astype(np.float32)
    out = ours(tgt, memory, tgt_mask=jt.nn.Transformer.generate_square_subsequent_mask(3), tgt_is_causal=True,
               memory_mask=jt.array(memory_mask))
    tout = theirs(ttgt, tmemory, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(3),
                  tgt_is_causal=True, memory_mask=torch.tensor(memory_mask))
    _close(out, tout)
    _check_gradients(out, tout, [tgt, memory], [ttgt, tmemory], rng, ours, theirs)
    with pytest.raises(jt.MetajitValueError, match="activation"):
        jt.nn.TransformerEncoderLayer(8, 2, activation="tanh")
