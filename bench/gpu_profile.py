"""Where the cuda device's time goes, for the cases bench/gpu_vs_torch.py shows furthest
behind torch: per forward (or training step) the wall time and the GPU's busy time (CUPTI,
through torch.profiler) of both frameworks, metajit's slowest kernels, and for training
steps the Python functions that take the host's time (cProfile).

    python bench/gpu_profile.py [--cases squeezenet1_1:64,alexnet:1,...] [--train mlp,resnet18]

A wall time well above the busy time means the host (Python, launches) is the limit; a
busy time above torch's means the kernels are.
"""
import argparse
import cProfile
import io
import pstats

import numpy as np

from gpu_timing import kernel_seconds, pipelined, strict_float32_frameworks
from gpu_vs_torch import model_pair, training_pair

CASES = "squeezenet1_1:64,mobilenet_v2:64,alexnet:1,vgg16:64,resnet50:64"


def kernel_lines(times, count):
    """The ``count`` slowest kernels of ``times`` as text lines, with their share."""
    total = sum(times.values())
    ranked = sorted(times.items(), key=lambda item: -item[1])[:count]
    return [f"      {seconds * 1e3:8.3f} ms {seconds / total * 100:5.1f}%  {name[:110]}" for name, seconds in ranked]


def compare(torch, label, ours, theirs, sync_ours, repeat):
    """Print wall and busy times of both, and metajit's slowest kernels."""
    for function, synchronize in ((ours, sync_ours), (theirs, torch.cuda.synchronize)):
        for _ in range(3):
            function()
        synchronize()
    wall = [pipelined(ours, sync_ours, repeat), pipelined(theirs, torch.cuda.synchronize, repeat)]
    kernels = [kernel_seconds(torch, ours, sync_ours, repeat), kernel_seconds(torch, theirs, torch.cuda.synchronize,
                                                                              repeat)]
    busy = [sum(k.values()) if k else float("nan") for k in kernels]
    counts = [len(k) if k else 0 for k in kernels]
    print(f"{label}: wall ms metajit {wall[0] * 1e3:.3f} torch {wall[1] * 1e3:.3f} | GPU busy ms metajit "
          f"{busy[0] * 1e3:.3f} torch {busy[1] * 1e3:.3f} | distinct kernels {counts[0]} vs {counts[1]}", flush=True)
    for name, times in zip(("metajit", "torch"), kernels):
        if times:
            print(f"    {name}'s slowest kernels:")
            print("\n".join(kernel_lines(times, 10 if name == "metajit" else 5)))


def host_profile(function, synchronize, steps):
    """cProfile's top functions (by own time) over ``steps`` calls."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        function()
    synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(22)
    return "\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000]


def main():
    """Parse the options and print the profile of each case."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=CASES, help="model:batch, comma-separated")
    parser.add_argument("--train", default="mlp,resnet18", help="training steps to profile (mlp, resnet18)")
    parser.add_argument("--repeat", type=int, default=10)
    arguments = parser.parse_args()
    import metajit as jt
    frameworks = strict_float32_frameworks(jt, "gpu_profile")
    if frameworks is None:
        return
    torch, torchvision = frameworks
    sync_ours = lambda: jt.sync_all(True)  # noqa: E731
    for case in filter(None, arguments.cases.split(",")):
        name, batch = case.split(":")
        ours, theirs = model_pair(jt, torch, torchvision, name)
        data = np.random.default_rng(0).standard_normal((int(batch), 3, 224, 224)).astype(np.float32)
        x_ours, x_theirs = jt.array(data).sync(), torch.from_numpy(data).cuda()
        with jt.no_grad(), torch.no_grad():
            compare(torch, f"{name} forward b{batch}", lambda: ours(x_ours).sync(), lambda: theirs(x_theirs),
                    sync_ours, arguments.repeat)
    for kind in filter(None, arguments.train.split(",")):
        step_ours, step_theirs = training_pair(jt, torch, torchvision, kind)
        compare(torch, f"{kind} training step", step_ours, step_theirs, sync_ours, arguments.repeat)
        print(f"    metajit's host time over 5 {kind} steps (cProfile, by own time):")
        print("      " + host_profile(step_ours, sync_ours, 5).replace("\n", "\n      "), flush=True)


if __name__ == "__main__":
    main()
