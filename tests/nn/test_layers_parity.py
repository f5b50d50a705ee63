"""Convolution, pooling, normalisation and resampling layers against PyTorch (forward and
gradients, weights copied through state_dict)."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")

LAYERS = [
    ("Conv2d", (3, 4, 3), {}), ("Conv2d", (3, 6, 3), {"stride": 2, "padding": 1}),
    ("Conv2d", (3, 6, 3), {"groups": 3, "padding": 1}), ("Conv2d", (3, 2, (3, 2)), {"dilation": 2, "bias": False}),
    ("Conv1d", (3, 5, 3), {"padding": 2}), ("ConvTranspose2d", (3, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1}), ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3,), {"stride": 1, "padding": 1, "count_include_pad": False}),
    ("AdaptiveAvgPool2d", ((3, 2),), {}), ("AdaptiveMaxPool2d", (2,), {}),
    ("BatchNorm2d", (3,), {}), ("GroupNorm", (3, 3), {}), ("LayerNorm", ((6, 7),), {}),
    ("ZeroPad2d", ((1, 2, 0, 1),), {}), ("ReflectionPad2d", (2,), {}), ("ReplicationPad2d", ((1, 0, 2, 1),), {}),
    ("ConstantPad2d", (1, 3.5), {}), ("Upsample", (), {"scale_factor": 2, "mode": "nearest"}),
    ("Upsample", (), {"size": (9, 5), "mode": "bilinear"}),
    ("Upsample", (), {"scale_factor": 2, "mode": "bilinear", "align_corners": True}),
    ("PixelShuffle", (1,), {}), ("Flatten", (), {}), ("Identity", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", LAYERS, ids=[f"{n}{a}{k}" for n, a, k in LAYERS])
def test_layer_matches_torch(name, args, kwargs, rng):
    shape = (2, 3, 7) if name == "Conv1d" else (2, 3, 6, 7)
    data = rng.standard_normal(shape).astype(np.float32)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    ours = getattr(jt.nn, name)(*args, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    x, tx = jt.array(data), torch.tensor(data, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    weights = rng.standard_normal(tout.shape).astype(np.float32)
    (tout * torch.tensor(weights)).sum().backward()
    targets = [x] + ours.parameters()
    grads = jt.grad((out * jt.array(weights)).sum(), targets)
    expected = [tx.grad] + [p.grad for p in theirs.parameters()]
    for grad, want in zip(grads, expected):
        np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-3, atol=1e-4)


NORMALISATIONS = [("BatchNorm2d", (3,)), ("GroupNorm", (3, 3)), ("LayerNorm", ((6, 7),))]


@pytest.mark.parametrize("name,args", NORMALISATIONS, ids=[n for n, _ in NORMALISATIONS])
def test_normalisation_second_order_gradients_match_torch(name, args, rng):
    """The batch statistics sum values shifted by a detached element of the input;
    gradients of the gradient must still see the mean's and the variance's whole
    dependence on the input. Oracle: torch's double backward."""
    data = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    weights, direction = (rng.standard_normal((2, 3, 6, 7)).astype(np.float32) for _ in range(2))
    theirs = getattr(torch.nn, name)(*args)
    ours = getattr(jt.nn, name)(*args)
    ours.load_state_dict(theirs.state_dict())
    tx = torch.tensor(data, requires_grad=True)
    (tgrad,) = torch.autograd.grad((theirs(tx) * torch.tensor(weights)).sum(), tx, create_graph=True)
    expected = torch.autograd.grad((tgrad * torch.tensor(direction)).sum(), [tx, theirs.weight])
    x = jt.array(data)
    (grad,) = jt.grad((ours(x) * jt.array(weights)).sum(), [x], retain_graph=True)
    found = jt.grad((grad * jt.array(direction)).sum(), [x, ours.weight])
    np.testing.assert_allclose(grad.numpy(), tgrad.detach().numpy(), rtol=1e-4, atol=1e-5)
    for ours_second, want in zip(found, expected):
        np.testing.assert_allclose(ours_second.numpy(), want.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("outlier", [0.0, -30.0, 60.0])
def test_batchnorm_of_offset_inputs_matches_torch(outlier, rng):
    """Inputs far from zero (mean 1e3, spread 1): the variance and its gradient come from
    values shifted by one of them, each channel's first element, where a plain E[x^2] -
    E[x]^2 would lose them; also when that element lies tens of standard deviations out.
    Output, gradient and running statistics against torch's."""
    data = (rng.standard_normal((8, 3, 7, 7)) + 1e3).astype(np.float32)
    data[0, :, 0, 0] += outlier
    weights = rng.standard_normal(data.shape).astype(np.float32)
    theirs, ours = torch.nn.BatchNorm2d(3), jt.nn.BatchNorm2d(3)
    tx = torch.tensor(data, requires_grad=True)
    tout = theirs(tx)
    (tout * torch.tensor(weights)).sum().backward()
    x = jt.array(data)
    out = ours(x)
    (grad,) = jt.grad((out * jt.array(weights)).sum(), [x])
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-4)
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-6)


