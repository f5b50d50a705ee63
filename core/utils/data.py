"""PyTorch's ``torch.utils.data`` spelling of `metajit.dataset`: ``jt.utils.data.DataLoader``,
``from metajit.utils.data import Dataset, random_split`` (every name `metajit.dataset` has)."""
from .. import dataset as _dataset


def __getattr__(name):
    """Any name of `metajit.dataset` (the module is a view of it, so both stay one)."""
    try:
        return getattr(_dataset, name)
    except AttributeError:
        raise AttributeError(f"metajit.utils.data has no {name!r} (metajit.dataset has no such name)") from None


def __dir__():
    return [name for name in dir(_dataset) if not name.startswith("_")]
