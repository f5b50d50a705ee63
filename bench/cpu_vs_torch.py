"""metajit (cpu backend) against PyTorch CPU, measured in the same run with the same threads.

    python bench/cpu_vs_torch.py [--threads N] [--repeat R]

Prints, per workload, the median time of each (measured in alternating blocks, so neither
framework always runs first) and the ratio metajit/torch (lower is better; the target
from issue 3 is shown beside it), then the compile latency of a new kernel with an empty
cache and with a warm disk cache in a new process.

torch ships its own ``libgomp.so.1``, which then also serves metajit's kernels; both
frameworks therefore run under one OpenMP runtime, configured here before either loads
(short spin-wait, so idle OpenMP threads do not starve the BLAS threads), and OpenBLAS's
idle threads are told to sleep soon after each call for the same reason.
"""
import argparse
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np


def _timed_runs(function, count, warmup, samples):
    for _ in range(warmup):
        function()
    for _ in range(count):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)


def paired_medians(ours, theirs, repeat, rounds=3, warmup=2):
    """Median wall times of ``ours()`` and ``theirs()``, ``repeat`` runs each, taken in
    ``rounds`` alternating blocks (each after ``warmup`` runs), so neither side always
    runs first after the caches were filled by something else or while the machine's
    load drifts."""
    ours_samples, theirs_samples = [], []
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        _timed_runs(ours, per_round, warmup, ours_samples)
        _timed_runs(theirs, per_round, warmup, theirs_samples)
    return statistics.median(ours_samples), statistics.median(theirs_samples)


def alternated_ratio(ours, theirs, repeat, warmup=2):
    """``(median time of ours, median time of theirs, median of the per-pair ratios)`` of
    ``repeat`` pairs of single runs, the side that goes first alternating between pairs.
    Each ratio compares two runs made back to back, so a change in the machine's load
    moves both of its times: steadier than a ratio of medians on a shared machine."""
    for _ in range(warmup):
        ours(), theirs()
    ours_samples, theirs_samples = [], []
    for pair in range(repeat):
        first, second = ((ours, ours_samples), (theirs, theirs_samples))[::1 if pair % 2 == 0 else -1]
        for function, samples in (first, second):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    ratios = [o / t for o, t in zip(ours_samples, theirs_samples)]
    return statistics.median(ours_samples), statistics.median(theirs_samples), statistics.median(ratios)


def elementwise(jt, torch, rng):
    data = [rng.standard_normal(1 << 22).astype(np.float32) for _ in range(3)]
    a, b, c = (jt.array(d).sync() for d in data)
    ta, tb, tc = (torch.from_numpy(d) for d in data)
    return (lambda: ((a * b + c).relu() * 0.5).sync(),
            lambda: torch.relu(ta * tb + tc) * 0.5)


def row_sum(jt, torch, rng):
    data = rng.standard_normal((2048, 2048)).astype(np.float32)
    x, tx = jt.array(data).sync(), torch.from_numpy(data)
    return lambda: x.sum(1).sync(), lambda: tx.sum(1)


def matmul(jt, torch, rng):
    a_data, b_data = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    a, b = jt.array(a_data).sync(), jt.array(b_data).sync()
    ta, tb = torch.from_numpy(a_data), torch.from_numpy(b_data)
    return lambda: (a @ b).sync(), lambda: ta @ tb


def mlp_step(jt, torch, rng):
    sizes = [784, 512, 512, 10]
    inputs = rng.standard_normal((256, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 256)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    weights = [rng.standard_normal((m, n)).astype(np.float32) * (1 / m) ** 0.5
               for m, n in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(n, np.float32) for n in sizes[1:]]
    learning_rate = 0.01

    parameters = [jt.array(p).sync() for p in weights + biases]
    x, y = jt.array(inputs).sync(), jt.array(one_hot).sync()

    def forward_jt(h):
        for k in range(3):
            h = h @ parameters[k] + parameters[3 + k]
            if k < 2:
                h = h.relu()
        shifted = h - h.max(1, keepdims=True)
        log_probabilities = shifted - shifted.exp().sum(1, keepdims=True).log()
        return -(log_probabilities * y).sum(1).mean()

    def step_jt():
        loss = forward_jt(x)
        grads = jt.grad(loss, parameters)
        for parameter, grad in zip(parameters, grads):
            parameter.assign(parameter - learning_rate * grad)
        jt.sync_all()

    torch_parameters = [torch.tensor(p, requires_grad=True) for p in weights + biases]
    tx, tlabels = torch.from_numpy(inputs), torch.from_numpy(labels)

    def step_torch():
        h = tx
        for k in range(3):
            h = h @ torch_parameters[k] + torch_parameters[3 + k]
            if k < 2:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, tlabels)
        loss.backward()
        with torch.no_grad():
            for parameter in torch_parameters:
                parameter -= learning_rate * parameter.grad
                parameter.grad = None

    return step_jt, step_torch


