"""The hook reference, generated from the docstrings of `metajit.hookspec`.

``python -m metajit.sdk reference`` prints it; ``--output sdk/hooks.md`` rewrites the
committed copy, and ``--check FILE`` fails when that copy is stale (a test runs it). A
hook without a docstring is an error, not an empty section.
"""
import inspect

from metajit import hookspec
from metajit.plugins import OPTIONAL_HOOKS, REQUIRED_HOOKS

PREFIX = "metajit_backend_"


class ReferenceError(ValueError):
    """A hook specification without documentation."""


def hook_specifications():
    """``[(name, function)]`` of every hook specification, in source order."""
    marker = hookspec.hookspec.project_name + "_spec"
    found = [(name, function) for name, function in inspect.getmembers(hookspec, inspect.isfunction)
             if hasattr(function, marker)]
    return sorted(found, key=lambda item: inspect.getsourcelines(item[1])[1])


def hook_reference():
    """The reference as Markdown: the contract every hook follows, then one section per hook
    (signature, required or optional, its docstring)."""
    lines = ["# metajit backend hooks", "",
             "Generated from `metajit/hookspec.py` by `python -m metajit.sdk reference`; do not edit.", "",
             "## The contract", "", inspect.cleandoc(hookspec.__doc__), "", "## Hooks", ""]
    for name, function in hook_specifications():
        doc = inspect.getdoc(function)
        if not doc:
            raise ReferenceError(f"hook {name} has no docstring; document it in metajit/hookspec.py")
        short = name[len(PREFIX):]
        kind = "required" if short in REQUIRED_HOOKS else "optional" if short in OPTIONAL_HOOKS else "other"
        lines += [f"### `{name}{inspect.signature(function)}` ({kind})", "", doc, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def stale(path):
    """None when the file at ``path`` is the current reference, else why not."""
    try:
        with open(path) as handle:
            current = handle.read()
    except OSError as error:
        return f"cannot read {path}: {error}"
    if current != hook_reference():
        return f"{path} is stale: regenerate it with python -m metajit.sdk reference --output {path}"
    return None
