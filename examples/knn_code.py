"""A custom operator with ``jt.code``: brute-force k-nearest neighbours of a point cloud,
in a few lines of C++ (OpenMP over the query points, vectorised distances, a sorted
insertion list of the k best per row).

    python -m metajit.examples.knn_code [--points N] [--k K]

The operator is compiled once (cached on disk) and is an ordinary lazy Var: its input
may be any expression, and its output feeds fused kernels (here, a gather of the
neighbours' coordinates). See docs/custom_ops.md for writing and debugging your own.
"""
import argparse
import time

import numpy as np

import metajit as jt

KNN_HEADER = """
#include <algorithm>
#include <vector>
"""

KNN_SOURCE = """
@alias(points, in0)
@alias(neighbours, out0)
const int n = points_shape0, dims = points_shape1, k = neighbours_shape1;
// the coordinates one dim after another, so that the distance loops vectorise
std::vector<float> columns((size_t)dims * n);
for (int j = 0; j < n; j++)
    for (int c = 0; c < dims; c++) columns[(size_t)c * n + j] = @points(j, c);
#pragma omp parallel if (n >= 64)  // threads only pay off beyond a few thousand distances
{
    std::vector<float> distance(n), best_distance(k);  // per thread
    std::vector<int> best_index(k);
    #pragma omp for schedule(static)
    for (int i = 0; i < n; i++) {
        std::fill(distance.begin(), distance.end(), 0.0f);
        for (int c = 0; c < dims; c++) {
            const float* column = &columns[(size_t)c * n];
            const float value = column[i];
            for (int j = 0; j < n; j++) {
                float difference = column[j] - value;
                distance[j] += difference * difference;
            }
        }
        // the k smallest, sorted, by insertion: most points fail the first comparison
        int found = 0;
        for (int j = 0; j < n; j++) {
            const float d = distance[j];
            if (found == k && d >= best_distance[k - 1]) continue;
            int m = found < k ? found++ : k - 1;
            for (; m > 0 && best_distance[m - 1] > d; m--) {
                best_distance[m] = best_distance[m - 1];
                best_index[m] = best_index[m - 1];
            }
            best_distance[m] = d;
            best_index[m] = j;
        }
        for (int m = 0; m < k; m++) @neighbours(i, m) = best_index[m];
    }
}
"""


def knn(points, k):
    """Indices (int32, shape ``(n, k)``) of the ``k`` nearest points of each of the ``n``
    points (``(n, dims)`` float32), nearest first; each point is its own first neighbour."""
    if k > points.shape[0]:
        raise jt.MetajitValueError(f"knn: k={k} is more than the {points.shape[0]} points")
    return jt.code((points.shape[0], k), "int32", [points], cpu_header=KNN_HEADER, cpu_src=KNN_SOURCE)


def main():
    """Find the neighbours of a random point cloud and check them against numpy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    arguments = parser.parse_args()
    cloud = np.random.default_rng(0).standard_normal((arguments.points, 3)).astype(np.float32)
    points = jt.array(cloud)
    start = time.perf_counter()
    neighbours = knn(points, arguments.k)
    centroid = points[neighbours.reshape(-1).int64()].reshape(arguments.points, arguments.k, 3).mean(dim=1)
    centroid.sync()
    print(f"{arguments.k} nearest neighbours of {arguments.points} points in {time.perf_counter() - start:.3f} s "
          "(first run includes compiling the operator)")
    distances = ((cloud[:, None] - cloud[None]) ** 2).sum(-1)
    expected = np.sort(distances, axis=1)[:, :arguments.k]
    found = np.take_along_axis(distances, neighbours.numpy(), axis=1)
    print("matches numpy:", bool(np.allclose(found, expected, rtol=1e-5)))
    print("mean distance to the neighbourhood centroid:", float(np.linalg.norm(cloud - centroid.numpy(), axis=1).mean()))


if __name__ == "__main__":
    main()