WORKLOADS = [
    ("relu(a*b+c)*0.5, 4M float32", elementwise, 0.5),
    ("sum(axis=1) of 2048x2048", row_sum, 1.5),
    ("matmul 1024x1024 float32", matmul, 1.2),
    ("MLP 784-512-512-10 train step, batch 256", mlp_step, 1.0),
]

def python_overhead(jt, step, repeat):
    """(seconds per step, seconds of it inside kernel launches) for a warmed-up ``step``:
    the time inside the backend's ``launch_sequence`` (or each ``launch`` without one)."""
    from metajit import plugins
    handle = plugins.current()
    hook = "launch_sequence" if handle.launch_sequence is not None else "launch"
    launch = getattr(handle, hook)
    inside = [0.0]

    def timed_launch(*args):
        started = time.perf_counter()
        launch(*args)
        inside[0] += time.perf_counter() - started

    for _ in range(3):
        step()
    setattr(handle, hook, timed_launch)
    try:
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        total = time.perf_counter() - started
    finally:
        setattr(handle, hook, launch)
    return total / repeat, inside[0] / repeat


COMPILE_PROBE = """
import time, numpy as np
import metajit as jt
jt.set_device("cpu")
x = jt.array(np.arange(64, dtype=np.float32)).sync()
start = time.perf_counter()
(x * 3.0 + 1.0).tanh().sync()
print(time.perf_counter() - start)
"""


def compile_latency():
    """(empty-cache first call, warm-cache first call in a new process), in seconds."""
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "METAJIT_CACHE_DIR": cache}

        def probe():
            result = subprocess.run([sys.executable, "-c", textwrap.dedent(COMPILE_PROBE)],
                                    capture_output=True, text=True, env=environment, check=True)
            return float(result.stdout.strip())
        return probe(), probe()


def setup(description, default_repeat):
    """Parse ``--threads``/``--repeat`` and give both frameworks the same thread count;
    returns (arguments, metajit, torch)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=default_repeat)
    arguments = parser.parse_args()
    import torch
    import metajit as jt
    jt.set_device("cpu")
    torch.set_num_threads(arguments.threads)
    jt.flags.num_threads = arguments.threads
    return arguments, jt, torch


def main():
    arguments, jt, torch = setup(__doc__.splitlines()[0], 15)
    rng = np.random.default_rng(0)
    print(f"threads={arguments.threads}  torch {torch.__version__}  (median of {arguments.repeat})")
    print(f"{'workload':44s} {'metajit ms':>11s} {'torch ms':>10s} {'ratio':>7s} {'target':>7s}")
    for name, make, target in WORKLOADS:
        ours, theirs = make(jt, torch, rng)
        ours_time, theirs_time = paired_medians(ours, theirs, arguments.repeat)
        ratio = ours_time / theirs_time
        mark = "ok" if ratio <= target else "MISS"
        print(f"{name:44s} {ours_time * 1e3:11.3f} {theirs_time * 1e3:10.3f} {ratio:7.2f} "
              f"{'<=' + str(target):>7s} {mark}")
    step, _ = mlp_step(jt, torch, rng)
    per_step, in_kernels = python_overhead(jt, step, arguments.repeat)
    print(f"MLP step: {per_step * 1e3:.2f} ms, of which {in_kernels * 1e3:.2f} ms in kernel launches and "
          f"{(per_step - in_kernels) * 1e3:.2f} ms Python (graph building, plan-cache lookup, dispatch)")
    cold, warm = compile_latency()
    print(f"compile latency, new kernel, empty cache:      {cold * 1e3:7.1f} ms (target <= 300)")
    print(f"compile latency, new process, warm disk cache: {warm * 1e3:7.1f} ms (target <= 50)")


if __name__ == "__main__":
    main()
