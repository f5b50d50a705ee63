"""jt.optim.lr_scheduler's state dicts against torch.optim.lr_scheduler's: a torch checkpoint
resumes in metajit and a metajit checkpoint in torch, each continuing as torch's
uninterrupted schedule; PyTorch's import paths and ``_LRScheduler`` subclasses."""
import io

import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # (no training here)


def warm_up(epoch):
    return min(1.0, (epoch + 1) / 4)


class Decay:
    """A callable object: PyTorch saves its attributes with a LambdaLR's state."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


SCHEDULERS = {  # name -> build(lr_scheduler module, optimizer)
    "StepLR": lambda m, o: m.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, [2, 5, 5, 9], 0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, 0.8),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, 7, 0.01),
    "LambdaLR": lambda m, o: m.LambdaLR(o, [warm_up, lambda epoch: 0.9 ** epoch]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.95),
    "LinearLR": lambda m, o: m.LinearLR(o, 0.2, 1.0, 6),
    "ConstantLR": lambda m, o: m.ConstantLR(o, 0.5, 4),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, 9, 2.0),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, 3, 2, 0.001),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, [1.0, 0.4], total_steps=20, three_phase=True),
    "CyclicLR": lambda m, o: m.CyclicLR(o, [0.01, 0.02], [0.1, 0.3], step_size_up=3, mode="triangular2"),
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=3),
                                                    m.CosineAnnealingLR(o, T_max=9)], milestones=[3]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 4), m.ExponentialLR(o, 0.9)]),
}
METRICS = [5, 4, 4.5, 4.2, 4.1, 4.0, 4.0, 6, 3, 3, 3.1, 2.9, 3, 3, 3, 3]


class Run:
    """An SGD optimiser with momentum on two groups (lr 0.5 and 0.2) and a scheduler, in
    ``library`` (jt or torch)."""

    def __init__(self, library, name):
        params = [jt.zeros(2), jt.zeros(2)] if library is jt else [torch.zeros(2, requires_grad=True)
                                                                   for _ in range(2)]
        self.name, self.epoch = name, 0
        self.optimizer = library.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.2}], lr=0.5,
                                           momentum=0.9)
        self.scheduler = SCHEDULERS[name](library.optim.lr_scheduler, self.optimizer)

    def steps(self, count):
        """Each step's ``(lr, momentum)`` per group and ``get_last_lr()``."""
        seen = []
        for _ in range(count):
            if self.name == "ReduceLROnPlateau":
                self.scheduler.step(METRICS[self.epoch])
            else:
                self.scheduler.step()
            self.epoch += 1
            seen.append([(g["lr"], g["momentum"]) for g in self.optimizer.param_groups])
            seen.append([(lr, 0.0) for lr in self.scheduler.get_last_lr()])
        return np.array(seen, float)

    def checkpoint(self):
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def resume(self, checkpoint, epoch):
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.epoch = epoch


def assert_same(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_torch_checkpoint_resumes_in_metajit_as_torch_continues(name):
    theirs = Run(torch, name)
    theirs.steps(5)
    buffer = io.BytesIO()
    torch.save(theirs.checkpoint(), buffer)
    buffer.seek(0)
    ours = Run(jt, name)
    ours.resume(jt.load(buffer, map_location="cpu"), theirs.epoch)
    assert_same(ours.steps(8), theirs.steps(8))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_metajit_checkpoint_resumes_in_torch_as_torch_continues(name):
    ours, uninterrupted = Run(jt, name), Run(torch, name)
    assert_same(ours.steps(5), uninterrupted.steps(5))
    buffer = io.BytesIO()
    jt.save(ours.checkpoint(), buffer)
    buffer.seek(0)
    resumed = Run(torch, name)
    resumed.resume(torch.load(buffer, weights_only=True), ours.epoch)
    assert_same(resumed.steps(8), uninterrupted.steps(8))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_state_dicts_hold_torchs_entries(name):
    ours, theirs = Run(jt, name), Run(torch, name)
    ours.steps(4)
    theirs.steps(4)

    def entries(state):  # (torch records two flags as it runs, with class defaults when absent)
        nested = [entries(inner) for inner in state.get("_schedulers", [])]
        return {k for k in state if k not in ("_is_initial", "_get_lr_called_within_step")}, nested
    assert entries(ours.scheduler.state_dict()) == entries(theirs.scheduler.state_dict())


def test_lambda_states_hold_a_callable_objects_attributes_as_torch():
    def build(library, rate):
        optimizer = library.optim.SGD([jt.zeros(1) if library is jt else torch.zeros(1, requires_grad=True)], lr=1.0)
        return library.optim.lr_scheduler.LambdaLR(optimizer, Decay(rate))
    ours, theirs = build(jt, 0.5), build(torch, 0.5)
    assert ours.state_dict()["lr_lambdas"] == theirs.state_dict()["lr_lambdas"] == [{"rate": 0.5}]
    resumed, tresumed = build(jt, 0.9), build(torch, 0.9)
    resumed.load_state_dict(theirs.state_dict())
    tresumed.load_state_dict(theirs.state_dict())
    resumed.step()
    tresumed.step()
    assert resumed.lr_lambdas[0].rate == tresumed.lr_lambdas[0].rate == 0.5
    assert resumed.get_last_lr() == pytest.approx(tresumed.get_last_lr(), rel=1e-12)


def test_the_import_paths_and_a_subclass_written_for_torch():
    import metajit.optim.lr_scheduler as schedulers
    from metajit.optim.lr_scheduler import StepLR
    assert schedulers is jt.optim.lr_scheduler and StepLR is jt.lr_scheduler.StepLR

    def warm(module):
        class Warm(module._LRScheduler):  # a custom scheduler as PyTorch's docs write one
            def __init__(self, optimizer, total):
                self.total = total
                super().__init__(optimizer)

            def get_lr(self):
                return [base * min(1.0, (self.last_epoch + 1) / self.total) for base in self.base_lrs]
        return Warm

    ours, theirs = Run(jt, "StepLR"), Run(torch, "StepLR")
    ours.scheduler = warm(jt.optim.lr_scheduler)(ours.optimizer, 4)
    theirs.scheduler = warm(torch.optim.lr_scheduler)(theirs.optimizer, 4)
    assert_same(ours.steps(6), theirs.steps(6))


def test_wrong_states_raise_naming_the_mistake():
    def scheduler(build):
        return build(jt.optim.lr_scheduler, jt.optim.SGD([jt.zeros(2)], lr=0.1))
    cosine = scheduler(lambda m, o: m.CosineAnnealingLR(o, 10))
    with pytest.raises(jt.MetajitValueError, match=r"CosineAnnealingLR.load_state_dict: the state lacks \['T_max'"):
        cosine.load_state_dict(scheduler(lambda m, o: m.StepLR(o, 3)).state_dict())
    with pytest.raises(jt.MetajitTypeError, match="takes the dict state_dict"):
        cosine.load_state_dict([0.1])
    sequential = scheduler(SCHEDULERS["SequentialLR"])
    saved = sequential.state_dict()
    saved["_schedulers"] = saved["_schedulers"][:1]
    with pytest.raises(jt.MetajitValueError, match="holds 1 schedulers' states, this one runs 2"):
        sequential.load_state_dict(saved)
    lambdas = scheduler(lambda m, o: m.LambdaLR(o, warm_up))
    saved = lambdas.state_dict()
    saved["lr_lambdas"] = [None, None]
    with pytest.raises(jt.MetajitValueError, match="the state has 2 functions, this scheduler 1"):
        lambdas.load_state_dict(saved)
