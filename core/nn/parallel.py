"""PyTorch's data-parallel wrappers (``nn.parallel.DistributedDataParallel``,
``nn.DataParallel``) over metajit's MPI data parallelism (`metajit.distributed`).

A script launched with ``mpirun -np N`` is data parallel already: optimisers start every
rank from rank 0's parameters and average gradients before each update. The wrappers give
a PyTorch DDP script the same behaviour with PyTorch's timing: the wrapped module's
gradients are averaged as soon as a backward pass has accumulated them (so code reading
``.grad`` before ``optimizer.step()``, such as ``clip_grad_norm_``, sees the average),
except inside `DistributedDataParallel.no_sync`, as PyTorch's.
"""
import contextlib

from .. import distributed
from .module import Module


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training under ``mpirun``: rank 0's parameters
    and buffers are broadcast to every rank here, its buffers (BatchNorm statistics) again
    at each training forward when ``broadcast_buffers``, and its gradients are averaged
    over the ranks after each backward pass, in buckets (PyTorch's arguments about
    devices, buckets and unused parameters are accepted; the wrapped module is
    ``.module``, so state dict keys start with ``module.``, as PyTorch's).

    Example::

        jt.distributed.init_process_group("nccl")
        model = jt.nn.parallel.DistributedDataParallel(model)
        loss = criterion(model(x), y); loss.backward(); optimizer.step()
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, **options):
        super().__init__()
        distributed._check_group(process_group)
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self._averager = distributed.GradientAverager()
        parameters = [p for p in module.parameters() if p.requires_grad]
        distributed.broadcast_parameters(parameters + list(module.buffers()))
        self._synced = parameters
        for parameter in parameters:
            distributed.mark_averaged_in_backward(parameter)
            parameter.register_post_accumulate_grad_hook(self._average_gradients)

    def _average_gradients(self, parameter):
        # the first hook of a backward pass averages every parameter's gradient in buckets;
        # the others find theirs averaged already
        if self.require_backward_grad_sync:
            self._averager.average(self._synced)

    @contextlib.contextmanager
    def no_sync(self):
        """Within it, backward passes accumulate gradients on each rank without averaging;
        the first backward after it averages the accumulated sum, as PyTorch's."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def execute(self, *args, **kwargs):
        if self.broadcast_buffers and self.is_training():
            distributed.broadcast_parameters(list(self.module.buffers()))
        return self.module(*args, **kwargs)


class DataParallel(Module):
    """PyTorch's single-process ``DataParallel``: metajit computes on the device in use,
    so it calls ``module`` on the whole batch (``.module`` is the wrapped model, state dict
    keys start with ``module.``). Use `DistributedDataParallel` under ``mpirun`` for
    several processes. Example: ``model = jt.nn.DataParallel(model)``."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim

    def execute(self, *args, **kwargs):
        return self.module(*args, **kwargs)
