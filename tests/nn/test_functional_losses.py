"""Functional normalisations, dropouts, embeddings, distances and losses against PyTorch
on the CPU: forward for every reduction and option, gradients through torch's autograd."""
import math

import numpy as np
import pytest

import metajit as jt
from metajit.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def to_numpy(value):
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def compare(ours, theirs, arrays, differentiable=(), rtol=1e-4, atol=1e-5, seed=0, what=""):
    """``ours(*Vars)`` against ``theirs(*tensors)`` on ``arrays``, and the gradients of a
    random weighting of the output with respect to the inputs numbered in ``differentiable``."""
    ours_inputs = [jt.array(a) for a in arrays]
    theirs_inputs = [torch.tensor(a, requires_grad=i in differentiable) for i, a in enumerate(arrays)]
    out, expected = ours(*ours_inputs), theirs(*theirs_inputs)
    np.testing.assert_allclose(out.numpy(), to_numpy(expected), rtol=rtol, atol=atol, err_msg=f"{what} forward")
    if not differentiable:
        return out
    weights = np.random.default_rng(seed).standard_normal(tuple(expected.shape)).astype(np.float32)
    (expected * torch.tensor(weights)).sum().backward()
    grads = jt.grad((out * jt.array(weights)).sum(), [ours_inputs[i] for i in differentiable])
    for i, grad in zip(differentiable, grads):
        np.testing.assert_allclose(grad.numpy(), to_numpy(theirs_inputs[i].grad), rtol=rtol, atol=atol,
                                   err_msg=f"{what} gradient of input {i}")
    return out


