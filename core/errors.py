"""User-facing exceptions. Every error metajit raises derives from `MetajitError`.

Each subclass also derives from the builtin a Python user would catch
(`ValueError`, `TypeError`, `RuntimeError`), and messages name the user's own
source line — the first stack frame outside the metajit package — so a shape
mistake points at the script that made it, not at framework internals.
"""
import os
import sys

_PACKAGE_ROOTS = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep
    for p in (__file__, os.path.join(os.path.dirname(__file__), "..", "backends", "x"))
)


def user_location():
    """Return ``"file:line"`` of the innermost stack frame outside metajit, or ``""``."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        in_metajit = filename.startswith(_PACKAGE_ROOTS) or "/metajit/" in filename
        if not in_metajit and not filename.startswith("<frozen"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class MetajitError(Exception):
    """Base class of every error metajit raises on purpose.

    The message is extended with the user's source location, e.g.
    ``add: shapes (2, 3) and (4,) do not broadcast (at train.py:12)``.
    """

    def __init__(self, message):
        location = user_location()
        if location:
            message = f"{message} (at {location})"
        super().__init__(message)


class MetajitShapeError(MetajitError, ValueError):
    """Shapes, dims or axes that do not fit the operation."""


class MetajitDtypeError(MetajitError, TypeError):
    """A dtype the operation or the device does not accept."""


class MetajitIndexError(MetajitError, IndexError):
    """An index out of range for the indexed dimension."""


class MetajitValueError(MetajitError, ValueError):
    """An argument value that is not allowed (bad expression, bad option)."""


class MetajitTypeError(MetajitError, TypeError):
    """An argument of the wrong kind (a dtype has `MetajitDtypeError`), e.g. a model
    setting that is not a list of the expected configuration objects."""


class MetajitDeviceError(MetajitError, RuntimeError):
    """An unknown, unavailable or misbehaving device backend."""


class MetajitCompileError(MetajitError, RuntimeError):
    """A backend failed to compile generated code; names the source and compiler output."""


class MetajitCodegenError(MetajitCompileError):
    """A backend's renderer cannot generate a kernel (an element-wise op it has no spelling
    for); raised at render time, before any compiler runs."""


class MetajitFileNotFoundError(MetajitError, FileNotFoundError):
    """A file metajit was asked to read (e.g. a model's pretrained weights) is not there;
    the message names the file and where to put it."""


class MetajitMemoryError(MetajitError, MemoryError):
    """A device ran out of memory even after its cache was emptied; names the requested
    size and what is held."""


class MetajitZeroDivisionError(MetajitError, ZeroDivisionError, RuntimeError):
    """An integer divided by zero (``//``, ``%``, ``div(rounding_mode=...)``); also a
    `RuntimeError`, what PyTorch raises there."""
