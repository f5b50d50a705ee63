"""``python -m metajit.sdk new-backend NAME --dir PATH``: a standalone plugin package.

Two templates (``--template``):

* ``accel`` (default): metajit's BANG-style accelerator template (`metajit.backends.template_accel`)
  with the package's own renderer, toolchain and driver subclasses, each replaceable alone;
* ``serial``: the ~150-line serial C backend made only of the toolkit
  (`metajit.sdk.templates.serial_backend`), for a device whose code is plain C.

Either way the package holds ``pyproject.toml`` (entry point in ``metajit.backends``),
``README.md``, the backend package ``metajit_<NAME>/`` and ``tests/test_conformance.py``,
and it passes the conformance smoke tier as generated. Example::

    from metajit.sdk.scaffold import new_backend
    path = new_backend("mydevice", "/tmp/plugins")   # /tmp/plugins/metajit-mydevice
"""
import importlib.metadata
import os
import re
import string

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
STEPS = {
    "accel": """1. `renderer.py`: your scratchpad size, intrinsics and the dtypes they take.
2. `toolchain.py`: your compiler instead of the emulating g++ (`compile_unit`, `_stub`, `driver_path`).
3. `runtime.py`: your driver's malloc/free/memcpy and launch; raise `MetajitDeviceError` on a fault.
4. Claims of library kernels (matmul, convolutions) in `metajit.backends.template_accel.library`'s
   shape, when your device has a library.""",
    "serial": """1. `SerialRenderer.render`: your loop structure (parallel loops, vector types) around the
   toolkit's expressions; keep `body`, `fill_identity` and `accumulate_statement` for the semantics.
2. `FLAGS` / `_toolchain`: your compiler and its flags.
3. The memory hooks (`_malloc`, copies) when your device memory is not host memory.""",
}


class ScaffoldError(ValueError):
    """A bad backend name or an existing destination."""


def _fill(template_name, values):
    with open(os.path.join(TEMPLATES, template_name)) as handle:
        return string.Template(handle.read()).substitute(values)


TEMPLATE_NOTE = re.compile(r"This module is the ``serial`` template.*?serial_backend``\)\.", re.DOTALL)


def _serial_backend(name):
    with open(os.path.join(TEMPLATES, "serial_backend.py")) as handle:
        text = handle.read()
    note = (f"The ``{name}`` backend, scaffolded from metajit's ``serial`` template; test it with\n"
            f"``python -m metajit.conformance run --backend {name} --tier smoke``.")
    return TEMPLATE_NOTE.sub(note, text, count=1).replace('NAME = "minimal"', f'NAME = "{name}"', 1)


def new_backend(name, directory, template="accel"):
    """Create the plugin package for backend ``name`` under ``directory`` (as
    ``metajit-<name>/``) from ``template`` (``accel`` or ``serial``); returns its path.
    Raises `ScaffoldError` for a name that is not a lowercase identifier, an unknown
    template, or a destination that already exists."""
    if not NAME_PATTERN.fullmatch(name) or name in ("cpu", "cuda", "reference", "template_accel"):
        raise ScaffoldError(f"backend name {name!r} must be a new lowercase identifier (letters, digits, "
                            "underscores; starting with a letter; at most 40 characters)")
    if template not in STEPS:
        raise ScaffoldError(f"unknown template {template!r}; choose one of {', '.join(STEPS)}")
    root = os.path.join(directory, f"metajit-{name}")
    if os.path.exists(root):
        raise ScaffoldError(f"{root} already exists; choose another --dir or remove it")
    package = f"metajit_{name}"
    values = {"name": name, "package": package, "template": template, "steps": STEPS[template],
              "entry": f"{package}:plugin" if template == "accel" else package,
              "metajit_version": importlib.metadata.version("metajit")}
    files = {"pyproject.toml": _fill("pyproject.toml.tmpl", values), "README.md": _fill("README.md.tmpl", values),
             os.path.join("tests", "test_conformance.py"): _fill("test_conformance.py.tmpl", values)}
    if template == "serial":
        files[os.path.join(package, "__init__.py")] = _serial_backend(name)
    else:
        for part in ("__init__", "renderer", "toolchain", "runtime"):
            files[os.path.join(package, part + ".py")] = _fill(os.path.join("accel", part + ".py.tmpl"), values)
    for relative, text in files.items():
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    return root
