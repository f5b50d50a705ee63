"""Data parallelism and MPI collectives under real ``mpirun -np 2`` jobs, against
finite differences and against the same training in one process."""
import json
import os
import re
import sys
import time

import numpy as np
import pytest

from .conftest import SCRIPTS, mpirun


def test_collectives_and_their_gradients_match_finite_differences():
    result = mpirun("collective_gradients.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" ok") == 14  # 7 ops x 2 ranks


@pytest.mark.parametrize("sync", ["plain", "sync"])
def test_data_parallel_follows_the_single_process_trajectory(tmp_path, sync):
    out = str(tmp_path / "state")
    result = mpirun("train_steps.py", out, sync)
    assert result.returncode == 0, result.stdout + result.stderr
    rank0, rank1 = np.load(f"{out}_2_0.npy"), np.load(f"{out}_2_1.npy")
    np.testing.assert_array_equal(rank0, rank1)  # identical parameters (and statistics) on every rank
    single = _run_single_process(out, sync)
    np.testing.assert_allclose(rank0, single, rtol=2e-5, atol=1e-6)


def test_sync_batchnorm_matches_torch_on_the_whole_batch_also_far_from_zero():
    result = mpirun("sync_batchnorm.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") == 4  # 2 offsets x 2 ranks (the ranks' lines may interleave)


def _run_single_process(out, sync):
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(SCRIPTS))] + sys.path))
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        env.pop(name, None)
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "train_steps.py"), out, sync], check=True, env=env,
                   timeout=240)
    return np.load(f"{out}_1_0.npy")


def test_dataset_shards_are_disjoint_equal_and_cover_each_global_batch():
    result = mpirun("shards.py")
    assert result.returncode == 0, result.stdout + result.stderr
    epochs = result.stdout.strip().split("epoch")
    orders = []
    for epoch in epochs[:2]:
        batches = [json.loads(line) for line in epoch.strip().splitlines() if line.strip()]
        assert len(batches) == 4  # 22 samples, global batch 6: 3 full batches and one of 4
        for first, second in batches:
            assert len(first) == len(second) and not set(first) & set(second)
        orders.append([i for first, second in batches for i in first + second])
        assert sorted(orders[-1]) == list(range(22))
    assert orders[0] != orders[1]  # reshuffled per epoch, alike on every rank


def test_train_digits_demo_runs_data_parallel(tmp_path):
    pytest.importorskip("sklearn")
    out = str(tmp_path / "digits")
    result = mpirun("train_digits.py", out, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    rank0, rank1 = np.load(f"{out}_0.npy"), np.load(f"{out}_1.npy")
    assert rank0[0] > 0.9 and rank0[0] == rank1[0]
    np.testing.assert_array_equal(rank0, rank1)


@pytest.mark.parametrize("mode, message", [
    ("raise", "rank 1 of 2] uncaught exception"),
    ("skip", "rank 1 runs broadcast(root 0"),
    ("slow", "did not complete within 3 s"),
])
def test_faults_end_every_rank_quickly_with_a_message(mode, message):
    started = time.monotonic()
    result = mpirun("faults.py", mode, environment={"METAJIT_MPI_TIMEOUT": "3"}, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "finished" not in result.stdout
    assert time.monotonic() - started < 60


def test_uneven_iterable_shares_still_take_equal_steps():
    result = mpirun("pipe_steps.py")
    assert result.returncode == 0, result.stdout + result.stderr
    # mpirun forwards the two ranks' output concurrently: lines may arrive joined
    assert sorted(re.findall(r"rank \d+ steps \d+", result.stdout)) == ["rank 0 steps 2", "rank 1 steps 2"]


def test_gradient_all_reduces_start_while_backward_kernels_are_still_launched(tmp_path):
    parameters, events = {}, {}
    for overlap in ("1", "0"):
        out = str(tmp_path / f"overlap{overlap}")
        result = mpirun("overlap_order.py", out, environment={"METAJIT_MPI_OVERLAP": overlap})
        assert result.returncode == 0, result.stdout + result.stderr
        parameters[overlap] = [np.load(f"{out}_{rank}.npy") for rank in (0, 1)]
        with open(f"{out}_0.json") as file:
            recorded = json.load(file)
        assert recorded["background"] == (overlap == "1")  # the communication thread runs only when on
        events[overlap] = [tuple(e) for e in recorded["events"]]
    overlapped = events["1"]
    starts = [k for k, e in enumerate(overlapped) if e[0] == "start"]
    finishes = [k for k, e in enumerate(overlapped) if e[0] == "finish"]
    assert len(starts) == 6 and overlapped[starts[0]] == ("start", 3)  # the last layer's bias is ready first
    # backward kernels are launched after the first bucket's all-reduce started, before the last one's
    assert any(e[0] == "launch" for e in overlapped[starts[0]:starts[-1]])
    assert starts[-1] < finishes[0] and overlapped[-1][0] == "launch"  # the update waits for every bucket
    for overlap in ("1", "0"):
        np.testing.assert_array_equal(parameters[overlap][0], parameters[overlap][1])
    np.testing.assert_array_equal(parameters["1"][0], parameters["0"][0])  # bitwise the same either way


def test_a_device_collective_library_runs_every_collective_on_its_buffers(tmp_path):
    out, calls, saved = str(tmp_path / "values"), {}, {}
    for device in ("cpu", "cpu_collectives"):  # the latter: cpu buffers with a library (as NCCL on cuda)
        result = mpirun("device_collectives.py", out, device)
        assert result.returncode == 0, result.stdout + result.stderr
        saved[device] = [np.load(f"{out}_{device}_{rank}.npy") for rank in (0, 1)]
        calls[device] = []
        for rank in (0, 1):
            with open(f"{out}_{device}_{rank}.json") as file:
                calls[device].append({tuple(call[:2]) for call in json.load(file)})
    assert calls["cpu"] == [set(), set()]  # no library: MPI on host copies
    assert calls["cpu_collectives"] == 2 * [{("all_reduce", "add"), ("all_reduce", "max"), ("all_reduce", "min"),
                                             ("reduce", 1), ("broadcast", 0), ("broadcast", 1)}]
    for rank in (0, 1):
        np.testing.assert_array_equal(saved["cpu_collectives"][rank], saved["cpu"][rank])


def _gpu_count():
    from metajit.backends.cuda import nvidia_libraries, runtime
    if runtime.missing_device_reason() or nvidia_libraries.missing_reason("nccl"):
        return 0
    return runtime.driver().cuDeviceGetCount()[1]


@pytest.mark.skipif(_gpu_count() < 2, reason="needs two GPUs and NCCL: NCCL refuses two ranks on one GPU")
def test_nccl_collectives_and_training_on_two_gpus_match_the_host_path(tmp_path):
    out, saved = str(tmp_path / "values"), {}
    for device in ("cpu", "cuda"):
        result = mpirun("device_collectives.py", out, device)
        assert result.returncode == 0, result.stdout + result.stderr  # the script checks values against numpy
        saved[device] = [np.load(f"{out}_{device}_{rank}.npy") for rank in (0, 1)]
    for rank in (0, 1):
        np.testing.assert_allclose(saved["cuda"][rank], saved["cpu"][rank], rtol=1e-4, atol=1e-5)


def test_a_pytorch_ddp_loop_follows_torch_on_the_global_batches():
    result = mpirun("ddp_steps.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") == 2
