"""What a call being captured for replay (`metajit.compile`) did that a replay of its
launches would not do again: a value read while it ran, random numbers drawn, a value
assigned in place. Front-end and executor code `note` such events and report the Vars
they changed (`changed`); `watching` collects both for one call on this thread.
"""
import contextlib
import threading
import weakref


class Watched:
    """What one watched call did: ``reasons`` (why it cannot be replayed) and weak
    references to the Vars it changed in place (``changed``): a changed Var still alive
    once the call has returned, and not among its outputs, was state kept outside it."""

    def __init__(self):
        self.reasons, self.changed = [], []

    def outliving(self, outputs):
        """The changed Vars still alive that are not among ``outputs``."""
        kept = {id(v) for v in outputs}
        return [var for var in (ref() for ref in self.changed) if var is not None and id(var) not in kept]


class _Watch(threading.local):
    current = None  # a `Watched` while a call is watched on this thread


_watch = _Watch()


def note(reason):
    """Record ``reason`` (why the running call cannot be replayed) when a call is watched."""
    current = _watch.current
    if current is not None:
        current.reasons.append(reason)


def changed(var):
    """Record that ``var`` got a new value in place (by ``assign`` or an in-place operator)."""
    current = _watch.current
    if current is not None:
        current.changed.append(weakref.ref(var))


@contextlib.contextmanager
def watching():
    """Collect what the enclosed code does into the `Watched` this yields."""
    outer, current = _watch.current, Watched()
    _watch.current = current
    try:
        yield current
    finally:
        _watch.current = outer
        if outer is not None:  # what a nested call did, its enclosing call did too
            outer.reasons.extend(current.reasons)
            outer.changed.extend(current.changed)