@pytest.mark.parametrize("momentum", [0.3, None])  # None: the cumulative average of every batch
def test_batchnorm_running_statistics_and_eval_match_torch(rng, momentum):
    ours, theirs = jt.nn.BatchNorm1d(4, momentum=momentum), torch.nn.BatchNorm1d(4, momentum=momentum)
    for step in range(3):
        data = rng.standard_normal((8, 4)).astype(np.float32) * 3 + step
        ours(jt.array(data))
        theirs(torch.tensor(data))
    jt.sync_all()
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5)
    assert ours.num_batches_tracked.item() == 3
    ours.eval(), theirs.eval()
    data = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(jt.array(data)).numpy(), theirs(torch.tensor(data)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_eval_batchnorm_follows_every_change_of_its_state(rng):
    """Evaluation mode reuses the folded scale and shift while the state stays the same;
    any replaced parameter or statistic, in place or by loading, must show in the output."""
    ours, theirs = jt.nn.BatchNorm2d(3).eval(), torch.nn.BatchNorm2d(3).eval()
    data = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)

    def check():
        ours.load_state_dict(theirs.state_dict()) if loading else None
        np.testing.assert_allclose(ours(jt.array(data)).numpy(), theirs(torch.tensor(data)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    loading = True
    check()
    with torch.no_grad():
        theirs.running_var.mul_(4.0)
        theirs.running_mean.add_(1.5)
    check()
    loading = False
    ours.weight.mul_(2.0), theirs.weight.data.mul_(2.0)
    check()
    ours.bias.assign(jt.array(np.full(3, -0.5, np.float32)))
    theirs.bias.data.fill_(-0.5)
    check()
    ours.eps = theirs.eps = 0.5
    check()
    with jt.no_grad():
        assert not ours(jt.array(data)).requires_grad
    out = ours(jt.array(data))
    assert out.requires_grad
    (weight_grad,) = jt.grad(out.sum(), [ours.weight])
    torch_out = theirs(torch.tensor(data))
    torch_out.sum().backward()
    np.testing.assert_allclose(weight_grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_inference_folds_batchnorm_into_the_convolution_before_it(rng, bias):
    """Without gradients, an eval BatchNorm on a convolution's output runs as one biased
    convolution with folded weights (kept between calls); any change of the convolution's
    or the BatchNorm's parameters or statistics shows in the output, and with gradients
    the layers run apart."""
    data = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1, bias=bias), torch.nn.BatchNorm2d(6)).eval()
    with torch.no_grad():
        theirs[1].running_mean.normal_()
        theirs[1].running_var.uniform_(0.5, 2.0)
        theirs[1].weight.normal_()
    ours = jt.nn.Sequential(jt.nn.Conv2d(4, 6, 3, padding=1, bias=bias), jt.nn.BatchNorm2d(6)).eval()

    def check(loading=True):
        if loading:
            ours.load_state_dict(theirs.state_dict())
        with jt.no_grad():
            with jt.debug.record_kernels() as launched:
                out = ours(jt.array(data)).numpy()
        np.testing.assert_allclose(out, theirs(torch.tensor(data)).detach().numpy(), rtol=1e-4, atol=1e-5)
        return [getattr(k.kernel, "name", "fused") for k in launched]
    check()
    names = check(loading=False)
    if jt.nn.library.claimed("conv2d_bias", jt.float32):
        assert names == ["conv2d_bias"]  # the folded weights are kept: no kernel but the convolution
    with torch.no_grad():
        theirs[1].running_var.mul_(3.0)
        theirs[0].weight.mul_(-1.0)
    check()
    ours[1].bias.assign(jt.array(np.full(6, 0.25, np.float32)))
    theirs[1].bias.data.fill_(0.25)
    check(loading=False)
    out = ours(jt.array(data))  # gradients tracked: no folding
    (grad,) = jt.grad(out.sum(), [ours[0].weight])
    theirs(torch.tensor(data)).sum().backward()
    np.testing.assert_allclose(grad.numpy(), theirs[0].weight.grad.numpy(), rtol=1e-4, atol=1e-4)


RELU_FOLDS = [(4, 6, 3, 1, 9), (64, 64, 3, 1, 20), (32, 32, 3, 8, 9), (16, 24, 1, 1, 7)]


@pytest.mark.parametrize("activation,library_op", [("ReLU", "conv2d_bias_relu"), ("ReLU6", "conv2d_bias_relu6")])
@pytest.mark.parametrize("channels,out_channels,kernel,groups,side", RELU_FOLDS,
                         ids=["direct", "winograd", "grouped", "pointwise"])
def test_inference_runs_a_relu_as_the_post_op_of_the_convolution_before_it(channels, out_channels, kernel, groups,
                                                                           side, activation, library_op, rng):
    """Without gradients, conv + eval BatchNorm + ReLU (ReLU6) is one convolution with the
    activation as its post-op on every cpu convolution path (oneDNN, Winograd, the
    4-channel grouped kernel); outputs with many negatives (and, for ReLU6, many above 6)
    match torch. With gradients nothing is folded and the gradient matches torch's."""
    torch.manual_seed(0)  # the layers' initial weights, whatever ran before
    scale = 8.0 if activation == "ReLU6" else 1.0  # outputs spread past 6
    data = (rng.standard_normal((2, channels, side, side)) * scale).astype(np.float32)
    layers = [torch.nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2, groups=groups),
              torch.nn.BatchNorm2d(out_channels), getattr(torch.nn, activation)()]
    theirs = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():
        theirs[1].running_mean.normal_()
        theirs[1].running_var.uniform_(0.5, 2.0)
    ours = jt.nn.Sequential(jt.nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2, groups=groups),
                            jt.nn.BatchNorm2d(out_channels), getattr(jt.nn, activation)()).eval()
    ours.load_state_dict(theirs.state_dict())
    expected = theirs(torch.tensor(data)).detach().numpy()
    assert 0.2 < (expected == 0).mean() < 0.8
    if activation == "ReLU6":
        assert 0.05 < (expected == 6).mean() < 0.8
    for _ in range(2):  # the second call reads the kept folded weights
        with jt.no_grad():
            with jt.debug.record_kernels() as launched:
                out = ours(jt.array(data)).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * scale)
    if jt.nn.library.claimed(library_op, jt.float32):
        assert [getattr(k.kernel, "name", "fused") for k in launched] == [library_op]
    x = jt.array(data)
    (grad,) = jt.grad((ours(x) * 1.5).sum(), [x])
    tx = torch.tensor(data, requires_grad=True)
    (theirs(tx) * 1.5).sum().backward()
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_a_live_convolution_output_under_a_folded_relu_reads_its_own_values(rng):
    """A Var the user still holds of a convolution whose ReLU was folded into another
    convolution (with the post-op) still reads the pre-activation values, the ReLU's
    Var the activated ones, as torch's (the convolution is then run twice, once folded)."""
    data, weight, bias = (rng.standard_normal(shape).astype(np.float32) for shape in ((2, 8, 9, 9), (16, 8, 3, 3), (16,)))
    with jt.no_grad():
        convolved = jt.nn.conv2d(jt.array(data), jt.array(weight), jt.array(bias), padding=1)
        activated = jt.nn.relu(convolved).numpy()
        before_relu = convolved.numpy()
    expected = torch.nn.functional.conv2d(torch.tensor(data), torch.tensor(weight), torch.tensor(bias), padding=1)
    np.testing.assert_allclose(before_relu, expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(activated, expected.relu().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("library_op,activation", [("conv2d_bias_relu", "relu"), ("conv2d_bias_relu6", "relu6")])
def test_the_fused_convolution_and_relu_library_op_has_gradients(library_op, activation, rng):
    """``conv2d_bias_relu`` (``_relu6``) applied directly (as a backend may see it)
    differentiates as relu(conv2d + bias) (relu6). Oracle: torch."""
    data = (rng.standard_normal((2, 3, 6, 6)) * 2).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    x, w, b = jt.array(data), jt.array(weight), jt.array(bias)
    out = jt.nn.library.apply(library_op, [x, w, b], ((1, 1), (1, 1), (1, 1), 1), (2, 4, 6, 6))
    grads = jt.grad((out * out).sum(), [x, w, b])
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (data, weight, bias))
    tout = getattr(torch.nn.functional, activation)(torch.nn.functional.conv2d(tx, tw, tb, padding=1))
    if activation == "relu6":
        assert 0.05 < (tout == 6).float().mean() < 0.8
    (tout * tout).sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(ours.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_dropout_and_embedding(rng):
    dropout = jt.nn.Dropout(0.5)
    kept = dropout(jt.ones(20000)).numpy()
    assert set(np.unique(kept)) <= {0.0, 2.0} and abs(kept.mean() - 1) < 0.05
    assert (dropout.eval()(jt.ones(10)).numpy() == 1).all()
    theirs = torch.nn.Embedding(6, 3)
    ours = jt.nn.Embedding(6, 3)
    ours.load_state_dict(theirs.state_dict())
    indices = np.array([[1, 5], [0, 1]])
    np.testing.assert_allclose(ours(jt.array(indices)).numpy(),
                               theirs(torch.tensor(indices)).detach().numpy())


CEIL_MODE_POOLS = [
    ("MaxPool2d", (3,), {"stride": 2, "ceil_mode": True}),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("MaxPool2d", (2,), {"stride": 2, "ceil_mode": True}),
    ("AvgPool2d", (3,), {"stride": 2, "ceil_mode": True}),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", (2,), {"stride": 3, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
]


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 8, 9), (1, 1, 13, 6)])
@pytest.mark.parametrize("name,args,kwargs", CEIL_MODE_POOLS, ids=[f"{n}{a}{k}" for n, a, k in CEIL_MODE_POOLS])
def test_ceil_mode_pooling_matches_torch(name, args, kwargs, shape, rng):
    data = rng.standard_normal(shape).astype(np.float32)
    x, tx = jt.array(data), torch.tensor(data, requires_grad=True)
    out, tout = getattr(jt.nn, name)(*args, **kwargs)(x), getattr(torch.nn, name)(*args, **kwargs)(tx)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    weights = rng.standard_normal(tout.shape).astype(np.float32)
    (tout * torch.tensor(weights)).sum().backward()
    grad = jt.grad((out * jt.array(weights)).sum(), x)
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 4), 2), ((1, 12, 5), 3), ((2, 8, 2, 2), 4)])
def test_channel_shuffle_matches_torch(shape, groups, rng):
    data = rng.standard_normal(shape).astype(np.float32)
    x, tx = jt.array(data), torch.tensor(data, requires_grad=True)
    out, tout = jt.nn.ChannelShuffle(groups)(x), torch.nn.ChannelShuffle(groups)(tx)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    weights = rng.standard_normal(shape).astype(np.float32)
    (tout * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(jt.grad((out * jt.array(weights)).sum(), x).numpy(), tx.grad.numpy())
    with pytest.raises(jt.MetajitShapeError, match="do not split"):
        jt.nn.functional.channel_shuffle(x, 5)
