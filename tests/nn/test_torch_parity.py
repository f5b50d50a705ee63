"""Layers, activations, losses, optimisers and schedulers against PyTorch on the CPU."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


def to_torch(array, requires_grad=False):
    return torch.tensor(np.asarray(array), requires_grad=requires_grad)


def assert_close(ours, theirs, rtol=1e-4, atol=1e-5):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=rtol, atol=atol)


def test_linear_forward_and_gradients_match_with_copied_weights(rng):
    theirs = torch.nn.Linear(5, 3)
    ours = jt.nn.Linear(5, 3)
    ours.load_state_dict(theirs.state_dict())
    data = rng.standard_normal((4, 5)).astype(np.float32)
    x, tx = jt.array(data), to_torch(data, True)
    out, tout = ours(x), theirs(tx)
    assert_close(out.numpy(), tout)
    (tout ** 2).sum().backward()
    gx, gw, gb = jt.grad((out ** 2).sum(), [x, ours.weight, ours.bias])
    assert_close(gx.numpy(), tx.grad)
    assert_close(gw.numpy(), theirs.weight.grad)
    assert_close(gb.numpy(), theirs.bias.grad)


ACTIVATIONS = [
    ("ReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ReLU6", {}), ("ELU", {"alpha": 0.7}),
    ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("SiLU", {}), ("Sigmoid", {}), ("Tanh", {}),
    ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": -1}), ("Softplus", {"beta": 2.0}), ("Mish", {}),
    ("PReLU", {}), ("Hardtanh", {}), ("Hardtanh", {"min_val": -2.0, "max_val": 3.0}), ("Hardsigmoid", {}),
    ("Hardswish", {}), ("SELU", {}), ("CELU", {"alpha": 0.5}), ("Softsign", {}), ("Tanhshrink", {}),
    ("Threshold", {"threshold": 0.3, "value": -2.0}), ("Hardshrink", {}), ("Softshrink", {"lambd": 0.7}),
    ("LogSigmoid", {}), ("Softmin", {"dim": 1}), ("GLU", {}), ("RReLU", {}),
]


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS, ids=[f"{n}{k}" for n, k in ACTIVATIONS])
def test_activation_matches_torch(name, kwargs, rng):
    data = (rng.standard_normal((3, 7)) * 4).astype(np.float32)
    if name.startswith(("Hard", "ReLU")) or name in ("Threshold", "Softshrink", "SELU", "CELU"):
        data[0, :7] = [-3.0, 3.0, -0.5, 0.5, 0.3, 0.0, 6.0]  # their kinks
    data[1, :3] = [-60.0, 60.0, 1e-3]  # far tails (LogSigmoid's stability)
    if name == "GLU":
        data = data[:, :6]
    ours, theirs = getattr(jt.nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    if name == "RReLU":
        ours.eval(), theirs.eval()
    weights = rng.standard_normal(theirs(torch.from_numpy(data)).shape).astype(np.float32)
    x, tx = jt.array(data), to_torch(data, True)
    out = ours(x)
    assert_close(out.numpy(), theirs(tx))
    (theirs(tx) * to_torch(weights)).sum().backward()
    assert_close(jt.grad((out * jt.array(weights)).sum(), x).numpy(), tx.grad)


def _loss_inputs(name, rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    if name in ("CrossEntropyLoss", "NLLLoss"):
        return logits, rng.integers(0, 4, 6).astype(np.int64)
    if name == "BCELoss":
        return 1 / (1 + np.exp(-logits)), rng.uniform(0, 1, (6, 4)).astype(np.float32)
    if name == "KLDivLoss":
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        target = np.exp(rng.standard_normal((6, 4))).astype(np.float32)
        return log_p.astype(np.float32), target / target.sum(1, keepdims=True)
    if name == "BCEWithLogitsLoss":
        return logits * 5, rng.uniform(0, 1, (6, 4)).astype(np.float32)
    return logits, rng.standard_normal((6, 4)).astype(np.float32)


LOSSES = [
    ("MSELoss", {}), ("L1Loss", {"reduction": "sum"}), ("SmoothL1Loss", {"beta": 0.5}),
    ("BCELoss", {}), ("BCEWithLogitsLoss", {}), ("CrossEntropyLoss", {}),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}), ("CrossEntropyLoss", {"reduction": "none"}),
    ("NLLLoss", {}), ("KLDivLoss", {"reduction": "batchmean"}), ("MSELoss", {"reduction": "none"}),
    ("CrossEntropyLoss", {"weight": [0.5, 2.0, 1.0, 0.1]}), ("NLLLoss", {"weight": [1.0, 3.0, 0.2, 1.0]}),
    ("CrossEntropyLoss", {"weight": [0.5, 2.0, 1.0, 0.1], "label_smoothing": 0.2, "ignore_index": 1}),
]


@pytest.mark.parametrize("name,kwargs", LOSSES, ids=[f"{n}{k}" for n, k in LOSSES])
def test_loss_matches_torch(name, kwargs, rng):
    output, target = _loss_inputs(name, rng)
    ours = getattr(jt.nn, name)(**{k: (jt.array(np.float32(v)) if k == "weight" else v) for k, v in kwargs.items()})
    theirs = getattr(torch.nn, name)(**{k: (torch.tensor(v) if k == "weight" else v) for k, v in kwargs.items()})
    x, tx = jt.array(output), to_torch(output, True)
    value, tvalue = ours(x, jt.array(target)), theirs(tx, to_torch(target))
    assert_close(value.numpy(), tvalue)
    tvalue.sum().backward()
    assert_close(jt.grad(value.sum(), x).numpy(), tx.grad)


def _run_optimizer(ours_class, theirs_class, kwargs, rng, steps=6, style="jittor"):
    """``style``: ``"jittor"`` (``step(loss)``), ``"jittor backward"`` (``backward(loss);
    step()``, no zero_grad: Jittor's step clears) or ``"pytorch"``."""
    start = rng.standard_normal((3, 4)).astype(np.float32)
    target = rng.standard_normal((3, 4)).astype(np.float32)
    w, tw = jt.array(start), to_torch(start, True)
    ours, theirs = ours_class([w], **kwargs), theirs_class([tw], **kwargs)
    for _ in range(steps):
        loss = ((w - jt.array(target)) ** 4).sum()
        if style == "pytorch":
            ours.zero_grad()
            w.requires_grad_()
            loss.backward()
            ours.step()
        elif style == "jittor backward":
            ours.backward(loss)
            ours.step()
        else:
            ours.step(loss)
        theirs.zero_grad()
        ((tw - to_torch(target)) ** 4).sum().backward()
        theirs.step()
    return w, tw


OPTIMIZERS = [
    ("SGD", {"lr": 0.01}), ("SGD", {"lr": 0.01, "momentum": 0.9}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "momentum": 0.5, "dampening": 0.3}),
    ("Adam", {"lr": 0.05}), ("Adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.05}), ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[f"{n}{k}" for n, k in OPTIMIZERS])
def test_optimizer_trajectory_matches_torch(name, kwargs, rng):
    w, tw = _run_optimizer(getattr(jt.optim, name), getattr(torch.optim, name), kwargs, rng)
    assert_close(w.numpy(), tw, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("style", ["pytorch", "jittor backward"])
def test_pytorch_style_backward_and_step_match_jittor_style(rng, style):
    ours, theirs = _run_optimizer(jt.optim.SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, rng, style=style)
    assert_close(ours.numpy(), theirs)


def test_maximize_default_sgd_rate_and_implementation_options_match_torch(rng):
    for name, kwargs in (("SGD", {"maximize": True, "foreach": False}), ("SGD", {}),
                         ("Adam", {"lr": 0.05, "maximize": True, "fused": None})):
        w, tw = _run_optimizer(getattr(jt.optim, name), getattr(torch.optim, name), kwargs, rng, steps=3)
        assert_close(w.numpy(), tw)
    with pytest.raises(jt.MetajitValueError, match="unexpected arguments"):
        jt.optim.SGD([jt.zeros(2)], lr=0.1, nesterov_typo=True)


def test_a_parameter_in_two_groups_is_refused_as_torch_does():
    head, body = jt.zeros(2), jt.zeros(3)
    with pytest.raises(jt.MetajitValueError, match="more than one parameter group"):
        jt.optim.SGD([{"params": [body, head]}, {"params": [head], "lr": 0.1}], lr=0.01)
    with pytest.raises(jt.MetajitValueError, match="more than one parameter group"):
        jt.optim.Adam([head, head])
    optimizer = jt.optim.SGD([body], lr=0.01)
    with pytest.raises(jt.MetajitValueError, match="more than one parameter group"):
        optimizer.add_param_group({"params": [body]})


def test_loss_given_to_step_is_computed_with_it(rng):
    """``step(loss)`` computes the loss in the same realisation as the gradients: reading it
    afterwards launches nothing and gives the value before the update, as in torch."""
    start = rng.standard_normal((3, 4)).astype(np.float32)
    w, tw = jt.array(start), to_torch(start, True)
    ours, theirs = jt.optim.SGD([w], lr=0.1, momentum=0.9), torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    for _ in range(3):
        loss = (w * w).sum()
        ours.step(loss)
        theirs.zero_grad()
        torch_loss = (tw * tw).sum()
        torch_loss.backward()
        theirs.step()
        with jt.debug.record_kernels() as launched:
            value = loss.item()
        assert not launched
        assert value == pytest.approx(torch_loss.item(), rel=1e-5)


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", {"step_size": 2, "gamma": 0.5}), ("MultiStepLR", {"milestones": [1, 4], "gamma": 0.1}),
    ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.01}), ("LambdaLR", {"lr_lambda": lambda e: 0.9 ** e}),
])
def test_scheduler_learning_rates_match_torch(name, kwargs):
    w, tw = jt.zeros(2), torch.zeros(2, requires_grad=True)
    ours = getattr(jt.optim.lr_scheduler, name)(jt.optim.SGD([w], lr=0.1), **kwargs)
    theirs_optimizer = torch.optim.SGD([tw], lr=0.1)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_optimizer, **kwargs)
    for _ in range(7):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr())
        theirs_optimizer.step()
        ours.step()
        theirs.step()