def normal(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- normalisation


def test_batch_norm_functional_updates_running_statistics_as_torch(rng):
    for shape in [(4, 3, 5), (3, 3, 2, 4)]:
        x, weight, bias = normal(rng, *shape, scale=3), normal(rng, 3), normal(rng, 3)
        ours_stats = [jt.array(np.zeros(3, np.float32)), jt.array(np.ones(3, np.float32))]
        theirs_stats = [torch.zeros(3), torch.ones(3)]
        compare(lambda x, w, b: F.batch_norm(x, *ours_stats, w, b, training=True, momentum=0.3),
                lambda x, w, b: TF.batch_norm(x, *theirs_stats, w, b, training=True, momentum=0.3),
                [x, weight, bias], (0, 1, 2), what=f"batch_norm train {shape}")
        for ours_stat, theirs_stat in zip(ours_stats, theirs_stats):
            np.testing.assert_allclose(ours_stat.numpy(), theirs_stat.numpy(), rtol=1e-5, atol=1e-6)
        compare(lambda x, w: F.batch_norm(x, *ours_stats, w, None, eps=1e-3),
                lambda x, w: TF.batch_norm(x, *theirs_stats, w, None, eps=1e-3),
                [x, weight], (0, 1), what="batch_norm eval")
    compare(lambda x: F.batch_norm(x, None, None, training=True), lambda x: TF.batch_norm(x, None, None, training=True),
            [normal(rng, 5, 2)], (0,), what="batch_norm without running statistics")
    with pytest.raises(jt.MetajitValueError, match="running_mean and running_var"):
        F.batch_norm(jt.array(x), None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(jt.array(normal(rng, 1, 3)), None, None, training=True)


def test_instance_layer_group_rms_and_local_response_norms_match_torch(rng):
    x = normal(rng, 2, 4, 3, 5, scale=2) + 1.0
    weight, bias = normal(rng, 4), normal(rng, 4)
    ours_stats = [jt.array(np.zeros(4, np.float32)), jt.array(np.ones(4, np.float32))]
    theirs_stats = [torch.zeros(4), torch.ones(4)]
    compare(lambda x, w, b: F.instance_norm(x, *ours_stats, w, b, momentum=0.2),
            lambda x, w, b: TF.instance_norm(x, *theirs_stats, w, b, momentum=0.2),
            [x, weight, bias], (0, 1, 2), what="instance_norm")
    for ours_stat, theirs_stat in zip(ours_stats, theirs_stats):
        np.testing.assert_allclose(ours_stat.numpy(), theirs_stat.numpy(), rtol=1e-5, atol=1e-6)
    compare(lambda x: F.instance_norm(x, *ours_stats, use_input_stats=False),
            lambda x: TF.instance_norm(x, *theirs_stats, use_input_stats=False), [x], (0,),
            what="instance_norm with running statistics")
    compare(lambda x: F.instance_norm(x), lambda x: TF.instance_norm(x), [x[:, :, 0]], (0,), what="instance_norm 1d")
    compare(lambda x, w, b: F.layer_norm(x, (3, 5), w, b), lambda x, w, b: TF.layer_norm(x, (3, 5), w, b),
            [x, normal(rng, 3, 5), normal(rng, 3, 5)], (0, 1, 2), what="layer_norm")
    compare(lambda x: F.layer_norm(x, 5), lambda x: TF.layer_norm(x, (5,)), [x], (0,), what="layer_norm int shape")
    compare(lambda x, w, b: F.group_norm(x, 2, w, b), lambda x, w, b: TF.group_norm(x, 2, w, b),
            [x, weight, bias], (0, 1, 2), what="group_norm")
    compare(lambda x: F.group_norm(x, 4), lambda x: TF.group_norm(x, 4), [x], (0,), what="group_norm no affine")
    compare(lambda x, w: F.rms_norm(x, (5,), w), lambda x, w: TF.rms_norm(x, (5,), w),
            [x, normal(rng, 5)], (0, 1), what="rms_norm")
    compare(lambda x: F.rms_norm(x, (3, 5), eps=0.5), lambda x: TF.rms_norm(x, (3, 5), eps=0.5), [x], (0,),
            what="rms_norm eps")
    for size, data in [(3, x), (4, x[:, :, 0]), (2, x[:, :, :, :, None])]:
        compare(lambda x: F.local_response_norm(x, size, alpha=0.1, beta=0.6, k=1.5),
                lambda x: TF.local_response_norm(x, size, alpha=0.1, beta=0.6, k=1.5),
                [data], (0,), what=f"local_response_norm size {size} shape {data.shape}")
    with pytest.raises(jt.MetajitShapeError, match="num_groups must divide"):
        F.group_norm(jt.array(x), 3)
    with pytest.raises(jt.MetajitShapeError, match="trailing dims"):
        F.layer_norm(jt.array(x), (4,))


def _copied(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours


def test_norm_layers_train_and_eval_match_torch(rng):
    cases = [
        ("InstanceNorm1d", (4,), {}, (3, 4, 6)), ("InstanceNorm1d", (4,), {"affine": True}, (4, 6)),
        ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True}, (2, 3, 4, 5)),
        ("InstanceNorm3d", (2,), {"track_running_stats": True, "momentum": None}, (2, 2, 3, 2, 2)),
        ("InstanceNorm3d", (2,), {"track_running_stats": True}, (2, 3, 2, 2)),
        ("BatchNorm3d", (2,), {"momentum": 0.5}, (3, 2, 2, 3, 2)),
        ("BatchNorm2d", (3,), {}, (2, 3, 4, 4)), ("LayerNorm", ((4, 5),), {}, (2, 3, 4, 5)),
        ("LayerNorm", (5,), {"bias": False}, (2, 5)),
        ("GroupNorm", (2, 4), {}, (2, 4, 3)), ("RMSNorm", (5,), {}, (3, 5)),
        ("RMSNorm", ((2, 5),), {"eps": 1e-3, "elementwise_affine": False}, (3, 2, 5)),
        ("LocalResponseNorm", (3,), {"k": 2.0}, (2, 5, 3, 3)),
    ]
    for name, args, kwargs, shape in cases:
        theirs = getattr(torch.nn, name)(*args, **kwargs)
        for parameter in theirs.parameters():
            torch.nn.init.normal_(parameter)
        ours = _copied(getattr(jt.nn, name)(*args, **kwargs), theirs)
        for step in range(2):
            compare(ours, theirs, [normal(rng, *shape, scale=2) + step], (0,), what=f"{name}{kwargs} train {step}")
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {key}")
        ours.eval(), theirs.eval()
        compare(ours, theirs, [normal(rng, *shape)], (0,), what=f"{name}{kwargs} eval")
    with pytest.raises(jt.MetajitShapeError, match="InstanceNorm2d expects"):
        jt.nn.InstanceNorm2d(3)(jt.array(normal(rng, 3, 4)))


# ---------------------------------------------------------------- dropout


def _affine_map(x, out):
    """(scale, shift, dropped value, dropped mask) of an alpha-dropout output: the dropped
    elements share one value, the kept ones are an affine map of the input."""
    values, counts = np.unique(out, return_counts=True)
    dropped_value = values[counts.argmax()]
    dropped = out == dropped_value
    scale, shift = np.polyfit(x[~dropped], out[~dropped], 1)
    return scale, shift, dropped_value, dropped


SPATIAL_DIMS = {"dropout": 0, "dropout1d": 1, "dropout2d": 2, "dropout3d": 3}


def _near_rate(dropped, p, draws):
    return abs(dropped.mean() - p) < 4 * math.sqrt(p * (1 - p) / draws)


def test_dropout_variants_drop_channels_scale_and_respect_training(rng):
    jt.set_global_seed(5)
    x = normal(rng, 40, 50, 3, 2) + 5.0  # no zero inputs: a zero output means dropped
    for name, p, shape in [("dropout", 0.3, (40, 50, 3, 2)), ("dropout1d", 0.4, (40, 50, 6)),
                           ("dropout1d", 0.4, (50, 6)), ("dropout2d", 0.25, (40, 50, 3, 2)),
                           ("dropout3d", 0.5, (40, 50, 3, 2)), ("dropout3d", 0.5, (40, 50, 3, 2, 1))]:
        data = x.reshape(-1)[:math.prod(shape)].reshape(shape)
        function = getattr(F, name)
        jt.set_global_seed(1)
        out = function(jt.array(data), p, training=True).numpy()
        dropped = out == 0
        np.testing.assert_allclose(out[~dropped], data[~dropped] / (1 - p), rtol=1e-6)
        spatial = math.prod(data.shape[data.ndim - SPATIAL_DIMS[name]:])
        assert _near_rate(dropped, p, data.size // spatial), (name, dropped.mean())
        per_unit = dropped.reshape(-1, spatial)  # whole channels: all or none of their elements
        assert (per_unit.all(1) == per_unit.any(1)).all(), name
        np.testing.assert_array_equal(function(jt.array(data), p, training=False).numpy(), data)
        jt.set_global_seed(1)
        xv = jt.array(data)
        grad = jt.grad(function(xv, p, training=True).sum(), xv).numpy()
        np.testing.assert_allclose(grad, np.where(dropped, 0.0, 1 / (1 - p)), rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(function(jt.array(data), 1.0).numpy(), np.zeros_like(data))
    with pytest.raises(jt.MetajitShapeError, match="dropout1d"):
        F.dropout1d(jt.array(x), 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout2d(jt.array(x), 1.5)
    with pytest.raises(jt.MetajitValueError, match="between 0 and 1"):
        jt.nn.Dropout3d(-0.1)
    jt.set_global_seed(7)
    first = F.dropout2d(jt.array(x), 0.5).numpy()
    jt.set_global_seed(7)
    np.testing.assert_array_equal(F.dropout2d(jt.array(x), 0.5).numpy(), first)


def test_alpha_dropout_matches_torch_affine_map_and_keeps_moments(rng):
    jt.set_global_seed(6)
    x = normal(rng, 200, 100, 2)
    for ours, theirs, per_channel in [(F.alpha_dropout, TF.alpha_dropout, False),
                                      (F.feature_alpha_dropout, TF.feature_alpha_dropout, True)]:
        for p in (0.2, 0.5):
            out = ours(jt.array(x), p, training=True).numpy()
            expected = theirs(torch.tensor(x), p, training=True).numpy()
            *ours_map, dropped = _affine_map(x, out)
            *theirs_map, _ = _affine_map(x, expected)
            np.testing.assert_allclose(ours_map, theirs_map, rtol=1e-4, atol=1e-5)
            assert _near_rate(dropped, p, x.size // 2 if per_channel else x.size)
            if per_channel:
                assert (dropped.all(-1) == dropped.any(-1)).all()
            assert abs(out.mean()) < 0.05 and abs(out.std() - 1) < 0.05  # SELU's fixed point kept
            jt.set_global_seed(int(p * 10))
            out = ours(jt.array(x), p, training=True).numpy()
            jt.set_global_seed(int(p * 10))
            xv = jt.array(x)
            grad = jt.grad(ours(xv, p, training=True).sum(), xv).numpy()
            np.testing.assert_allclose(grad, np.where(out == ours_map[2], 0.0, ours_map[0]), rtol=1e-4)
        np.testing.assert_array_equal(ours(jt.array(x), 0.5).numpy(), x)  # training=False by default
    for name in ("AlphaDropout", "FeatureAlphaDropout", "Dropout1d", "Dropout2d"):
        layer = getattr(jt.nn, name)(0.3)
        data = x[:4, :5, :, None] if name == "FeatureAlphaDropout" else x[:4]
        assert (layer(jt.array(data)).numpy() != data).any(), name
        layer.eval()
        np.testing.assert_array_equal(layer(jt.array(data)).numpy(), data)
        assert repr(layer) == f"{name}(p=0.3)"


def test_gumbel_softmax_repeats_with_the_seed_and_matches_torch_for_its_noise(rng):
    logits = normal(rng, 3, 5, scale=2)
    for tau, hard, dim in [(1.0, False, -1), (0.5, True, -1), (2.0, False, 0), (0.7, True, 0)]:
        jt.set_global_seed(11)
        x = jt.array(logits)
        sample = F.gumbel_softmax(x, tau=tau, hard=hard, dim=dim)
        jt.set_global_seed(11)
        soft = F.gumbel_softmax(jt.array(logits), tau=tau, dim=dim).numpy()
        assert (F.gumbel_softmax(jt.array(logits), tau=tau, dim=dim).numpy() != soft).all()  # a fresh draw
        np.testing.assert_allclose(soft.sum(dim), 1.0, rtol=1e-5)
        noise = torch.tensor(tau * np.log(soft) - logits)  # the Gumbel noise drawn, up to a constant per slice
        tx = torch.tensor(logits, requires_grad=True)
        expected = torch.softmax((tx + noise) / tau, dim)  # torch's own formula from here on
        if hard:
            one_hot = torch.zeros_like(expected).scatter_(dim, expected.argmax(dim, keepdim=True), 1.0)
            expected = one_hot - expected.detach() + expected
        np.testing.assert_allclose(sample.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
        weights = normal(rng, 3, 5)
        (expected * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(jt.grad((sample * jt.array(weights)).sum(), x).numpy(), tx.grad.numpy(),
                                   rtol=1e-3, atol=1e-5)
    probabilities = np.exp(logits[0]) / np.exp(logits[0]).sum()
    draws = F.gumbel_softmax(jt.array(np.repeat(logits[:1], 4000, 0)), hard=True).numpy()
    np.testing.assert_allclose(draws.mean(0), probabilities, atol=0.03)


# ---------------------------------------------------------------- embeddings, linear maps, activations


def test_embedding_options_match_torch(rng):
    table = normal(rng, 7, 3, scale=2)
    indices = np.array([[1, 3, 0, 3], [6, 1, 1, 5]], np.int64)
    for kwargs in [{}, {"padding_idx": 1}, {"padding_idx": -2}, {"scale_grad_by_freq": True},
                   {"scale_grad_by_freq": True, "padding_idx": 3}]:
        compare(lambda w: F.embedding(jt.array(indices), w, **kwargs),
                lambda w: TF.embedding(torch.tensor(indices), w, **kwargs), [table], (0,), what=f"embedding {kwargs}")
    for max_norm, norm_type in [(1.0, 2.0), (2.5, 1.0)]:
        ours, theirs = jt.array(table), torch.tensor(table, requires_grad=True)
        out = F.embedding(jt.array(indices), ours, max_norm=max_norm, norm_type=norm_type)
        expected = TF.embedding(torch.tensor(indices), theirs, max_norm=max_norm, norm_type=norm_type)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)  # renormed in place
        expected.sum().backward()
        np.testing.assert_allclose(jt.grad(out.sum(), ours).numpy(), theirs.grad.numpy())
    layer = jt.nn.Embedding(5, 2, padding_idx=0)
    np.testing.assert_array_equal(layer.weight.numpy()[0], [0, 0])
    grad = jt.grad(layer(jt.array(np.array([0, 2, 0]))).sum(), layer.weight).numpy()
    np.testing.assert_array_equal(grad, [[0, 0], [0, 0], [1, 1], [0, 0], [0, 0]])
    frozen = jt.nn.Embedding.from_pretrained(jt.array(table))
    np.testing.assert_array_equal(frozen(jt.array(indices)).numpy(), table[indices])
    assert not frozen.weight.requires_grad and jt.nn.Embedding.from_pretrained(jt.array(table), False).weight.requires_grad
    with pytest.raises(jt.MetajitIndexError, match="padding_idx 7"):
        F.embedding(jt.array(indices), jt.array(table), padding_idx=7)


def test_prelu_bilinear_sigmoid_tanh_and_small_layers_match_torch(rng):
    x = normal(rng, 2, 3, 4, scale=2)
    x[0, 0, :2] = 0.0
    compare(F.prelu, TF.prelu, [x, np.array([0.2], np.float32)], (0, 1), what="prelu one weight")
    compare(F.prelu, TF.prelu, [x, normal(rng, 3)], (0, 1), what="prelu per channel")
    compare(F.prelu, TF.prelu, [x[0, 0], normal(rng, 1)], (0, 1), what="prelu 1-d")
    kinks = np.array([0.0, -0.0, 1e-8, -30.0, 30.0, 100.0, -100.0], np.float32)  # softplus' gradient 1/2 at 0
    compare(F.softplus, TF.softplus, [kinks], (0,), what="softplus")
    compare(F.logsigmoid, TF.logsigmoid, [kinks], (0,), what="logsigmoid")
    compare(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
            [kinks, np.linspace(0, 1, 7).astype(np.float32)], (0, 1), what="binary_cross_entropy_with_logits")
    compare(F.sigmoid, TF.sigmoid, [x * 20], (0,), what="sigmoid")
    compare(F.tanh, TF.tanh, [x * 20], (0,), what="tanh")
    compare(F.bilinear, TF.bilinear, [normal(rng, 2, 3, 4), normal(rng, 2, 3, 5), normal(rng, 6, 4, 5),
                                      normal(rng, 6)], (0, 1, 2, 3), what="bilinear")
    compare(F.bilinear, TF.bilinear, [normal(rng, 3, 4), normal(rng, 3, 2), normal(rng, 2, 4, 2)], (0, 1, 2),
            what="bilinear without bias")
    theirs = torch.nn.Bilinear(4, 5, 3)
    ours = _copied(jt.nn.Bilinear(4, 5, 3), theirs)
    compare(ours, theirs, [normal(rng, 6, 4), normal(rng, 6, 5)], (0, 1), what="Bilinear")
    bound = 1 / math.sqrt(4)
    assert np.abs(jt.nn.Bilinear(4, 5, 3).weight.numpy()).max() <= bound
    for ours, theirs, data in [
        (jt.nn.Unflatten(1, (2, 6)), torch.nn.Unflatten(1, (2, 6)), normal(rng, 3, 12, 2)),
        (jt.nn.Unflatten(-1, (3, -1)), torch.nn.Unflatten(-1, (3, -1)), normal(rng, 2, 12)),
        (jt.nn.Softmax2d(), torch.nn.Softmax2d(), normal(rng, 2, 3, 4, 5)),
        (jt.nn.Softmax2d(), torch.nn.Softmax2d(), normal(rng, 3, 4, 5)),
        (jt.nn.PReLU(3), torch.nn.PReLU(3), normal(rng, 2, 3, 4)),
    ]:
        compare(ours, theirs, [data], (0,), what=type(ours).__name__)


# ---------------------------------------------------------------- distances


def test_distances_match_torch_including_zero_vectors_and_equal_points(rng):
    a, b = normal(rng, 4, 5), normal(rng, 4, 5)
    a[1] = 0.0  # a zero vector: cosine 0, norms clamped at eps
    b[2] = a[2]  # equal points: pairwise_distance's eps keeps them apart
    compare(F.cosine_similarity, TF.cosine_similarity, [a, b], (0, 1), rtol=1e-4, what="cosine_similarity")
    compare(lambda x, y: F.cosine_similarity(x, y, dim=-1, eps=1e-3),
            lambda x, y: TF.cosine_similarity(x, y, dim=-1, eps=1e-3),
            [a[:, None], b[None]], (0, 1), what="cosine_similarity broadcast")
    compare(lambda x, y: F.cosine_similarity(x, y, 1), lambda x, y: TF.cosine_similarity(x, y, 1),
            [a[:, :1], b], (0, 1), what="cosine_similarity broadcast along dim")
    for p, eps, keepdim in [(2.0, 1e-6, False), (1.0, 0.0, True), (3.0, 1e-6, False), (math.inf, 1e-6, False),
                            (0.5, 1e-3, False)]:
        compare(lambda x, y: F.pairwise_distance(x, y, p, eps, keepdim),
                lambda x, y: TF.pairwise_distance(x, y, p, eps, keepdim),
                [a, b], (0, 1), what=f"pairwise_distance p={p} eps={eps}")
    compare(F.pairwise_distance, TF.pairwise_distance, [a, b[0]], (0, 1), what="pairwise_distance broadcast")
    points = normal(rng, 5, 3)
    points[3] = points[1]
    for p in (2, 1, 3.0, math.inf, 0):
        compare(lambda x: F.pdist(x, p), lambda x: TF.pdist(x, p), [points], (0,), what=f"pdist p={p}")
    assert F.pdist(jt.array(points[:1])).shape == (0,)
    compare(jt.nn.CosineSimilarity(dim=0), torch.nn.CosineSimilarity(dim=0), [a, b], (0, 1), what="module")
    compare(jt.nn.PairwiseDistance(p=1.0, keepdim=True), torch.nn.PairwiseDistance(p=1.0, keepdim=True),
            [a, b], (0, 1), what="PairwiseDistance")
    with pytest.raises(jt.MetajitShapeError, match="pdist"):
        F.pdist(jt.array(a[None]))


# ---------------------------------------------------------------- losses

REDUCTIONS = ("mean", "sum", "none")


def signs(rng, *shape):
    return rng.choice([-1.0, 1.0], shape).astype(np.float32)


def test_margin_and_embedding_losses_match_torch(rng):
    a, b = normal(rng, 6, 4), normal(rng, 6, 4)
    target = signs(rng, 6)
    for reduction in REDUCTIONS:
        for margin in (0.0, 0.3):
            compare(lambda x, y, t: F.cosine_embedding_loss(x, y, t, margin, reduction=reduction),
                    lambda x, y, t: TF.cosine_embedding_loss(x, y, t, margin, reduction=reduction),
                    [a, b, target], (0, 1), what=f"cosine_embedding_loss {reduction} {margin}")
            compare(lambda x, y, t: F.margin_ranking_loss(x, y, t, margin, reduction=reduction),
                    lambda x, y, t: TF.margin_ranking_loss(x, y, t, margin, reduction=reduction),
                    [a[:, 0], b[:, 0], target], (0, 1, 2), what=f"margin_ranking_loss {reduction}")
        compare(lambda x, t: F.hinge_embedding_loss(x, t, 0.5, reduction=reduction),
                lambda x, t: TF.hinge_embedding_loss(x, t, 0.5, reduction=reduction),
                [np.abs(a) * 2, signs(rng, 6, 4)], (0,), what=f"hinge_embedding_loss {reduction}")
        compare(lambda x, t: F.soft_margin_loss(x, t, reduction=reduction),
                lambda x, t: TF.soft_margin_loss(x, t, reduction=reduction),
                [a * 3, signs(rng, 6, 4)], (0,), what=f"soft_margin_loss {reduction}")
        weight = np.abs(normal(rng, 4))
        compare(lambda x, t, w: F.multilabel_soft_margin_loss(x, t, w, reduction=reduction),
                lambda x, t, w: TF.multilabel_soft_margin_loss(x, t, w, reduction=reduction),
                [a * 3, (signs(rng, 6, 4) > 0).astype(np.float32), weight], (0, 1, 2),
                what=f"multilabel_soft_margin_loss {reduction}")
    compare(lambda x, y, t: F.cosine_embedding_loss(x, y, t), lambda x, y, t: TF.cosine_embedding_loss(x, y, t),
            [a[0], np.zeros(4, np.float32), np.array(1.0, np.float32)], (0,), what="cosine_embedding_loss 1-d zero")
    # far tails: finite where float32 exp overflows; torch in float64 as the oracle
    extreme = np.array([[100.0, -100.0, 90.0, 0.0]], np.float32)
    labels = np.array([[-1.0, 1.0, -1.0, 1.0]], np.float32)
    compare(F.soft_margin_loss, lambda x, t: TF.soft_margin_loss(x.double(), t.double()).float(),
            [extreme, labels], (0,), what="soft_margin_loss extreme")
    compare(F.multilabel_soft_margin_loss, TF.multilabel_soft_margin_loss, [extreme, (labels > 0).astype(np.float32)],
            (0,), what="multilabel_soft_margin_loss extreme")
    with pytest.raises(jt.MetajitShapeError, match="margin_ranking_loss"):
        F.margin_ranking_loss(jt.array(a), jt.array(b), jt.array(target))


def test_multiclass_margin_losses_match_torch(rng):
    scores = normal(rng, 5, 4, scale=0.7)
    labels = np.array([[3, 0, -1, 1], [1, -1, 2, 2], [0, 1, 2, 3], [-1, 0, 1, 2], [2, 2, -1, 0]], np.int64)
    classes = np.array([1, 0, 3, 3, 2], np.int64)
    weight = np.abs(normal(rng, 4)) + 0.1
    for reduction in REDUCTIONS:
        compare(lambda x: F.multilabel_margin_loss(x, jt.array(labels), reduction=reduction),
                lambda x: TF.multilabel_margin_loss(x, torch.tensor(labels), reduction=reduction),
                [scores], (0,), what=f"multilabel_margin_loss {reduction}")
        compare(lambda x: F.multilabel_margin_loss(x, jt.array(labels[0]), reduction=reduction),
                lambda x: TF.multilabel_margin_loss(x, torch.tensor(labels[0]), reduction=reduction),
                [scores[0]], (0,), what=f"multilabel_margin_loss 1-d {reduction}")
        for p, margin, w in [(1, 1.0, None), (2, 0.5, weight), (1, 2.0, weight)]:
            compare(lambda x: F.multi_margin_loss(x, jt.array(classes), p, margin,
                                                  None if w is None else jt.array(w), reduction=reduction),
                    lambda x: TF.multi_margin_loss(x, torch.tensor(classes), p, margin,
                                                   None if w is None else torch.tensor(w), reduction=reduction),
                    [scores], (0,), what=f"multi_margin_loss {reduction} p={p}")
        compare(lambda x: F.multi_margin_loss(x, jt.array(classes[0]), reduction=reduction),
                lambda x: TF.multi_margin_loss(x, torch.tensor(classes[0]), reduction=reduction),
                [scores[0]], (0,), what=f"multi_margin_loss 1-d {reduction}")
    with pytest.raises(jt.MetajitValueError, match="p must be 1 or 2"):
        F.multi_margin_loss(jt.array(scores), jt.array(classes), p=3)
    with pytest.raises(jt.MetajitIndexError, match="class index 4 is out of range"):
        F.multi_margin_loss(jt.array(scores), jt.array(np.array([4, 0, 0, 0, 0])))
    with pytest.raises(jt.MetajitIndexError, match="class index 5 is out of range for 4 classes"):
        F.multilabel_margin_loss(jt.array(scores), jt.array(np.where(labels == 3, 5, labels)))
    computed = jt.array(classes) * 2  # labels computed on the device: checked when the loss is
    with pytest.raises(jt.MetajitIndexError, match="class index 6 is out of range for 4 classes"):
        F.multi_margin_loss(jt.array(scores), computed).item()
    with pytest.raises(jt.MetajitIndexError, match="class index 6 is out of range for 4 classes"):
        F.multilabel_margin_loss(jt.array(scores), jt.array(labels) * 2).item()


def test_triplet_losses_match_torch(rng):
    anchor, positive, negative = normal(rng, 6, 3), normal(rng, 6, 3), normal(rng, 6, 3)

    def cosine_distance(module):
        return lambda x, y: 1.0 - module.cosine_similarity(x, y)
    for reduction in REDUCTIONS:
        for margin, p, swap in [(1.0, 2, False), (0.5, 1, True), (2.0, 3, True)]:
            compare(lambda a, b, c: F.triplet_margin_loss(a, b, c, margin, p, swap=swap, reduction=reduction),
                    lambda a, b, c: TF.triplet_margin_loss(a, b, c, margin, p, swap=swap, reduction=reduction),
                    [anchor, positive, negative], (0, 1, 2), what=f"triplet_margin_loss {reduction} {p} {swap}")
        compare(lambda a, b, c: F.triplet_margin_with_distance_loss(
                    a, b, c, distance_function=cosine_distance(F), margin=0.4, swap=True, reduction=reduction),
                lambda a, b, c: TF.triplet_margin_with_distance_loss(
                    a, b, c, distance_function=cosine_distance(TF), margin=0.4, swap=True, reduction=reduction),
                [anchor, positive, negative], (0, 1, 2), what=f"triplet_margin_with_distance_loss {reduction}")
    compare(F.triplet_margin_with_distance_loss, TF.triplet_margin_with_distance_loss,
            [anchor, positive, negative], (0, 1, 2), what="default distance")
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        F.triplet_margin_loss(jt.array(anchor), jt.array(positive), jt.array(negative), margin=0.0)


def test_likelihood_losses_match_torch(rng):
    rates, counts = normal(rng, 4, 3), rng.poisson(2.0, (4, 3)).astype(np.float32)
    counts[0, :2] = [0.0, 1.0]
    mean, target = normal(rng, 4, 3), normal(rng, 4, 3)
    variance = np.abs(normal(rng, 4, 3)) + 0.1
    variance[0, 0] = 1e-8  # below eps: clamped, its gradient passing through
    for reduction in REDUCTIONS:
        for log_input, full in [(True, False), (False, True), (True, True)]:
            data = rates if log_input else np.abs(rates) + 0.1
            compare(lambda x, t: F.poisson_nll_loss(x, t, log_input, full, reduction=reduction),
                    lambda x, t: TF.poisson_nll_loss(x, t, log_input, full, reduction=reduction),
                    [data, counts], (0,), what=f"poisson_nll_loss {reduction} {log_input} {full}")
        for var, full in [(variance, False), (variance, True), (variance[:, 0], False), (variance[:, :1], True)]:
            compare(lambda x, t, v: F.gaussian_nll_loss(x, t, v, full, reduction=reduction),
                    lambda x, t, v: TF.gaussian_nll_loss(x, t, v, full, reduction=reduction),
                    [mean, target, var], (0, 1, 2), what=f"gaussian_nll_loss {reduction} {var.shape} {full}")
        compare(lambda x, t: F.gaussian_nll_loss(x, t, 0.5, eps=1e-3, reduction=reduction),
                lambda x, t: TF.gaussian_nll_loss(x, t, 0.5, eps=1e-3, reduction=reduction),
                [mean, target], (0, 1), what="gaussian_nll_loss float var")
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(jt.array(mean), jt.array(target), jt.array(-variance))
    with pytest.raises(jt.MetajitShapeError, match="var shape"):
        F.gaussian_nll_loss(jt.array(mean), jt.array(target), jt.array(variance[:2]))


@pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
def test_regression_losses_options_and_legacy_flags_match_torch(rng):
    x, y = normal(rng, 4, 5, scale=2), normal(rng, 4, 5, scale=2)
    x[0, 0] = y[0, 0]
    weight = np.abs(normal(rng, 4, 5))
    for reduction in REDUCTIONS:
        for name, kwargs in [("smooth_l1_loss", {"beta": 0.0}), ("smooth_l1_loss", {"beta": 0.7}),
                             ("huber_loss", {"delta": 0.6}), ("huber_loss", {"weight": weight}),
                             ("mse_loss", {"weight": weight}), ("l1_loss", {"weight": weight})]:
            compare(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kwargs),
                    lambda a, b: getattr(TF, name)(a, b, reduction=reduction, **{
                        k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}),
                    [x, y], (0, 1), what=f"{name} {reduction} {sorted(kwargs)}")
    log_p = np.log(np.abs(normal(rng, 4, 5)) + 0.1)
    probabilities = np.abs(normal(rng, 4, 5))
    probabilities[0, 1] = 0.0
    for reduction in REDUCTIONS + ("batchmean",):
        compare(lambda a, b: F.kl_div(a, b, reduction=reduction), lambda a, b: TF.kl_div(a, b, reduction=reduction),
                [log_p, probabilities], (0,), what=f"kl_div {reduction}")
        compare(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=True),
                lambda a, b: TF.kl_div(a, b, reduction=reduction, log_target=True),
                [log_p, log_p[::-1].copy()], (0, 1), what=f"kl_div log_target {reduction}")
    for size_average, reduce in [(False, None), (None, False), (True, True), (False, True)]:
        for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy", "soft_margin_loss"):
            data = 1 / (1 + np.exp(-x)) if name == "binary_cross_entropy" else x
            target = np.abs(np.tanh(y)) if name == "binary_cross_entropy" else y
            compare(lambda a, b: getattr(F, name)(a, b, size_average=size_average, reduce=reduce),
                    lambda a, b: getattr(TF, name)(a, b, size_average=size_average, reduce=reduce),
                    [data, target], what=f"{name} size_average={size_average} reduce={reduce}")


def test_nll_and_cross_entropy_options_match_torch(rng):
    logits = normal(rng, 3, 4, 2, 5, scale=3)
    labels = rng.integers(0, 4, (3, 2, 5)).astype(np.int64)
    labels[0, 0, :3] = -1  # ignored
    weight = np.abs(normal(rng, 4)) + 0.2
    probabilities = np.exp(normal(rng, 3, 4, 2, 5))
    probabilities /= probabilities.sum(1, keepdims=True)
    for reduction in REDUCTIONS:
        for w in (None, weight):
            ours_w = None if w is None else jt.array(w)
            theirs_w = None if w is None else torch.tensor(w)
            compare(lambda x: F.nll_loss(F.log_softmax(x, 1), jt.array(labels), ours_w, -1, reduction),
                    lambda x: TF.nll_loss(TF.log_softmax(x, 1), torch.tensor(labels), theirs_w, ignore_index=-1,
                                          reduction=reduction),
                    [logits], (0,), what=f"nll_loss k-d {reduction} weight={w is not None}")
            for smoothing in (0.0, 0.2):
                compare(lambda x: F.cross_entropy(x, jt.array(labels), ours_w, -1, reduction, smoothing),
                        lambda x: TF.cross_entropy(x, torch.tensor(labels), theirs_w, ignore_index=-1,
                                                   reduction=reduction, label_smoothing=smoothing),
                        [logits], (0,), what=f"cross_entropy {reduction} weight={w is not None} ls={smoothing}")
                compare(lambda x, t: F.cross_entropy(x, t, ours_w, reduction=reduction, label_smoothing=smoothing),
                        lambda x, t: TF.cross_entropy(x, t, theirs_w, reduction=reduction, label_smoothing=smoothing),
                        [logits, probabilities], (0, 1), what=f"cross_entropy probabilities {reduction} {smoothing}")
        compare(lambda x: F.cross_entropy(x, jt.array(np.array(2)), reduction=reduction, label_smoothing=0.1),
                lambda x: TF.cross_entropy(x, torch.tensor(2), reduction=reduction, label_smoothing=0.1),
                [logits[0, :, 0, 0]], (0,), what=f"cross_entropy unbatched {reduction}")
        compare(lambda x: F.nll_loss(x, jt.array(np.array(1)), reduction=reduction),
                lambda x: TF.nll_loss(x, torch.tensor(1), reduction=reduction),
                [logits[0, :, 0, 0]], (0,), what=f"nll_loss unbatched {reduction}")
    large = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 3e4]], np.float32)
    compare(lambda x: F.cross_entropy(x, jt.array(np.array([1, 2]))),
            lambda x: TF.cross_entropy(x, torch.tensor([1, 2])), [large], (0,), what="cross_entropy large logits")
    with pytest.raises(jt.MetajitValueError, match="label_smoothing"):
        F.cross_entropy(jt.array(large), jt.array(np.array([1, 2])), label_smoothing=1.5)


LOSS_MODULES = [  # (name, PyTorch's positional arguments, the inputs with gradients)
    ("CosineEmbeddingLoss", (0.2,), (0, 1)), ("MarginRankingLoss", (0.1, None, None, "sum"), (0, 1, 2)),
    ("HingeEmbeddingLoss", (2.0,), (0,)), ("SoftMarginLoss", (), (0,)), ("MultiLabelSoftMarginLoss", (), (0, 1)),
    ("MultiLabelMarginLoss", (), (0,)), ("MultiMarginLoss", (2, 0.5), (0,)),
    ("TripletMarginLoss", (0.5, 1.0), (0, 1, 2)), ("TripletMarginWithDistanceLoss", (), (0, 1, 2)),
    ("PoissonNLLLoss", (False, True), (0,)), ("GaussianNLLLoss", (), (0, 1, 2)), ("HuberLoss", ("sum", 0.5), (0, 1)),
    ("MSELoss", (), (0, 1)), ("KLDivLoss", (), (0, 1)),
]


def _module_inputs(name, rng):
    x, y = normal(rng, 4, 3), normal(rng, 4, 3)
    if name in ("CosineEmbeddingLoss", "MarginRankingLoss"):
        return ([x, y, signs(rng, 4)] if name == "CosineEmbeddingLoss" else [x[:, 0], y[:, 0], signs(rng, 4)])
    if name in ("HingeEmbeddingLoss", "SoftMarginLoss"):
        return [x, signs(rng, 4, 3)]
    if name == "MultiLabelSoftMarginLoss":
        return [x, (y > 0).astype(np.float32)]
    if name == "MultiLabelMarginLoss":
        return [x, np.array([[0, -1, 1], [2, 1, -1], [1, 0, 2], [-1, 0, 0]], np.int64)]
    if name == "MultiMarginLoss":
        return [x, np.array([0, 2, 1, 1], np.int64)]
    if name == "KLDivLoss":
        return [x, np.abs(y)]
    if name.startswith("Triplet"):
        return [x, y, normal(rng, 4, 3)]
    if name == "PoissonNLLLoss":
        return [np.abs(x) + 0.1, np.abs(np.round(y * 3))]
    if name == "GaussianNLLLoss":
        return [x, y, np.abs(normal(rng, 4, 3)) + 0.1]
    return [x, y]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
def test_loss_modules_take_torch_positional_settings(rng):
    for name, args, differentiable in LOSS_MODULES:
        arrays = _module_inputs(name, rng)
        compare(getattr(jt.nn, name)(*args), getattr(torch.nn, name)(*args), arrays, differentiable,
                what=f"{name}{args}")
    assert "margin=0.2" in repr(jt.nn.CosineEmbeddingLoss(0.2))
    with pytest.raises(jt.MetajitValueError, match="positional"):
        jt.nn.SoftMarginLoss(None, None, "mean", 1)


@pytest.mark.parametrize("name, args, kwargs, attributes", [
    ("CrossEntropyLoss", (), {"reduction": "sum", "label_smoothing": 0.1}, ("reduction", "label_smoothing",
                                                                           "ignore_index")),
    ("NLLLoss", (), {}, ("reduction", "ignore_index")),
    ("SmoothL1Loss", (), {"beta": 0.5}, ("reduction", "beta")),
    ("KLDivLoss", (), {"log_target": True}, ("reduction", "log_target")),
    ("MultiMarginLoss", (2, 0.5), {}, ("p", "margin", "reduction")),
    ("HuberLoss", (), {"delta": 2.0}, ("reduction", "delta")),
    ("LeakyReLU", (0.2,), {"inplace": True}, ("negative_slope",)),
])
def test_module_settings_are_attributes_as_torchs(name, args, kwargs, attributes):
    ours, theirs = getattr(jt.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    for attribute in attributes:
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute


def test_a_changed_setting_applies_and_a_class_weight_is_a_buffer():
    criterion = jt.nn.MSELoss()
    criterion.reduction = "sum"
    assert criterion(jt.ones(3), jt.zeros(3)).item() == 3.0
    weighted = jt.nn.CrossEntropyLoss(weight=jt.array([1.0, 2.0]))
    assert list(weighted.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=torch.ones(2)).state_dict())
    assert list(weighted.parameters()) == []
    with pytest.raises(jt.MetajitValueError, match="unexpected arguments"):
        jt.nn.MSELoss(reductoin="sum")


def test_kl_div_at_zero_and_negative_targets_as_torchs():
    log_p = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    target = np.array([-1.0, 0.5, 0.0, 0.5], np.float32)
    ours = F.kl_div(jt.array(log_p), jt.array(target), reduction="none").numpy()
    theirs = TF.kl_div(torch.tensor(log_p), torch.tensor(target), reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # nan where torch's is (assert_allclose matches nans)


def test_batch_norm_training_needs_more_than_one_value_per_channel():
    for layer in (jt.nn.BatchNorm1d(3), jt.nn.BatchNorm2d(3)):
        shape = (1, 3) if isinstance(layer, jt.nn.BatchNorm1d) else (1, 3, 1, 1)
        with pytest.raises(jt.MetajitValueError, match="more than 1 value per channel"):
            layer(jt.ones(*shape))
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            getattr(torch.nn, type(layer).__name__)(3)(torch.ones(*shape))
        layer.eval()
        assert layer(jt.ones(*shape)).shape == shape


def test_binary_cross_entropy_at_saturated_probabilities_has_torchs_gradient():
    p = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.25], np.float32)
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    theirs_p, theirs_t = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
    TF.binary_cross_entropy(theirs_p, theirs_t, reduction="sum").backward()
    ours_p, ours_t = jt.array(p), jt.array(t)
    loss = F.binary_cross_entropy(ours_p, ours_t, reduction="sum")
    grad_p, grad_t = jt.grad(loss, [ours_p, ours_t])
    np.testing.assert_allclose(loss.item(), 200.0 + np.log(2) + 0.5 * (np.log(4) + np.log(4 / 3)), rtol=1e-5)
    np.testing.assert_allclose(grad_p.numpy(), theirs_p.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad_t.numpy(), theirs_t.grad.numpy(), rtol=1e-5)
    # second order through the written gradient (interior points)
    inner = jt.array(np.array([0.3, 0.6], np.float32))
    (first,) = jt.grad(F.binary_cross_entropy(inner, jt.array([1.0, 0.0]), reduction="sum"), [inner])
    (second,) = jt.grad(first.sum(), [inner])
    np.testing.assert_allclose(second.numpy(), [1 / 0.3 ** 2, 1 / 0.4 ** 2], rtol=1e-4)


def test_std_of_equal_values_has_a_zero_gradient_as_torchs():
    data = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]], np.float32)
    theirs = torch.tensor(data, requires_grad=True)
    theirs.std(1).sum().backward()
    ours = jt.array(data)
    (gradient,) = jt.grad(ours.std(1).sum(), [ours])
    np.testing.assert_allclose(gradient.numpy(), theirs.grad.numpy(), rtol=1e-5)
    assert np.isnan(jt.array([1.0]).std().item())  # one value, unbiased: nan, as torch (which also warns)
