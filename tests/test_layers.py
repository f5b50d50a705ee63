"""Imports point down the layers (docs/architecture.md): foundation (errors, flags, debug, garbage_collection)
→ IR (``metajit.ir``) → backend interface (hookspec, plugins) and toolkit → passes
(``metajit.passes``) → front end (everything else). Backends sit beside the passes and
never see the front end or a pass. Read from the source with ``ast``, so a lazy import
inside a function counts too."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIRECTORIES = {"metajit": "core", "metajit.backends": "backends"}

FOUNDATION = {"metajit.errors", "metajit.flags", "metajit.debug", "metajit.garbage_collection"}
IR = {"metajit.ir"}
BACKEND_INTERFACE = {"metajit.hookspec", "metajit.plugins"}
TOOLKIT = {"metajit.toolkit"}
PASSES = {"metajit.passes"}
# layer -> (modules in it, modules and packages it may import)
LAYERS = {
    "foundation": (FOUNDATION, FOUNDATION),
    "ir": (IR, FOUNDATION | IR),
    "backend interface": (BACKEND_INTERFACE, FOUNDATION | IR | BACKEND_INTERFACE),
    "toolkit": (TOOLKIT, FOUNDATION | IR | TOOLKIT),
    "passes": (PASSES, FOUNDATION | IR | BACKEND_INTERFACE | TOOLKIT | PASSES),
    "backends": ({"metajit.backends"}, FOUNDATION | IR | BACKEND_INTERFACE | TOOLKIT | {"metajit.backends"}),
}


def module_files():
    for package, directory in PACKAGE_DIRECTORIES.items():
        for folder, _, files in os.walk(os.path.join(ROOT, directory)):
            for name in files:
                if name.endswith(".py"):
                    relative = os.path.relpath(os.path.join(folder, name), os.path.join(ROOT, directory))
                    parts = relative[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    yield ".".join([package] + parts), os.path.join(folder, name)


def imported_modules(module, path):
    """Absolute names of the metajit modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("metajit")}


def layer_of(module):
    for layer, (members, _) in LAYERS.items():
        if any(module == m or module.startswith(m + ".") for m in members):
            return layer
    return None


def upward_imports(module, path):
    """The metajit modules ``path`` imports that its layer may not import."""
    _, permitted = LAYERS[layer_of(module)]
    return sorted(name for name in imported_modules(module, path)
                  if name != "metajit" and not any(name == p or name.startswith(p + ".") for p in permitted))


CASES = [(module, path) for module, path in module_files() if layer_of(module)]


@pytest.mark.parametrize("module,path", CASES, ids=[m for m, _ in CASES])
def test_module_imports_only_lower_layers(module, path):
    upward = upward_imports(module, path)
    assert not upward, f"{module} ({layer_of(module)}) imports {upward}: imports must point down the layers"


def test_an_upward_import_is_caught(tmp_path):
    source = tmp_path / "renderer.py"
    source.write_text("from metajit.ir import dtypes\n\ndef f():\n    from metajit.var import Var\n")
    assert upward_imports("metajit.backends.fake.renderer", str(source)) == ["metajit.var", "metajit.var.Var"]
    source.write_text("from metajit.toolkit import codegen\nfrom ..passes import fusion\n")
    assert upward_imports("metajit.toolkit.fake", str(source)) == ["metajit.passes", "metajit.passes.fusion"]
    source.write_text("from ..var import Var\n")
    assert upward_imports("metajit.passes.fake", str(source)) == ["metajit.var", "metajit.var.Var"]


def test_the_layers_cover_the_backend_toolkit_and_every_backend():
    layers = {layer_of(module) for module, _ in CASES}
    assert layers == set(LAYERS)
    assert {"metajit.backends.cpu.renderer", "metajit.toolkit.codegen", "metajit.ir.kernel",
            "metajit.passes.fusion", "metajit.passes.autodiff"} <= {m for m, _ in CASES}


def test_the_front_end_is_everything_else():
    front_end = {module for module, _ in module_files() if layer_of(module) is None}
    assert {"metajit.var", "metajit.gradients", "metajit.nn.conv", "metajit.optim"} <= front_end
    assert not any(m.startswith(("metajit.ir", "metajit.passes", "metajit.toolkit")) for m in front_end)
