"""``jt.cuda``: PyTorch's ``torch.cuda`` questions and switches over metajit's devices.

metajit computes on one device at a time, the one selected (``jt.flags.use_cuda = 1`` or
``jt.set_device("cuda")``), and moves values there itself, so there is one cuda device to
ask about, and PyTorch's mixed precision spellings are under ``jt.cuda.amp`` as under
`metajit.amp`. Example::

    device = "cuda" if jt.cuda.is_available() else "cpu"
    jt.cuda.synchronize()          # finish the queued work (before reading a clock)
"""
from . import amp  # noqa: F401  (torch.cuda.amp)
from . import creation, plugins
# PyTorch's legacy ``torch.cuda.FloatTensor`` & co.: the same classes (values go to the selected device)
from .creation import (BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor,  # noqa: F401
                       HalfTensor, IntTensor, LongTensor, ShortTensor)
from .var import collect_garbage, sync_all


def is_available():
    """Whether a usable cuda device is installed here (also ``jt.has_cuda``); computing on it
    needs it selected: ``jt.flags.use_cuda = 1``."""
    return "cuda" in {info.name for info in plugins.devices() if info.available}


def device_count():
    """1 when cuda is available (metajit uses one GPU), else 0."""
    return int(is_available())


def current_device():
    """The index of the cuda device metajit uses: 0."""
    return 0


def manual_seed(seed):
    """Seed metajit's random numbers (one generator serves every device: ``jt.seed``)."""
    creation.seed(seed)


manual_seed_all = manual_seed


def synchronize(device=None):
    """Compute every Var still pending (metajit launches work when values are needed) and
    wait for the device: ``jt.sync_all(device_sync=True)``."""
    sync_all(device_sync=True)


def empty_cache():
    """Return the memory the devices keep for reuse: ``jt.gc()``."""
    collect_garbage()
