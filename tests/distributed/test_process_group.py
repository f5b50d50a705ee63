"""PyTorch's ``torch.distributed`` spellings, ``DistributedSampler`` and the data-parallel
wrappers in a single process (the world of one process); `test_mpi` runs them under mpirun."""
import numpy as np
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler as TorchDistributedSampler

import metajit as jt
from metajit.errors import MetajitValueError


def test_a_single_process_group_is_the_world_of_one():
    dist = jt.distributed
    dist.init_process_group("nccl")
    try:
        assert dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl"
        assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
        x = jt.array([1.0, 2.0])
        assert dist.all_reduce(x, op=dist.ReduceOp.MAX) is None
        work = dist.broadcast(x, 0, async_op=True)
        assert work.wait() and work.is_completed()
        gathered, objects = [jt.zeros(2)], []
        dist.all_gather(gathered, x * 3)
        dist.all_gather_object(objects, {"rank": 0})
        np.testing.assert_array_equal(gathered[0].numpy(), [3.0, 6.0])
        assert objects == [{"rank": 0}]
        dist.barrier()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_process_group_mistakes_name_the_fix():
    with pytest.raises(MetajitValueError, match="mpirun -np 4"):
        jt.distributed.init_process_group("gloo", world_size=4)
    with pytest.raises(MetajitValueError, match="group=None"):
        jt.distributed.get_rank(group="subgroup")
    with pytest.raises(MetajitValueError, match="2 entries for 1 ranks"):
        jt.distributed.all_gather([jt.zeros(1), jt.zeros(1)], jt.ones(1))


@pytest.mark.parametrize("count", [10, 11, 3])
def test_distributed_sampler_shares_as_torch(count):
    data = list(range(count))
    for replicas in (1, 2, 3, 4):
        for drop_last in (False, True):
            shares = []
            for rank in range(replicas):
                ours = jt.dataset.DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
                theirs = TorchDistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
                assert list(ours) == list(theirs) and len(ours) == len(theirs)
                shuffled = jt.dataset.DistributedSampler(data, replicas, rank, seed=5, drop_last=drop_last)
                shuffled.set_epoch(1)
                shares.append(list(shuffled))
            flat = sum(shares, [])
            assert len(set(flat)) == (len(flat) if drop_last else min(count, len(flat)))
    first = jt.dataset.DistributedSampler(data, 2, 0, seed=5)
    again = list(first)
    first.set_epoch(1)
    assert list(first) != again or count < 4
    with pytest.raises(MetajitValueError, match="rank 2"):
        jt.dataset.DistributedSampler(data, 2, 2)


def test_wrappers_keep_pytorch_state_dict_names_and_no_sync_accumulates():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ours = jt.nn.Sequential(jt.nn.Linear(3, 2), jt.nn.BatchNorm1d(2))
    ours.load_state_dict(theirs.state_dict())
    wrapped = jt.nn.parallel.DistributedDataParallel(ours, device_ids=[0], find_unused_parameters=True)
    assert list(wrapped.state_dict()) == list(torch.nn.DataParallel(theirs).state_dict())
    assert list(jt.nn.DataParallel(ours).state_dict()) == list(wrapped.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with wrapped.no_sync():
        wrapped(jt.array(x)).sum().backward()
    wrapped(jt.array(x)).sum().backward()
    theirs(torch.from_numpy(x)).sum().backward()
    theirs(torch.from_numpy(x)).sum().backward()
    np.testing.assert_allclose(wrapped.module[0].weight.grad.numpy(), theirs[0].weight.grad.numpy(), rtol=1e-5,
                               atol=1e-6)
