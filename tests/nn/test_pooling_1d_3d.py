"""1-d and 3-d pooling, convolution and padding (and the 2-d additions: return_indices,
max unpooling, lp pooling, transposed-convolution groups, ``padding="same"`` and
``padding_mode``) against PyTorch: outputs, indices, and the gradients of the input and
of parameters copied through state_dict."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels

SHAPES = {1: (2, 3, 9), 2: (2, 3, 7, 8), 3: (2, 2, 5, 6, 7)}

FUNCTIONS = [
    ("max_pool1d", (3,), {"stride": 2, "padding": 1}), ("max_pool1d", (2,), {"ceil_mode": True, "dilation": 2}),
    ("avg_pool1d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("avg_pool1d", (2,), {"ceil_mode": True}),
    ("adaptive_avg_pool1d", (4,), {}), ("adaptive_max_pool1d", (4,), {}), ("lp_pool1d", (2, 3), {"stride": 2}),
    ("max_pool3d", (3,), {"stride": 2, "padding": 1}), ("max_pool3d", ((1, 2, 2),), {"dilation": (2, 1, 2)}),
    ("avg_pool3d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("avg_pool3d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("avg_pool3d", (2,), {"divisor_override": 3}), ("avg_pool2d", (3,), {"stride": 2, "divisor_override": 5}),
    ("adaptive_avg_pool3d", ((2, 3, None),), {}), ("adaptive_max_pool3d", ((2, 4, 3),), {}),
    ("lp_pool2d", (3, 2), {}), ("lp_pool3d", (2, 2), {}), ("lp_pool2d", (float("inf"), 2), {}),
    # output sizes dividing the input's: equal tiles, reduced through a reshape
    ("adaptive_avg_pool1d", (3,), {}), ("adaptive_avg_pool2d", (1,), {}), ("adaptive_max_pool2d", ((7, 4),), {}),
    ("adaptive_avg_pool3d", ((1, 3, 7),), {}), ("adaptive_max_pool3d", ((5, 2, 1),), {}),
]


def _spatial(name):
    return int(name[-2])  # max_pool3d: 3


def test_pooling_functions_match_torch(rng):
    """Each function on a batched input (output and input gradient) and on an unbatched one."""
    for name, args, settings in FUNCTIONS:
        data = rng.standard_normal(SHAPES[_spatial(name)]).astype(np.float32)
        if name.startswith("lp"):
            data = np.abs(data) + 0.5  # a power of a negative number is nan
        x, tx = jt.array(data), torch.tensor(data, requires_grad=True)
        out = getattr(jt.nn.functional, name)(x, *args, **settings)
        tout = getattr(torch.nn.functional, name)(tx, *args, **settings)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
        weights = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
        (tout * torch.tensor(weights)).sum().backward()
        (grad,) = jt.grad((out * jt.array(weights)).sum(), [x])
        np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
        single = getattr(jt.nn.functional, name)(jt.array(data[0]), *args, **settings)
        expected = getattr(torch.nn.functional, name)(torch.tensor(data[0]), *args, **settings)
        np.testing.assert_allclose(single.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


INDEXED = [("max_pool1d", (2,), {"ceil_mode": True}), ("max_pool2d", (3,), {"stride": 2, "padding": 1, "dilation": 2}),
           ("max_pool3d", (2,), {}), ("adaptive_max_pool1d", (4,), {}), ("adaptive_max_pool2d", ((3, 5),), {}),
           ("adaptive_max_pool3d", ((2, 4, 3),), {})]


def test_max_pooling_indices_and_unpooling_match_torch(rng):
    """``return_indices``: the flat position of each maximum in its input plane; max
    unpooling scatters values back to them (input gradient: gathered back)."""
    for name, args, settings in INDEXED:
        data = rng.standard_normal(SHAPES[_spatial(name)]).astype(np.float32)
        values, indices = getattr(jt.nn.functional, name)(jt.array(data), *args, return_indices=True, **settings)
        tvalues, tindices = getattr(torch.nn.functional, name)(torch.tensor(data), *args, return_indices=True,
                                                               **settings)
        np.testing.assert_allclose(values.numpy(), tvalues.numpy(), rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(indices.numpy(), tindices.numpy(), err_msg=name)
    values, indices = jt.nn.functional.max_pool2d_with_indices(jt.array(data[:, :, 0]), 2)
    assert indices.dtype == "int64" and values.shape == (2, 2, 3, 3)
    for spatial in (1, 2, 3):
        data = rng.standard_normal(SHAPES[spatial]).astype(np.float32)
        tvalues, tindices = getattr(torch.nn.functional, f"max_pool{spatial}d")(torch.tensor(data), 2,
                                                                                 return_indices=True)
        x = jt.array(tvalues.numpy())
        tx = tvalues.clone().requires_grad_()
        unpool, tunpool = (getattr(jt.nn, f"MaxUnpool{spatial}d")(2), getattr(torch.nn, f"MaxUnpool{spatial}d")(2))
        out = unpool(x, jt.array(tindices.numpy()), output_size=data.shape)
        tout = tunpool(tx, tindices, output_size=data.shape)
        np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
        weights = rng.standard_normal(data.shape).astype(np.float32)
        (tout * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(jt.grad((out * jt.array(weights)).sum(), [x])[0].numpy(), tx.grad.numpy())


LAYERS = [
    ("Conv3d", (2, 4, 3), {"padding": 1, "groups": 2}, (2, 2, 5, 6, 4)),
    ("Conv3d", (2, 3, (3, 2, 2)), {"padding": "same", "dilation": (1, 2, 1), "padding_mode": "circular"},
     (2, 2, 5, 6, 4)),
    ("Conv3d", (2, 3, 2), {"stride": 2, "padding": 1, "padding_mode": "reflect", "bias": False}, (2, 2, 5, 6, 4)),
    ("Conv1d", (2, 3, 4), {"padding": "same"}, (2, 2, 9)),
    ("Conv2d", (2, 4, (2, 3)), {"padding": "same", "padding_mode": "replicate", "groups": 2}, (2, 2, 5, 6)),
    ("Conv2d", (2, 4, 3), {"padding": "valid"}, (2, 5, 6)),
    ("ConvTranspose1d", (4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 6)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 3, "groups": 2}, (2, 4, 5, 6)),
    ("ConvTranspose3d", (2, 3, (2, 3, 2)), {"stride": (2, 1, 2), "padding": (0, 1, 1), "dilation": (1, 2, 1)},
     (2, 2, 3, 4, 3)),
    ("MaxPool1d", (2,), {"stride": 1}, (2, 3, 6)), ("MaxPool3d", (2,), {"ceil_mode": True}, (2, 2, 5, 6, 7)),
    ("AvgPool1d", (3,), {"stride": 2}, (2, 3, 9)), ("AvgPool3d", (2,), {"padding": 1}, (2, 2, 3, 4, 5)),
    ("LPPool1d", (2, 3), {}, (2, 3, 7)), ("AdaptiveAvgPool3d", (2,), {}, (2, 2, 3, 4, 5)),
    ("AdaptiveMaxPool1d", (3,), {}, (2, 3, 8)),
    ("ZeroPad1d", ((1, 2),), {}, (2, 3, 5)), ("ZeroPad3d", (1,), {}, (2, 2, 3, 4, 5)),
    ("ConstantPad1d", (2, -1.5), {}, (2, 3, 5)), ("ConstantPad3d", (1, 2.5), {}, (2, 2, 3, 4, 5)),
    ("ReflectionPad1d", (2,), {}, (2, 3, 5)), ("ReflectionPad3d", ((1, 0, 2, 1, 0, 1),), {}, (2, 2, 3, 4, 5)),
    ("ReplicationPad1d", ((2, 1),), {}, (2, 3, 5)), ("ReplicationPad3d", (1,), {}, (2, 2, 3, 4, 5)),
    ("CircularPad1d", ((2, 1),), {}, (2, 3, 5)), ("CircularPad2d", ((1, 2, 2, 0),), {}, (2, 3, 4, 5)),
    ("CircularPad3d", (1,), {}, (2, 2, 3, 4, 5)),
    ("PixelShuffle", (2,), {}, (2, 8, 3, 2)), ("PixelUnshuffle", (2,), {}, (2, 2, 4, 6)),
]


def test_layers_match_torch(rng):
    """Each module with PyTorch's weights (strict state_dict): output, and the gradients of
    the input and every parameter."""
    for name, args, settings, shape in LAYERS:
        data = rng.standard_normal(shape).astype(np.float32)
        if name.startswith("LP"):
            data = np.abs(data) + 0.5
        theirs, ours = getattr(torch.nn, name)(*args, **settings), getattr(jt.nn, name)(*args, **settings)
        ours.load_state_dict(theirs.state_dict())
        x, tx = jt.array(data), torch.tensor(data, requires_grad=True)
        out, tout = ours(x), theirs(tx)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
        weights = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
        (tout * torch.tensor(weights)).sum().backward()
        grads = jt.grad((out * jt.array(weights)).sum(), [x] + ours.parameters())
        for grad, want in zip(grads, [tx.grad] + [p.grad for p in theirs.parameters()]):
            np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-3, atol=1e-3, err_msg=name)


def test_transposed_convolution_output_size_and_unbatched_inputs(rng):
    theirs, ours = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), jt.nn.ConvTranspose2d(2, 3, 3, stride=2,
                                                                                                 padding=1)
    ours.load_state_dict(theirs.state_dict())
    data = rng.standard_normal((2, 4, 5)).astype(np.float32)  # unbatched (C, H, W)
    np.testing.assert_allclose(ours(jt.array(data), output_size=(8, 10)).numpy(),
                               theirs(torch.tensor(data), output_size=(8, 10)).detach().numpy(), rtol=1e-4, atol=1e-5)
    weight = rng.standard_normal((4, 2, 3, 3, 3)).astype(np.float32)
    volume = rng.standard_normal((2, 4, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(jt.nn.functional.conv3d(jt.array(volume), jt.array(weight), padding="same").numpy(),
                               torch.nn.functional.conv3d(torch.tensor(volume), torch.tensor(weight),
                                                          padding="same").numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(jt.MetajitShapeError, match="cannot come from"):
        ours(jt.array(data), output_size=(12, 10))


def test_jittor_pool_returns_indices_and_errors_name_the_fix():
    data = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    values, indices = jt.nn.Pool(2, return_indices=True)(jt.array(data))
    expected = torch.nn.functional.max_pool2d(torch.tensor(data), 2, return_indices=True)[1]
    np.testing.assert_array_equal(indices.numpy(), expected.numpy())
    with pytest.raises(jt.MetajitValueError, match="stride 1"):
        jt.nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(jt.MetajitValueError, match="padding_mode"):
        jt.nn.Conv3d(2, 2, 3, padding_mode="mirror")
    with pytest.raises(jt.MetajitValueError, match="at most half"):
        jt.nn.functional.max_pool3d(jt.array(data[None]), 2, padding=2)
    with pytest.raises(jt.MetajitShapeError, match=r"\(N, C, L\)"):
        jt.nn.functional.max_pool1d(jt.array(data), 2)
