"""Data-parallel scaling on this machine: the digits convnet's training step with a global
batch of 64, on 1 and on 2 MPI processes (one thread each), with the gradient all-reduce
overlapped with the rest of the backward pass or not, for several bucket sizes.

    python bench/mpi_scaling.py [--steps 30] [--ranks 1 2] [--bucket-mb 25 0.02]

Launches itself under ``mpirun`` once per configuration and prints the median step time,
the speed-up over one process, and per step the time collectives took (on the
communication thread when overlapped), how much of it the main thread waited for
(exposed) and the rest (hidden behind kernels). The digits net has 0.15 MB of
gradients: with 25 MB buckets they are one bucket, which only the update can overlap;
smaller buckets start the last layers' all-reduce while earlier layers' gradients are
computed. Its synchronised BatchNorm adds small all-reduces in the forward and backward
passes, which the next kernels need at once.

What to expect elsewhere: the gradient all-reduce moves the parameters' size once per
step; on one machine it is a shared-memory copy (tens of microseconds), across machines
``mpirun -H a,b`` sends it over the network (about 2 x size / bandwidth, plus latency per
bucket: ~0.1 ms on 100 Gb/s InfiniBand for this model, ~1 ms on 10 Gb Ethernet), so the
speed-up holds while the step's compute is well above that, and overlap hides up to the
backward time that follows the first bucket.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(steps):
    """Run under mpirun: time ``steps`` training steps; rank 0 prints a JSON line."""
    import numpy as np
    import metajit as jt
    from metajit.examples.train_digits import DigitsNet
    jt.set_seed(0)
    model = DigitsNet()
    optimizer = jt.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = jt.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    images = rng.random((64, 1, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    share = slice(jt.rank * 64 // jt.world_size, (jt.rank + 1) * 64 // jt.world_size)
    x, y = jt.array(images[share]), jt.array(labels[share])
    times, exposed, busy = [], [], []
    for step in range(steps + 5):
        before = _collective_seconds(jt.mpi)
        started = time.perf_counter()
        optimizer.step(criterion(model(x), y))
        if step >= 5:
            times.append(time.perf_counter() - started)
            after = _collective_seconds(jt.mpi)
            exposed.append(after[0] - before[0])
            busy.append(after[1] - before[1])
    if jt.rank == 0:
        print(json.dumps({"ranks": jt.world_size, "step": statistics.median(times),
                          "exposed": statistics.median(exposed), "busy": statistics.median(busy)}), flush=True)


def _collective_seconds(communicator):
    """(seconds the main thread waited for collectives, seconds the communication thread
    spent in them) so far."""
    if communicator is None:
        return 0.0, 0.0
    background = communicator.background
    return communicator.collective_seconds, background.busy_seconds if background is not None else 0.0


def main():
    """Launch one mpirun job per configuration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--bucket-mb", type=float, nargs="+", default=[25, 0.02])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        return worker(arguments.steps)
    print("digits convnet, global batch 64, SGD with momentum, one thread per process")
    print(f"{'processes':>9} {'bucket':>8} {'overlap':>7} {'step':>10} {'speed-up':>9} {'collectives/step':>17} "
          f"{'exposed':>9} {'hidden':>9}")
    single = None
    for ranks in arguments.ranks:
        for bucket_mb in arguments.bucket_mb if ranks > 1 else arguments.bucket_mb[:1]:
            for overlap in ("0", "1") if ranks > 1 else ("0",):
                result = _launch(ranks, bucket_mb, overlap, arguments.steps)
                single = single or result["step"]
                total = result["busy"] if overlap == "1" else result["exposed"]
                print(f"{ranks:>9} {bucket_mb:>6g}MB {'on' if overlap == '1' else 'off':>7} "
                      f"{result['step'] * 1e3:>8.2f}ms {single / result['step']:>9.2f} {total * 1e3:>15.3f}ms "
                      f"{result['exposed'] * 1e3:>7.3f}ms {max(total - result['exposed'], 0) * 1e3:>7.3f}ms")


def _launch(ranks, bucket_mb, overlap, steps):
    environment = dict(os.environ, OMP_NUM_THREADS="1", GOMP_SPINCOUNT="10000", METAJIT_MPI_OVERLAP=overlap,
                       METAJIT_MPI_BUCKET_MB=str(bucket_mb))
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)]
    for name in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "METAJIT_MPI_OVERLAP", "METAJIT_MPI_BUCKET_MB"):
        command += ["-x", name]
    command += [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(steps)]
    output = subprocess.run(command, capture_output=True, text=True, env=environment, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
