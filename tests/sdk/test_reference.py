"""The hook reference is generated from the hookspec docstrings and the committed copy is current."""
import os
import re
import subprocess
import sys
import types

import pytest

from metajit import hookspec
from metajit.plugins import OPTIONAL_HOOKS, REQUIRED_HOOKS
from metajit.sdk import reference

SDK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sdk")


def test_the_committed_reference_is_current():
    assert reference.stale(os.path.join(SDK, "hooks.md")) is None


def test_every_hook_is_documented_and_in_the_reference():
    text = reference.hook_reference()
    specs = dict(reference.hook_specifications())
    assert {name[len("metajit_backend_"):] for name in specs} == set(REQUIRED_HOOKS + OPTIONAL_HOOKS)
    for name, function in specs.items():
        assert function.__doc__ and function.__doc__.strip()
        kind = "required" if name[len("metajit_backend_"):] in REQUIRED_HOOKS else "optional"
        assert re.search(rf"^### `{name}\(.*\)` \({kind}\)$", text, re.MULTILINE), name


def test_a_hook_without_a_docstring_is_an_error(monkeypatch):
    @hookspec.hookspec
    def metajit_backend_undocumented(kernel):
        pass
    monkeypatch.setattr(hookspec, "metajit_backend_undocumented", metajit_backend_undocumented, raising=False)
    with pytest.raises(reference.ReferenceError, match="metajit_backend_undocumented has no docstring"):
        reference.hook_reference()


def test_the_check_command_fails_on_a_stale_copy(tmp_path):
    stale = tmp_path / "hooks.md"
    stale.write_text(reference.hook_reference().replace("required", "mandatory", 1))
    command = [sys.executable, "-m", "metajit.sdk", "reference", "--check", str(stale)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "is stale: regenerate it with" in result.stderr
    current = tmp_path / "current.md"
    assert subprocess.run([sys.executable, "-m", "metajit.sdk", "reference", "--output", str(current)]).returncode == 0
    assert subprocess.run(command[:-1] + [str(current)]).returncode == 0


def test_the_public_api_exists_and_is_documented():
    import importlib
    from metajit.sdk import PUBLIC_API
    for module_name, names in PUBLIC_API.items():
        module = importlib.import_module(module_name)
        assert module.__doc__, module_name
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name} is part of the SDK's public API"
            value = getattr(module, name)
            if callable(value) and not isinstance(value, types.BuiltinFunctionType):
                assert value.__doc__, f"{module_name}.{name} needs a docstring"
