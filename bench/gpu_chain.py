"""The fused chain ``relu(a*b+c)*0.5`` over 16M float32 on the cuda device: its time
against what the memory bandwidth allows (bytes moved / measured device copy bandwidth)
and against torch eager on the same GPU, in alternating runs in one process.

    python bench/gpu_chain.py [--elements 16777216] [--repeat 50]

Target from issue 12: within 1.3x of the bandwidth bound.
"""
import argparse
import statistics
import time

import numpy as np


def main():
    """Measure and print the three times and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--elements", type=int, default=1 << 24)
    parser.add_argument("--repeat", type=int, default=50)
    arguments = parser.parse_args()
    import metajit as jt
    from metajit.backends.cuda import runtime
    jt.set_device("cuda")
    device = runtime.device()
    count = arguments.elements
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(count).astype(np.float32) for _ in range(3)]
    a, b, c = (jt.array(d).sync() for d in data)

    def ours():
        ((a * b + c).relu() * 0.5).sync()
        jt.sync_all(True)

    source, target = device.allocate(count * 4), device.allocate(count * 4)

    def copy():
        device.copy_device_to_device(target, source, count * 4)
        device.synchronize()

    timings = {"metajit": [], "copy": [], "torch": []}
    contenders = {"metajit": ours, "copy": copy}
    try:
        import torch
        ta, tb, tc = (torch.from_numpy(d).cuda() for d in data)

        def theirs():
            torch.relu(ta * tb + tc) * 0.5
            torch.cuda.synchronize()
        contenders["torch"] = theirs
    except Exception as error:  # no CUDA torch here
        print(f"torch CUDA unavailable ({error}); skipping its column")
        timings.pop("torch")
    for function in contenders.values():
        function()
    for _ in range(arguments.repeat):
        for name, function in contenders.items():
            started = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in timings.items()}
    bandwidth = 2 * count * 4 / median["copy"]
    bound = 4 * count * 4 / bandwidth  # three reads and one write
    print(f"relu(a*b+c)*0.5 over {count} float32 on {device.architecture}, copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    print(f"  bandwidth bound {bound * 1e3:.3f} ms")
    print(f"  metajit         {median['metajit'] * 1e3:.3f} ms   / bound = {median['metajit'] / bound:.2f} (target <= 1.3)")
    if "torch" in median:
        print(f"  torch eager     {median['torch'] * 1e3:.3f} ms   metajit / torch = "
              f"{median['metajit'] / median['torch']:.2f}")


if __name__ == "__main__":
    main()
