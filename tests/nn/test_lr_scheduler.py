"""jt.lr_scheduler against torch.optim.lr_scheduler: the learning rate after every epoch."""
import warnings

import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


def rates(make_ours, make_theirs, epochs=12, metrics=None):
    ours_optimizer = jt.optim.SGD([jt.array(np.zeros(2, np.float32))], lr=0.5)
    theirs_optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.5)
    ours, theirs = make_ours(ours_optimizer), make_theirs(theirs_optimizer)
    got, want = [], []
    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step()`", UserWarning)  # no training here
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
