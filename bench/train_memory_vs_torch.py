"""Peak memory and step time of a ResNet-18 training step (batch 8, 3x224x224), metajit
against torch on the CPU.

    python bench/train_memory_vs_torch.py [--threads N] [--steps S]

Each framework runs in its own fresh process that imports only itself (as a user's
script would), with the same data: build the model, note the resident memory, reset the
resident-set high-water mark (``/proc/self/clear_refs``), run two warm-up steps (metajit
compiles its kernels there) and ``S`` measured steps. Reported: the peak resident memory
of the process, and how far it rose above the memory resident once the model was built
(the training's own working memory: activations, gradients, optimiser state, caches).
Step times are the median of the measured steps; processes alternate between the
frameworks, so a noisy machine slows both.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _resident_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def sgd_step(framework, model, images, labels):
    """A function running one SGD-momentum cross-entropy step of ``model`` under
    ``framework`` ("metajit" or "torch") on the numpy batch ``images``, ``labels``."""
    if framework == "metajit":
        import metajit as jt
        optimizer = jt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = jt.array(images).sync(), jt.array(labels).sync()
        jt.sync_all()

        def step():
            optimizer.step(jt.nn.cross_entropy(model(x), y))
            jt.sync_all()
        return step
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def measure(framework, threads, steps):
    """Run in a child process: the training steps of ``framework``; prints a JSON line."""
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    import numpy as np
    sys.path.insert(0, HERE)
    from nn_vs_torch import resnet18
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
    labels = rng.integers(0, 1000, 8)
    if framework == "metajit":
        import metajit as jt
        jt.flags.num_threads = threads
        model = resnet18(jt.nn).train()
    else:
        import torch
        torch.set_num_threads(threads)
        model = resnet18(torch.nn).train()
    step = sgd_step(framework, model, images, labels)
    ready = _resident_kib("VmRSS")
    _reset_peak()
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    peak = _resident_kib("VmHWM")
    print(json.dumps({"peak_mib": peak / 1024, "rise_mib": (peak - ready) / 1024,
                      "step_ms": sorted(times)[len(times) // 2] * 1e3}))


def run_child(framework, threads, steps):
    """`measure` for ``framework`` in a fresh process; its JSON result as a dict."""
    result = subprocess.run([sys.executable, __file__, "--child", framework, "--threads", str(threads),
                             "--steps", str(steps)], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{framework} run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    """Alternate fresh metajit and torch processes and print the best of each field."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating process pairs")
    parser.add_argument("--child", choices=("metajit", "torch"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        measure(arguments.child, arguments.threads, arguments.steps)
        return
    rows = {"metajit": [], "torch": []}
    for _ in range(arguments.rounds):
        for framework in ("metajit", "torch"):
            rows[framework].append(run_child(framework, arguments.threads, arguments.steps))

    def best(framework, field):
        return min(row[field] for row in rows[framework])
    print(f"ResNet-18 training step, batch 8, 224x224, SGD momentum; threads={arguments.threads}, "
          f"{arguments.steps} steps x {arguments.rounds} alternating rounds (best of rounds)")
    print(f"{'':28s} {'metajit':>10s} {'torch':>10s} {'ratio':>7s}")
    for field, label in (("peak_mib", "peak resident MiB"), ("rise_mib", "rise above built model MiB"),
                         ("step_ms", "step time ms (median)")):
        ours, theirs = best("metajit", field), best("torch", field)
        print(f"{label:28s} {ours:10.1f} {theirs:10.1f} {ours / max(theirs, 1e-9):7.2f}")


if __name__ == "__main__":
    main()