def _scheduled_rates(module, build, steps=9, between=None):
    """The rates ``build(module, optimizer)``'s schedulers set over ``steps`` epochs, two
    groups; ``between(step, optimizer)`` may change the optimiser first."""
    w, v = (torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)) if module is torch.optim \
        else (jt.zeros(2), jt.zeros(2))
    optimizer = module.SGD([{"params": [w]}, {"params": [v], "lr": 0.5}], lr=0.1)
    schedulers = build(module.lr_scheduler, optimizer)
    rates = []
    for step in range(steps):
        if between is not None:
            between(step, optimizer)
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        rates.append([group["lr"] for group in optimizer.param_groups])
    return rates


@pytest.mark.parametrize("case", ["chained", "set by hand", "per-group lambdas", "linear warm-up", "constant",
                                  "multiplicative", "cosine past T_max"])
def test_schedulers_compose_and_follow_changes_as_torch(case):
    def manual(step, optimizer):
        if step == 3:
            optimizer.param_groups[0]["lr"] = 0.025
    build, between = {
        "chained": (lambda m, o: [m.StepLR(o, 2, 0.5), m.ExponentialLR(o, 0.9)], None),
        "set by hand": (lambda m, o: [m.StepLR(o, 2, 0.5)], manual),
        "per-group lambdas": (lambda m, o: [m.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 / (e + 1)])], None),
        "linear warm-up": (lambda m, o: [m.LinearLR(o, 0.25, 1.0, 4), m.MultiStepLR(o, [6, 6, 8])], None),
        "constant": (lambda m, o: [m.ConstantLR(o, 0.5, 3)], None),
        "multiplicative": (lambda m, o: [m.MultiplicativeLR(o, lambda e: 0.8)], None),
        "cosine past T_max": (lambda m, o: [m.CosineAnnealingLR(o, 3, 0.01)], manual),
    }[case]
    np.testing.assert_allclose(_scheduled_rates(jt.optim, build, between=between),
                               _scheduled_rates(torch.optim, build, between=between), rtol=1e-12)


