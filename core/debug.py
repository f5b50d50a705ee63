"""Introspection: which kernels a realisation ran, with their generated source.

Example::

    with jt.debug.record_kernels() as launched:
        (a * b + c).relu().sync()
    print(len(launched), launched[0].kernel)
    print(launched[0].source)        # the backend's generated code
"""
import contextlib
import dataclasses


@dataclasses.dataclass(frozen=True)
class LaunchedKernel:
    """One kernel launch: the backend-neutral kernel, the device, and the generated source
    (None when a library kernel ran instead)."""

    kernel: object
    device: str
    source: str = None


_recorders = []


def is_recording():
    """Whether a `record_kernels` block is active (the executor then calls `record`)."""
    return bool(_recorders)


def record(handle, kernel):
    """Called by the executor for each launch while a recorder is active."""
    if _recorders:
        source = handle.sources.get(kernel)
        entry = LaunchedKernel(kernel, handle.name, source.text if source else None)
        for recorder in _recorders:
            recorder.append(entry)


@contextlib.contextmanager
def record_kernels():
    """Collect every kernel launched inside the ``with`` block into the yielded list."""
    launched = []
    _recorders.append(launched)
    try:
        yield launched
    finally:
        _recorders.remove(launched)
