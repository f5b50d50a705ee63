"""A PyTorch-style DDP training loop (init_process_group, DistributedDataParallel,
DistributedSampler, no_sync accumulation, clip_grad_norm_ between backward and step) on
every rank, against torch in the same process training on the global batches (each
the ranks' batches together). Prints "ok <rank>" when the parameters agree."""
import numpy as np
import torch

import metajit as jt

dist = jt.distributed
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
rng = np.random.default_rng(0)
inputs = rng.standard_normal((32, 5)).astype(np.float32)
targets = rng.standard_normal((32, 2)).astype(np.float32)
torch.manual_seed(0)
theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
jt.set_seed(11 + rank)  # ranks start apart: the wrapper broadcasts rank 0's parameters
ours = jt.nn.Sequential(jt.nn.Linear(5, 8), jt.nn.Tanh(), jt.nn.Linear(8, 2))
if rank == 0:
    ours.load_state_dict(theirs.state_dict())
model = jt.nn.parallel.DistributedDataParallel(ours)
optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
dataset = jt.dataset.TensorDataset(inputs, targets)
sampler = jt.dataset.DistributedSampler(dataset, seed=1)
loader = jt.dataset.DataLoader(dataset, batch_size=4, sampler=sampler)


def global_batches(epoch):
    """Index lists of the global batches: batch k of every rank, rank 0's first."""
    shares = []
    for other in range(world):
        share = jt.dataset.DistributedSampler(dataset, world, other, seed=1)
        share.set_epoch(epoch)
        order = list(share)
        shares.append([order[k:k + 4] for k in range(0, len(order), 4)])
    return [sum((share[k] for share in shares), []) for k in range(len(shares[0]))]


def torch_loss(indices):
    x, y = torch.from_numpy(inputs[indices]), torch.from_numpy(targets[indices])
    return ((theirs(x) - y) ** 2).mean()


for epoch in range(2):
    sampler.set_epoch(epoch)
    batches, reference = list(loader), global_batches(epoch)
    for k in range(0, len(batches), 2):
        with model.no_sync():  # accumulate the first micro-batch on each rank
            (x, y) = batches[k]
            ((model(x) - y) ** 2).mean().backward()
        (x, y) = batches[k + 1]
        ((model(x) - y) ** 2).mean().backward()
        jt.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad()
        torch_loss(reference[k]).backward()
        torch_loss(reference[k + 1]).backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        torch_optimizer.step()
        torch_optimizer.zero_grad()
gathered = [jt.zeros(3) for _ in range(world)]
dist.all_gather(gathered, jt.array([rank, 1.0, 2.0 * rank]))
assert [g.numpy().tolist() for g in gathered] == [[r, 1.0, 2.0 * r] for r in range(world)], gathered
for name, value in theirs.state_dict().items():
    np.testing.assert_allclose(model.module.state_dict()[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5,
                               err_msg=name)
dist.barrier()
dist.destroy_process_group()
print(f"ok {rank}")
