"""``jt.amp`` (also ``jt.cuda.amp`` and ``jt.autocast``): PyTorch's automatic mixed precision
spellings, so a script written for AMP runs, in the precision its model has.

metajit computes in the dtypes it is given (``model.half()`` for float16), so `autocast`
changes nothing, and `GradScaler` is PyTorch's scaler with ``enabled=False``: ``scale``
returns the loss as it is, ``step`` steps the optimiser, ``update`` does nothing.
Example::

    scaler = jt.amp.GradScaler()
    with jt.autocast("cuda", dtype=jt.float16):
        loss = criterion(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
"""
import functools

__all__ = ["GradScaler", "autocast"]


class autocast:
    """PyTorch's ``autocast`` context manager and decorator; computes nothing differently
    (see the module docstring)."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        self.device_type, self.dtype, self.enabled = device_type, dtype, enabled

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def autocasting(*args, **kwargs):
            with self:
                return function(*args, **kwargs)
        return autocasting


class GradScaler:
    """PyTorch's ``GradScaler`` as it behaves disabled: no loss scaling, as metajit's float
    computations need none (see the module docstring)."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self.device = device

    def scale(self, outputs):
        """``outputs`` as they are."""
        return outputs

    def unscale_(self, optimizer):
        """Nothing to undo."""

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step(*args, **kwargs)``, and its result."""
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Nothing to adjust."""

    def get_scale(self):
        """1.0, the scale of a disabled scaler."""
        return 1.0

    def is_enabled(self):
        """False: no scaling happens."""
        return False

    def state_dict(self):
        """An empty dict, as a disabled PyTorch scaler's."""
        return {}

    def load_state_dict(self, state_dict):
        """Accepts a scaler's state (nothing of it applies)."""
