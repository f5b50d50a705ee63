"""k-nearest neighbours (k=10) through ``jt.code`` against PyTorch (``torch.cdist`` +
``topk``), same threads, measured in the same process in alternating blocks.

    python bench/code_knn.py [--sizes 100 1000 10000] [--threads N] [--repeat R]

Prints per point count the median time of each and the ratio metajit/torch (lower is
better; the target from issue 16 is below 1 at every size).
"""
import argparse
import os
import sys

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_vs_torch import paired_medians  # noqa: E402  (the shared alternating timer)


def main():
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=0, help="runs per framework (default: by size)")
    arguments = parser.parse_args()
    import torch
    import metajit as jt
    from metajit.examples.knn_code import knn
    torch.set_num_threads(arguments.threads)
    jt.flags.num_threads = arguments.threads
    print(f"k=10 nearest neighbours of n random 3-d points, {arguments.threads} threads")
    print(f"{'n':>7} {'metajit':>11} {'torch':>11} {'ratio':>7}")
    for n in arguments.sizes:
        cloud = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
        points, tensor = jt.array(cloud).sync(), torch.from_numpy(cloud)
        ours = knn(points, 10).numpy()
        theirs = torch.cdist(tensor, tensor).topk(10, largest=False).indices.numpy()
        distances = ((cloud[:, None] - cloud[None]) ** 2).sum(-1) if n <= 4000 else None
        if distances is not None:  # both find neighbourhoods of the same radii (ties may order differently)
            np.testing.assert_allclose(np.take_along_axis(distances, ours, 1),
                                       np.take_along_axis(distances, theirs, 1), rtol=1e-4, atol=1e-6)
        repeat = arguments.repeat or max(3, min(200, int(2e6 // (n * n)) + 3))
        ours_time, theirs_time = paired_medians(lambda: knn(points, 10).sync(),
                                                lambda: torch.cdist(tensor, tensor).topk(10, largest=False),
                                                repeat)
        print(f"{n:>7} {ours_time * 1e3:>9.3f}ms {theirs_time * 1e3:>9.3f}ms {ours_time / theirs_time:>7.2f}")


if __name__ == "__main__":
    main()
