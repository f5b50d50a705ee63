"""`Var.data`: the value as a numpy array whose in-place changes reach the Var.

Jittor documents ``var.data`` as a numpy array sharing the Var's memory, so scripts edit a
parameter through it (``w.data[0] = 0``, ``w.data.fill(1)``, ``w.data *= 0.5``); PyTorch
scripts write the same lines. A metajit value lives in the graph, so ``data`` is a host
copy of a subclass that writes itself back (`Var.assign`) after each in-place change made
through numpy: item assignment, ``fill``, ``put``, in-place operators, ufuncs with it as
``out`` and numpy's filling functions (``np.copyto``...), on it or on any view of it.
PyTorch's in-place methods that scripts call on ``.data`` (``m.weight.data.normal_(0,
0.02)``, ``fill_``, ``zero_``, ``copy_``, ``add_``, ``mul_``, ``clamp_``...) work too.
Results of arithmetic on it are plain arrays.
"""
import weakref

import numpy as np

from . import creation


class HostView(np.ndarray):
    """A numpy copy of a Var's value that assigns itself back to the Var when changed in
    place (see the module docstring)."""

    def __array_finalize__(self, parent):
        # a view (slice, reshape, transpose) writes back through the array it views
        if isinstance(parent, HostView):
            self._root = parent if parent._root is None else parent._root
            self._owner = parent._owner
        else:
            self._root = self._owner = None

    def _write_back(self):
        owner = self._owner() if self._owner is not None else None
        root = self if self._root is None else self._root
        if owner is not None and np.shares_memory(self, root):
            owner.assign(np.array(root, copy=True).view(np.ndarray))

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._write_back()

    def fill(self, value):
        """numpy's ``fill``, written back to the Var."""
        super().fill(value)
        self._write_back()

    def put(self, *args, **kwargs):
        """numpy's ``put``, written back to the Var."""
        super().put(*args, **kwargs)
        self._write_back()

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, HostView) else x for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, HostView) else o for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        for target in out or ():
            if isinstance(target, HostView):
                target._write_back()
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result


    def _changed(self, values):
        """Set every element from ``values`` (broadcast) and write back; returns self."""
        np.copyto(self.view(np.ndarray), np.asarray(values, dtype=self.dtype), casting="unsafe")
        self._write_back()
        return self

    def fill_(self, value):
        """PyTorch's ``fill_``."""
        return self._changed(value)

    def zero_(self):
        """PyTorch's ``zero_``."""
        return self._changed(0)

    def copy_(self, source):
        """PyTorch's ``copy_`` (a Var, tensor or array broadcast to this shape)."""
        return self._changed(creation.as_numpy(source))

    def add_(self, other, alpha=1):
        """PyTorch's ``add_`` (``self += alpha * other``)."""
        return self._changed(self.view(np.ndarray) + alpha * creation.as_numpy(other))

    def sub_(self, other, alpha=1):
        """PyTorch's ``sub_``."""
        return self._changed(self.view(np.ndarray) - alpha * creation.as_numpy(other))

    def mul_(self, other):
        """PyTorch's ``mul_``."""
        return self._changed(self.view(np.ndarray) * creation.as_numpy(other))

    def div_(self, other):
        """PyTorch's ``div_``."""
        return self._changed(self.view(np.ndarray) / creation.as_numpy(other))

    def clamp_(self, min=None, max=None):
        """PyTorch's ``clamp_``."""
        return self._changed(np.clip(self.view(np.ndarray), min, max))

    def normal_(self, mean=0.0, std=1.0):
        """PyTorch's ``normal_``, from metajit's generator (``jt.seed``)."""
        return self._changed(creation._generator.normal(mean, std, self.shape))

    def uniform_(self, a=0.0, b=1.0):
        """PyTorch's ``uniform_``, from metajit's generator (``jt.seed``)."""
        return self._changed(creation._generator.uniform(a, b, self.shape))

    def __array_function__(self, function, types, args, kwargs):
        result = super().__array_function__(function, types, args, kwargs)
        if function in _FILLING_FUNCTIONS and isinstance(args[0], HostView):
            args[0]._write_back()
        return result

    def __reduce__(self):
        """Pickled (saved, sent to a worker) as the plain array it holds."""
        return self.view(np.ndarray).__reduce__()


# numpy functions that change their first argument in place
_FILLING_FUNCTIONS = frozenset((np.copyto, np.put, np.place, np.putmask, np.fill_diagonal, np.put_along_axis))


def host_view(var, value):
    """``value`` (a fresh numpy copy of ``var``) as a `HostView` writing back to ``var``."""
    view = value.view(HostView)
    view._root = None
    view._owner = weakref.ref(var)
    return view