def test_scheduler_state_dict_resumes_the_schedule():
    w = jt.zeros(2)
    optimizer = jt.optim.SGD([w], lr=0.1)
    scheduler = jt.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6)
    for _ in range(3):
        scheduler.step()
    saved, rates = scheduler.state_dict(), []
    resumed_optimizer = jt.optim.SGD([w], lr=0.1)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed = jt.optim.lr_scheduler.CosineAnnealingLR(resumed_optimizer, T_max=6)
    resumed.load_state_dict(saved)
    resumed_optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    for _ in range(3):
        scheduler.step()
        resumed.step()
        rates.append((scheduler.get_last_lr(), resumed.get_last_lr()))
    assert all(a == b for a, b in rates)
    scheduler.step(1)  # PyTorch's (deprecated) jump to an epoch: the closed form
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1 * (1 + np.cos(np.pi / 6)) / 2)


def test_clip_grad_norm_matches_torch(rng):
    data = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,))]
    ours = [jt.array(d).requires_grad_() for d in data]
    theirs = [to_torch(d, True) for d in data]
    sum((p ** 3).sum() for p in ours).backward()
    sum((p ** 3).sum() for p in theirs).backward()
    total = jt.nn.utils.clip_grad_norm_((p for p in ours), 1.0)  # a generator, read once
    ttotal = torch.nn.utils.clip_grad_norm_((p for p in theirs), 1.0)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-5)
    for p, tp in zip(ours, theirs):
        assert_close(p.grad.numpy(), tp.grad)
    jt.nn.utils.clip_grad_norm_(ours[1], 0.1)  # a single tensor
    torch.nn.utils.clip_grad_norm_(theirs[1], 0.1)
    jt.nn.utils.clip_grad_value_(filter(lambda p: p.requires_grad, ours), 0.05)
    torch.nn.utils.clip_grad_value_(filter(lambda p: p.requires_grad, theirs), 0.05)
    for p, tp in zip(ours, theirs):
        assert_close(p.grad.numpy(), tp.grad)
    ours[0].grad = jt.array(np.full((3, 4), np.inf, np.float32))
    with pytest.raises(jt.MetajitValueError, match="error_if_nonfinite"):
        jt.nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)


