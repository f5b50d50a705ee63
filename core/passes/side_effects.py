"""What a call being captured for replay (`metajit.compile`) did that a replay of its
launches would not do again: a value read while it ran, random numbers drawn, a value
assigned in place. Front-end and executor code `note` such events; `watching` collects
them for one call on this thread.
"""
import contextlib
import threading


class _Watch(threading.local):
    reasons = None  # a list while a call is watched on this thread


_watch = _Watch()


def note(reason):
    """Record ``reason`` (why the running call cannot be replayed) when a call is watched."""
    reasons = _watch.reasons
    if reasons is not None:
        reasons.append(reason)


@contextlib.contextmanager
def watching():
    """Collect the `note` reasons of the enclosed code into the list this yields."""
    outer, reasons = _watch.reasons, []
    _watch.reasons = reasons
    try:
        yield reasons
    finally:
        _watch.reasons = outer
        if outer is not None:  # what a nested call did, its enclosing call did too
            outer.extend(reasons)
