"""jt.lr_scheduler against torch.optim.lr_scheduler: the learning rate after every epoch."""
import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # (no training here)


def rates(make_ours, make_theirs, epochs=12, metrics=None):
    ours_optimizer = jt.optim.SGD([jt.array(np.zeros(2, np.float32))], lr=0.5)
    theirs_optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.5)
    ours, theirs = make_ours(ours_optimizer), make_theirs(theirs_optimizer)
    got, want = [], []
    for epoch in range(epochs):
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[epoch])
            theirs.step(metrics[epoch])
        got.append(ours_optimizer.param_groups[0]["lr"])
        want.append(theirs_optimizer.param_groups[0]["lr"])
    return got, want


@pytest.mark.parametrize("name,arguments", [("StepLR", (3, 0.5)), ("MultiStepLR", ([2, 5, 9], 0.3)),
                                            ("ExponentialLR", (0.8,)), ("CosineAnnealingLR", (10, 0.01))])
def test_epoch_schedulers_match_torch(name, arguments):
    got, want = rates(lambda o: getattr(jt.lr_scheduler, name)(o, *arguments),
                      lambda o: getattr(torch.optim.lr_scheduler, name)(o, *arguments))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("options", [{}, {"mode": "max", "patience": 1}, {"patience": 2, "cooldown": 2, "min_lr": 0.01},
                                     {"threshold_mode": "abs", "threshold": 0.5, "patience": 0, "factor": 0.5}])
def test_reduce_on_plateau_matches_torch(options):
    metrics = [5, 4, 4.5, 4.2, 4.1, 4.0, 4.0, 6, 3, 3, 3.1, 2.9, 3, 3, 3, 3] * 2
    options = {"patience": 1, **options}
    got, want = rates(lambda o: jt.lr_scheduler.ReduceLROnPlateau(o, **options),
                      lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **options), len(metrics), metrics)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_module_is_reachable_both_ways():
    assert jt.lr_scheduler.StepLR is jt.optim.lr_scheduler.StepLR is jt.optim.StepLR


def per_step(module, optimizer_name, build, steps=30, **optimizer_options):
    """Each step's ``(lr, momentum or first beta)`` of two parameter groups (lr 0.5 and
    0.2) under ``build(module.lr_scheduler, optimizer)``, for ``module`` jt.optim or torch.optim."""
    if module is torch.optim:
        first, second = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    else:
        first, second = jt.zeros(2), jt.zeros(2)
    optimizer = getattr(module, optimizer_name)([{"params": [first]}, {"params": [second], "lr": 0.2}], lr=0.5,
                                                **optimizer_options)
    scheduler = build(module.lr_scheduler, optimizer)
    seen = []
    for _ in range(steps):
        seen.append([(g["lr"], g["betas"][0] if "betas" in g else g["momentum"]) for g in optimizer.param_groups])
        scheduler.step()
    return seen


