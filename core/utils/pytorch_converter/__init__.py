"""PyTorch model code to metajit code (Jittor's ``jittor.utils.pytorch_converter``), on `ast`.

    from metajit.utils.pytorch_converter import convert
    print(convert('''
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
        def forward(self, x):
            return self.conv(x).view(x.size(0), -1)
    '''))

prints the class with ``nn.Conv(3, 8, 3)``, ``def execute`` and
``x.view((x.shape[0], -1))`` under ``import metajit as jt`` / ``from metajit import nn``.
The table of names and arguments is `pjmap` (extend it with `pjmap_append`);
`convert_with_report` also returns what could not be converted as (line, construct,
reason) — each such construct is replaced by a stand-in that raises
``NotImplementedError`` where the code reaches it, and listed at the top of the output.
Command line: ``python -m metajit.utils.pytorch_converter model.py -o model_mj.py``.
See docs/pytorch_converter.md.
"""
import ast
import dataclasses
import functools
import os

from ...errors import MetajitValueError
from .mapping import pjmap, pjmap_append
from .transformer import Converter, Unconverted

__all__ = ["Conversion", "Unconverted", "convert", "convert_file", "convert_with_report", "pjmap", "pjmap_append"]

SPELLINGS = ("metajit", "jittor")
_MARKERS = ("_unconverted", "_unconverted_method")


@dataclasses.dataclass(frozen=True)
class Conversion:
    """The converted source and the constructs left unconverted (`Unconverted` tuples, by line)."""

    code: str
    unconverted: list


def convert(code, spelling="metajit", package=None):
    """The metajit version of PyTorch source ``code`` (Jittor's ``convert``); with
    ``spelling="jittor"`` it imports ``jittor as jt`` instead. ``package`` resolves the
    file's relative imports (``"torchvision.models"``)."""
    return convert_with_report(code, spelling, package).code


def convert_with_report(code, spelling="metajit", package=None, filename="<code>"):
    """`convert`, returning a `Conversion`: ``.code`` and ``.unconverted``, the list of
    ``(line, construct, reason)`` for what has no metajit translation.

    Example: ``convert_with_report("y = torch.jit.trace(m, x)").unconverted`` is
    ``[Unconverted(line=1, construct='torch.jit.trace(m, x)', reason='metajit has no jt.jit.trace')]``.
    """
    if spelling not in SPELLINGS:
        raise MetajitValueError(f"spelling must be one of {SPELLINGS}, got {spelling!r}")
    try:
        tree = ast.parse(code, filename)
    except SyntaxError as error:
        raise MetajitValueError(f"{filename}:{error.lineno}: cannot parse the PyTorch code ({error.msg}); "
                                "the converter reads Python 3 source") from None
    converter = Converter(package)
    tree = converter.visit(tree)
    _fill_empty_bodies(tree)
    ast.fix_missing_locations(tree)
    unconverted = sorted(converter.unconverted, key=lambda u: u.line)
    return Conversion(_assemble(tree, converter.shim_names, unconverted, spelling), unconverted)


def convert_file(path, spelling="metajit", package=None):
    """`convert_with_report` of the file at ``path``; ``package`` defaults to the package
    the file sits in (the directories above it holding an ``__init__.py``)."""
    with open(path, encoding="utf-8") as source:
        code = source.read()
    return convert_with_report(code, spelling, package or _package_of(path), filename=os.fspath(path))


def _package_of(path):
    directory, parts = os.path.dirname(os.path.abspath(path)), []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, name = os.path.split(directory)
        parts.insert(0, name)
    return ".".join(parts) or None


def _fill_empty_bodies(tree):
    for node in ast.walk(tree):
        if isinstance(getattr(node, "body", None), list) and not node.body:
            node.body.append(ast.Pass())


def _assemble(tree, shim_names, unconverted, spelling):
    """Report comment, docstring and ``__future__`` imports, metajit imports, the needed
    shims, then the converted body."""
    body = tree.body
    split = 0
    while split < len(body) and (_is_docstring(body[split], split) or
                                 isinstance(body[split], ast.ImportFrom) and body[split].module == "__future__"):
        split += 1
    rest = ast.unparse(ast.Module(body[split:], []))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    wanted = [shim for local, (_, shim) in shim_names.items() if local in used] + [m for m in _MARKERS if m in used]
    sources, standard_modules = _shims()
    definitions = _shim_definitions(sources, wanted)
    aliases = [f"{local} = {shim}" for local, (_, shim) in shim_names.items() if local in used and local != shim]
    used |= {n.id for text in definitions for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
    imports = [f"import {spelling} as jt"]
    if {"init", "nn"} & used:
        imports.append(f"from {spelling} import {', '.join(m for m in ('init', 'nn') if m in used)}")
    imports += [f"import {m}" for m in standard_modules if m in used]
    parts = [_report_comment(unconverted), ast.unparse(ast.Module(body[:split], [])), "\n".join(imports),
             "\n\n\n".join(definitions), "\n".join(aliases), rest]
    return "\n\n\n".join(p for p in parts if p) + "\n"


def _is_docstring(statement, index):
    return index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and \
        isinstance(statement.value.value, str)


def _report_comment(unconverted):
    """The report as comment lines, one per construct and reason (with all its lines)."""
    if not unconverted:
        return ""
    places = {}
    for line, construct, reason in unconverted:
        places.setdefault((construct, reason), []).append(str(line))
    lines = ["# Not converted from PyTorch (each raises NotImplementedError where the code reaches it):"]
    lines += [f"#   line{'s' if len(at) > 1 else ''} {', '.join(at)}: {construct}: {reason}"
              for (construct, reason), at in places.items()]
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def _shims():
    """({top-level name: source text with the comments just above it}, [standard-library
    modules imported]) of the `shims` module."""
    from . import shims
    with open(shims.__file__, encoding="utf-8") as source:
        lines = source.read().splitlines()
    sources, modules = {}, []
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names if not a.name.startswith("metajit")]
        names = [node.name] if hasattr(node, "name") else [t.id for t in getattr(node, "targets", [])]
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        for name in names:
            sources[name] = "\n".join(lines[start:node.end_lineno])
    return sources, modules


def _shim_definitions(sources, wanted):
    """Source texts of the ``wanted`` shims and the shims they use, in the module's order."""
    needed, pending = set(), list(wanted)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending.extend(n.id for n in ast.walk(ast.parse(sources[name]))
                           if isinstance(n, ast.Name) and n.id in sources)
    return [text for name, text in sources.items() if name in needed]