def test_sequential_state_dict_keys_match_torch():
    ours = jt.nn.Sequential(jt.nn.Linear(3, 4), jt.nn.ReLU(), jt.nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    data = np.ones((2, 3), np.float32)
    assert_close(ours(jt.array(data)).numpy(), theirs(to_torch(data)))


def test_default_initialisation_matches_torch_bounds():
    layer = jt.nn.Linear(400, 300)
    weights = layer.weight.numpy()
    bound = 1 / np.sqrt(400)
    assert weights.shape == (300, 400) and np.abs(weights).max() <= bound
    assert np.abs(weights).max() > 0.95 * bound
    assert abs(weights.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_reads_torch_save_files(tmp_path):
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    path = tmp_path / "model.pth"
    torch.save(theirs.state_dict(), path)
    ours = jt.nn.Sequential(jt.nn.Linear(3, 4), jt.nn.Linear(4, 2))
    ours.load_state_dict(str(path))
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name].numpy(), value, rtol=0, atol=0)
    loaded = jt.load(str(path), weights_only=True)
    assert_close(loaded["0.weight"], theirs[0].weight, rtol=0, atol=0)


def test_reads_legacy_torch_save_files(tmp_path):
    # the format torch.save wrote before PyTorch 1.6, still used by many published checkpoints
    base = torch.arange(24.0).reshape(4, 6)
    state = {"matrix": base, "transposed": base.t(), "row": base[2, 1:5], "count": torch.tensor(7),
             "half": torch.ones(3, dtype=torch.float16), "flags": torch.tensor([True, False])}
    path = tmp_path / "legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    loaded = jt.load(str(path))
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert loaded[name].dtype == value.numpy().dtype and loaded[name].shape == tuple(value.shape)
        np.testing.assert_array_equal(loaded[name], value.numpy())
    ours = jt.nn.Sequential(jt.nn.Conv2d(2, 3, 3), jt.nn.BatchNorm2d(3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    torch.save(theirs.state_dict(), path, _use_new_zipfile_serialization=False)
    ours.load_state_dict(str(path))
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name].numpy(), value.numpy())


def test_rrelu_draws_slopes_in_range_when_training(rng):
    data = -np.abs(rng.standard_normal(4000)).astype(np.float32) - 0.1
    layer = jt.nn.RReLU(0.1, 0.3)
    x = jt.array(data)
    out = layer(x)
    slopes = out.numpy() / data
    assert 0.1 <= slopes.min() < 0.11 and 0.29 < slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.01
    np.testing.assert_allclose(jt.grad(out.sum(), x).numpy(), slopes, rtol=1e-5)
    np.testing.assert_array_equal(layer(jt.array(np.abs(data))).numpy(), np.abs(data))


