"""The fused chain ``relu(a*b+c)*0.5`` over 16M float32 on the cuda device: its time
against what the memory bandwidth allows (bytes moved / measured device copy bandwidth)
and against torch eager on the same GPU, in alternating runs in one process.

    python bench/gpu_chain.py [--elements 16777216] [--repeat 50]

Three times per contender, each the median of alternating rounds:
* ``call+sync``: one call and a wait for the device (Python, launch and sync included);
* ``pipelined``: ``--repeat`` calls queued back to back, one wait, divided by the count
  (what a training loop sees: Python overlaps the device);
* ``kernel``: the device time of the kernels (or copy) alone, read by CUPTI through
  torch.profiler (where CUDA torch is installed).
The bound is 4 x 4 bytes per element (three reads, one write) at the copy's bandwidth,
measured the same way. Target from issue 12: kernel time within 1.3x of the bound.
"""
import argparse
import statistics

import numpy as np

from gpu_timing import call_and_sync, cuda_missing, kernel_seconds, pipelined

ROUNDS = 5


def main():
    """Measure and print the times and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--elements", type=int, default=1 << 24)
    parser.add_argument("--repeat", type=int, default=50)
    arguments = parser.parse_args()
    import metajit as jt
    if cuda_missing(jt, "gpu_chain"):
        return
    from metajit.backends.cuda import runtime
    jt.set_device("cuda")
    device = runtime.device()
    count, repeat = arguments.elements, arguments.repeat
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(count).astype(np.float32) for _ in range(3)]
    a, b, c = (jt.array(d).sync() for d in data)
    expected = np.maximum(data[0] * data[1] + data[2], 0) * 0.5
    np.testing.assert_allclose(((a * b + c).relu() * 0.5).numpy(), expected, rtol=1e-6, atol=1e-6)

    def ours():
        ((a * b + c).relu() * 0.5).sync()

    source, target = device.allocate(count * 4), device.allocate(count * 4)

    def copy():
        device.copy_device_to_device(target, source, count * 4)

    contenders = {"metajit": (ours, lambda: jt.sync_all(True)), "copy": (copy, device.synchronize)}
    torch = None
    try:
        import torch
        ta, tb, tc = (torch.from_numpy(d).cuda() for d in data)

        def theirs():
            torch.relu(ta * tb + tc) * 0.5
        contenders["torch"] = (theirs, torch.cuda.synchronize)
    except Exception as error:  # no CUDA torch here
        print(f"torch CUDA unavailable ({error}); skipping its column and the kernel times")
        torch = None
    times = {name: {"call+sync": [], "pipelined": []} for name in contenders}
    for function, synchronize in contenders.values():
        pipelined(function, synchronize, 3)
    for _ in range(ROUNDS):
        for name, (function, synchronize) in contenders.items():
            times[name]["call+sync"].append(call_and_sync(function, synchronize))
            times[name]["pipelined"].append(pipelined(function, synchronize, repeat))
    median = {name: {kind: statistics.median(values) for kind, values in kinds.items()}
              for name, kinds in times.items()}
    if torch is not None:
        for name, (function, synchronize) in contenders.items():
            kernels = kernel_seconds(torch, function, synchronize, repeat)
            median[name]["kernel"] = sum(kernels.values()) if kernels else None
    kinds = [k for k in ("call+sync", "pipelined", "kernel") if all(median[n].get(k) for n in median)]
    print(f"relu(a*b+c)*0.5 over {count} float32 on {device.name} ({device.architecture}); milliseconds per call:")
    print(f"  {'':10s}" + "".join(f"{kind:>12s}" for kind in kinds))
    for name in contenders:
        print(f"  {name:10s}" + "".join(f"{median[name][kind] * 1e3:12.4f}" for kind in kinds))
    for kind in kinds:
        bandwidth = 2 * count * 4 / median["copy"][kind]
        bound = 4 * count * 4 / bandwidth
        line = (f"  {kind:10s} copy bandwidth {bandwidth / 1e9:6.0f} GB/s, bound {bound * 1e3:.4f} ms, "
                f"metajit / bound = {median['metajit'][kind] / bound:.2f}")
        if "torch" in median:
            line += f", metajit / torch = {median['metajit'][kind] / median['torch'][kind]:.2f}"
        print(line)
    print("  target: kernel (or pipelined) metajit / bound <= 1.3")


if __name__ == "__main__":
    main()