def assert_same_schedule(optimizer_name, build, **optimizer_options):
    ours = per_step(jt.optim, optimizer_name, build, **optimizer_options)
    theirs = per_step(torch.optim, optimizer_name, build, **optimizer_options)
    np.testing.assert_allclose(np.array(ours, float), np.array(theirs, float), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("options", [
    {"mode": "triangular"},
    {"mode": "triangular2", "step_size_down": 3},
    {"mode": "exp_range", "gamma": 0.9, "step_size_down": 7},
    {"scale_fn": lambda x: 1 / (1 + x), "scale_mode": "iterations"},
    {"scale_fn": lambda x: 0.8 ** x, "mode": "unused", "base_momentum": [0.7, 0.75], "max_momentum": [0.9, 0.95]},
    {"cycle_momentum": False},
], ids=["triangular", "triangular2", "exp_range", "scale_fn by step", "scale_fn by cycle", "lr only"])
def test_cyclic_lr_matches_torch_with_momentum(options):
    assert_same_schedule("SGD", lambda m, o: m.CyclicLR(o, [0.01, 0.02], [0.1, 0.3], step_size_up=4, **options),
                         momentum=0.9)


def test_cyclic_lr_cycles_adams_first_beta():
    assert_same_schedule("Adam", lambda m, o: m.CyclicLR(o, 0.001, 0.01, step_size_up=5, mode="triangular2",
                                                         base_momentum=0.85, max_momentum=0.95))


@pytest.mark.parametrize("build", [
    lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.1, total_iters=20), m.ExponentialLR(o, gamma=0.9)],
                                    optimizer=o),
    lambda m, o: m.ChainedScheduler([m.LinearLR(o, 0.2, 1.0, 6), m.MultiStepLR(o, [4, 9, 9, 20], 0.5),
                                     m.CosineAnnealingLR(o, 7, 0.001)]),
    lambda m, o: m.ChainedScheduler([m.CyclicLR(o, 0.01, 0.1, step_size_up=3), m.StepLR(o, 5, 0.5)]),
], ids=["constant and exponential", "three", "cyclic and step"])
def test_chained_scheduler_matches_torch(build):
    assert_same_schedule("SGD", build, momentum=0.9)


def test_state_dicts_resume_the_schedule():
    import pickle

    def build():
        optimizer = jt.optim.SGD([{"params": [jt.zeros(2)]}, {"params": [jt.zeros(2)], "lr": 0.2}], lr=0.5,
                                 momentum=0.9)
        cyclic = jt.lr_scheduler.CyclicLR(optimizer, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.95)
        return optimizer, jt.lr_scheduler.ChainedScheduler([cyclic, jt.lr_scheduler.ExponentialLR(optimizer, 0.9)])
    optimizer, scheduler = build()
    for _ in range(5):
        scheduler.step()
    saved = pickle.loads(pickle.dumps(scheduler.state_dict()))  # (no optimiser inside)
    resumed_optimizer, resumed = build()
    resumed.load_state_dict(saved)
    for _ in range(7):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()
        assert [g["momentum"] for g in resumed_optimizer.param_groups] == \
            [g["momentum"] for g in optimizer.param_groups]


def test_invalid_cyclic_and_chained_schedulers_raise_as_torch():
    def both(build, error):
        for module, optimizer in ((jt, jt.optim.SGD([jt.zeros(2)], lr=0.1, momentum=0.9)),
                                  (torch, torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9))):
            with pytest.raises(error):
                build(module.optim.lr_scheduler, optimizer)
    both(lambda m, o: m.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), ValueError)
    both(lambda m, o: m.CyclicLR(o, [0.01, 0.02], 0.1), ValueError)
    both(lambda m, o: m.ChainedScheduler([]), ValueError)
    both(lambda m, o: m.ChainedScheduler([m.ExponentialLR(o, 0.9), m.ReduceLROnPlateau(o)]), ValueError)
    both(lambda m, o: m.ChainedScheduler([object()], optimizer=o), TypeError)
    with pytest.raises(jt.MetajitValueError, match="cycle_momentum=False"):
        jt.lr_scheduler.CyclicLR(jt.optim.Adagrad([jt.zeros(2)], lr=0.1), 0.01, 0.1)
    with pytest.raises(ValueError):
        torch.optim.lr_scheduler.CyclicLR(torch.optim.Adagrad([torch.zeros(2, requires_grad=True)], lr=0.1), 0.01, 0.1)
    optimizer = jt.optim.SGD([jt.zeros(2)], lr=0.1)
    with pytest.raises(jt.MetajitValueError, match="another optimizer"):
        jt.lr_scheduler.ChainedScheduler([jt.lr_scheduler.ExponentialLR(optimizer, 0.9),
                                          jt.lr_scheduler.ExponentialLR(jt.optim.SGD([jt.zeros(2)], lr=0.1), 0.9)])
