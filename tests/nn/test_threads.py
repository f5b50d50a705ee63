"""The threading model (docs/architecture.md): independent graphs in different threads are
safe. Two threads each train their own model with its own optimiser at the same time; each
ends with exactly the weights the same training gives when run alone."""
import threading

import numpy as np
import pytest

import metajit as jt
from metajit import nn
from tests.threads import run_in_threads


def make_model():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def train(model, seed, steps=25):
    rng = np.random.default_rng(seed)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        x = jt.array(rng.standard_normal((8, 2, 6, 6)).astype(np.float32))
        y = jt.array(rng.integers(0, 3, 8).astype(np.int32))
        optimizer.step(nn.cross_entropy_loss(model(x), y))
    jt.sync_all()
    return {name: value.numpy() for name, value in model.state_dict().items()}


def test_two_threads_train_independent_models_like_one_thread_each(device):
    if device == "reference":
        pytest.skip("the numpy interpreter takes 14 s for three rounds; the compiled devices run it")
    for round_ in range(3):
        models = [make_model() for _ in range(2)]
        twins = [make_model() for _ in range(2)]
        for model, twin in zip(models, twins):
            twin.load_state_dict(model.state_dict())
        results, errors = {}, []

        def worker(index):
            try:
                results[index] = train(models[index], seed=100 * round_ + index)
            except Exception as error:  # reported below with its thread
                errors.append((index, error))
        threads = [threading.Thread(target=worker, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        for index, twin in enumerate(twins):
            alone = train(twin, seed=100 * round_ + index)
            for name, value in alone.items():
                np.testing.assert_allclose(results[index][name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_no_grad_in_one_thread_does_not_reach_another():
    inside, built = threading.Event(), threading.Event()
    seen = {}

    def optimiser_like():
        with jt.no_grad():
            inside.set()
            built.wait(10)
            seen["inside"] = (jt.array([1.0]) * 2).requires_grad

    def forward_like():
        inside.wait(10)
        x = jt.array([1.0, 2.0])
        seen["other"] = (x * x).requires_grad and x.requires_grad
        built.set()

    threads = [threading.Thread(target=optimiser_like), threading.Thread(target=forward_like)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"inside": False, "other": True}


def small_classifier():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


def test_a_plan_made_while_another_thread_uploads_the_shared_weights_still_uploads_them(monkeypatch):
    """Thread A's plan is keyed with the weights on the host, but another thread uploads
    them before A fuses, so the plan lists no upload; a later graph of that structure with
    weights on the host (a fresh model) must still upload its own."""
    from metajit.passes import fusion
    x = np.ones((4, 16), np.float32)
    model = small_classifier()
    fuse, interleaved = fusion._fuse, []

    def fuse_after_another_thread(*arguments):
        if not interleaved:
            interleaved.append(True)
            other = threading.Thread(target=lambda: model(jt.array(x)).numpy())
            other.start()
            other.join()
        return fuse(*arguments)
    monkeypatch.setattr(fusion, "_fuse", fuse_after_another_thread)
    w1, b1, w2, b2 = [p._node.host_data.copy() for p in model.parameters()]  # (not uploaded yet)
    np.testing.assert_allclose(model(jt.array(x)).numpy(), np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, rtol=1e-5)
    monkeypatch.setattr(fusion, "_fuse", fuse)
    fresh = small_classifier()
    w1, b1, w2, b2 = [p._node.host_data.copy() for p in fresh.parameters()]
    np.testing.assert_allclose(fresh(jt.array(x)).numpy(), np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, rtol=1e-5)


def test_threads_sharing_one_model_for_inference_agree_with_it_alone():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    model.eval()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    with jt.no_grad():
        expected = [model(jt.array(x)).numpy() for x in inputs]
    start = threading.Barrier(4)

    def worker(k):
        start.wait()
        for _ in range(5):
            with jt.no_grad():
                np.testing.assert_allclose(model(jt.array(inputs[k])).numpy(), expected[k], rtol=1e-5, atol=1e-6)
    run_in_threads(worker, 4)


def test_a_lazy_parameter_shared_by_two_threads_is_computed_by_each(monkeypatch):
    """A bias set by `init.constant_` has no value until a graph computes it, as an
    intermediate of that realisation (a convolution's input). Thread B builds and runs its
    graph while thread A's realisation of the same model is between planning and
    launching: B must compute the bias itself, not read A's unwritten (then freed) memory."""
    import torch
    from metajit.passes import executor
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)).eval()
    for layer in (model[0], model[2]):
        jt.init.constant_(layer.bias, 0.5)
    weights = [torch.from_numpy(layer.weight.numpy()) for layer in (model[0], model[2])]
    assert not model[0].bias._node.is_realised
    rng = np.random.default_rng(0)
    xa, xb = (rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(2))

    def oracle(x):
        bias = torch.full((4,), 0.5)
        hidden = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), weights[0], bias, padding=1))
        return torch.nn.functional.conv2d(hidden, weights[1], bias, padding=1).numpy()
    launch, results = executor._launch_in_segments, {}

    def run_in_thread(name, x):
        def run():
            with jt.no_grad():
                results[name] = model(jt.array(x)).numpy()
        thread = threading.Thread(target=run, name=name)
        thread.start()
        thread.join()

    def launch_after_another_thread(*arguments):
        if threading.current_thread().name == "A" and "B" not in results:
            run_in_thread("B", xb)
        return launch(*arguments)
    monkeypatch.setattr(executor, "_launch_in_segments", launch_after_another_thread)
    run_in_thread("A", xa)
    np.testing.assert_allclose(results["B"], oracle(xb), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results["A"], oracle(xa), rtol=1e-5, atol=1e-5)
    with jt.no_grad():
        np.testing.assert_allclose(model(jt.array(xb)).numpy(), oracle(xb), rtol=1e-5, atol=1e-5)