def test_torch_spellings_of_tensors_functions_and_methods_match_torch(rng):
    data = rng.standard_normal((3, 4)).astype(np.float32)
    x, tx = jt.array(data), torch.from_numpy(data)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        np.testing.assert_array_equal(getattr(x, name)(0.1).numpy(), getattr(tx, name)(0.1).numpy())
    assert_close(x.softmax(1).numpy(), tx.softmax(1))
    assert_close(x.log_softmax(0).numpy(), tx.log_softmax(0))
    assert_close(jt.softmax(x, 1).numpy(), torch.softmax(tx, 1))
    assert x.view_as(jt.zeros(12)).shape == (12,) and x.type_as(jt.zeros(1, dtype="int32")).dtype == "int32"
    assert x.new_zeros(2, 5).shape == (2, 5) and x.new_ones((2,)).dtype == "float32"
    assert x.new_full((2,), 3.0).numpy().tolist() == [3.0, 3.0] and x.allclose(data)
    assert x.new_zeros(2, requires_grad=True).requires_grad and x.new_tensor([1.0], device="cpu").shape == (1,)
    with pytest.raises(jt.MetajitDeviceError, match="jt.set_device"):
        x.new_ones(2, device="mps")
    for value in ([1, 2], [[1.5]], 7, [True, False]):
        assert str(jt.tensor(value).dtype) == str(torch.tensor(value).dtype).removeprefix("torch.")
    assert jt.from_numpy(np.arange(3)).dtype == "int64" and jt.as_tensor([1.0]).dtype == "float32"
    labels = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(jt.nn.functional.one_hot(jt.array(labels), 5).numpy(),
                                  torch.nn.functional.one_hot(torch.from_numpy(labels), 5).numpy())
    np.testing.assert_array_equal(jt.nn.functional.one_hot(jt.array(labels)).numpy(),
                                  torch.nn.functional.one_hot(torch.from_numpy(labels)).numpy())
    target = rng.standard_normal((3, 4)).astype(np.float32) * 3
    for reduction in ("mean", "sum", "none"):
        assert_close(jt.nn.functional.huber_loss(x, jt.array(target), reduction, delta=0.7).numpy(),
                     torch.nn.functional.huber_loss(tx, torch.from_numpy(target), reduction, delta=0.7))
    assert_close(jt.nn.functional.normalize(x, p=1.0, dim=0).numpy(), torch.nn.functional.normalize(tx, p=1.0, dim=0))
    assert jt.nn.init is jt.init


def _schedule(module, optimizer_name, optimizer_kwargs, build, steps, epochs=None):
    """Per step: each group's (lr, momentum or first beta) under ``build``'s scheduler;
    ``epochs`` gives ``step(epoch)`` arguments instead of plain steps."""
    w, v = (torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)) if module is torch.optim \
        else (jt.zeros(2), jt.zeros(2))
    optimizer = getattr(module, optimizer_name)([{"params": [w]}, {"params": [v]}], **optimizer_kwargs)
    scheduler = build(module.lr_scheduler, optimizer)
    seen = []
    for step in range(steps):
        seen.append([(g["lr"], g.get("momentum", g.get("betas", (None,))[0])) for g in optimizer.param_groups])
        optimizer.step()
        if epochs is None:
            scheduler.step()
        else:
            scheduler.step(epochs[step])
    return seen


@pytest.mark.parametrize("case", ["one cycle", "one cycle adam three phase", "warm restarts",
                                  "warm restarts by epoch", "warm-up then cosine", "polynomial"])
def test_batch_and_restart_schedulers_match_torch(case):
    optimizer, kwargs, build, steps, epochs = {
        "one cycle": ("SGD", {"lr": 0.1, "momentum": 0.9},
                      lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=12), 12, None),
        "one cycle adam three phase": ("Adam", {"lr": 0.1},
                                       lambda m, o: m.OneCycleLR(o, 0.2, epochs=2, steps_per_epoch=5,
                                                                 anneal_strategy="linear", three_phase=True), 10, None),
        "warm restarts": ("SGD", {"lr": 0.1}, lambda m, o: m.CosineAnnealingWarmRestarts(o, 2, 2, 0.001), 12, None),
        "warm restarts by epoch": ("SGD", {"lr": 0.1}, lambda m, o: m.CosineAnnealingWarmRestarts(o, 3, 2),
                                   8, [0.5, 1.25, 2.0, 3.5, 7.0, 9.5, 20.0, 21.0]),
        "warm-up then cosine": ("SGD", {"lr": 0.1}, lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o, 0.1, 1.0, 3), m.CosineAnnealingLR(o, 5)], milestones=[3]), 10, None),
        "polynomial": ("SGD", {"lr": 0.1}, lambda m, o: m.PolynomialLR(o, 4, 2.0), 7, None),
    }[case]
    ours = _schedule(jt.optim, optimizer, kwargs, build, steps, epochs)
    theirs = _schedule(torch.optim, optimizer, kwargs, build, steps, epochs)
    np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-12, atol=1e-15)


def test_sequential_scheduler_state_dict_holds_its_schedulers_states():
    import pickle
    lr_scheduler = jt.optim.lr_scheduler

    def build():
        optimizer = jt.optim.SGD([jt.zeros(2)], lr=0.1)
        return optimizer, lr_scheduler.SequentialLR(
            optimizer, [lr_scheduler.LinearLR(optimizer, 0.1, 1.0, 3), lr_scheduler.CosineAnnealingLR(optimizer, 5)],
            milestones=[3])
    optimizer, scheduler = build()
    for _ in range(4):
        scheduler.step()
    saved = pickle.loads(pickle.dumps(scheduler.state_dict()))  # (no optimiser inside)
    resumed_optimizer, resumed = build()
    resumed.load_state_dict(saved)
    resumed_optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    for _ in range(4):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()
