"""What a call being captured for replay (`metajit.compile`) did that a replay of its
launches would not do again: a value read while it ran, random numbers drawn, a Var from
outside the call given a new value. Front-end and executor code `note` such events, and
report the Vars made (`created`) and changed in place (`changed`); `watching` collects
them for one call on this thread.
"""
import contextlib
import threading

active = [0]  # how many calls are watched now, in any thread (Var creation asks, cheaply)
_counting = threading.Lock()


class Watched:
    """What one watched call did: ``reasons`` (why it cannot be replayed) and the ids of
    the Vars it made (``created``: changing those in place is the call's own business)."""

    def __init__(self):
        self.reasons, self.created = [], set()


class _Watch(threading.local):
    current = None  # a `Watched` while a call is watched on this thread


_watch = _Watch()


def note(reason):
    """Record ``reason`` (why the running call cannot be replayed) when a call is watched."""
    current = _watch.current
    if current is not None:
        current.reasons.append(reason)


def created(var):
    """Record that ``var`` was made now (called only while ``active[0]``)."""
    current = _watch.current
    if current is not None:
        current.created.add(id(var))


def changed(var):
    """Record that ``var`` got a new value in place (``assign``, an in-place operator): a
    side effect unless the watched call made it."""
    current = _watch.current
    if current is not None and id(var) not in current.created:
        current.reasons.append("it gave a Var from outside the call a new value (a state update)")


@contextlib.contextmanager
def watching():
    """Collect what the enclosed code does into the `Watched` this yields."""
    outer, current = _watch.current, Watched()
    _watch.current = current
    with _counting:
        active[0] += 1
    try:
        yield current
    finally:
        with _counting:
            active[0] -= 1
        _watch.current = outer
        if outer is not None:  # what a nested call did, its enclosing call did too
            outer.reasons.extend(current.reasons)
            outer.created |= current.created
