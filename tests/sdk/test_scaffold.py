"""``metajit-sdk new-backend``: the scaffolded package installs, passes the conformance smoke
tier unmodified, and uninstalls cleanly."""
import importlib.util
import os
import subprocess
import sys

import pytest

from metajit.sdk import scaffold


def run(command, tmp_path, **environment):
    env = {**os.environ, "METAJIT_CACHE_DIR": str(tmp_path / "cache"), **environment}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)


def builds_without_isolation():
    """Whether this environment can build the package itself (setuptools with bdist_wheel);
    otherwise pip fetches the build requirements from the package index."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def devices(tmp_path):
    result = run([sys.executable, "-c", "import metajit as jt; print([d.name for d in jt.devices()])"], tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def lines_of(root):
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name)) as handle:
                total += sum(1 for _ in handle)
    return total


def test_a_scaffolded_accelerator_plugin_installs_passes_smoke_and_uninstalls(tmp_path):
    name = f"sdktest{os.getpid()}"
    created = run([sys.executable, "-m", "metajit.sdk", "new-backend", name, "--dir", str(tmp_path)], tmp_path)
    assert created.returncode == 0, created.stderr
    package = tmp_path / f"metajit-{name}"
    assert f"created {package}" in created.stdout
    assert lines_of(package) <= 600
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    isolation = ["--no-build-isolation"] if builds_without_isolation() else []
    installed = run(pip + ["install", "--no-deps", *isolation, str(package)], tmp_path)
    assert installed.returncode == 0, installed.stderr
    try:
        assert name in devices(tmp_path)
        smoke = run([sys.executable, "-m", "metajit.conformance", "run", "--backend", name, "--tier", "smoke"], tmp_path)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert f"backend {name}, tier smoke" in smoke.stdout and " 0 failed" in smoke.stdout
        tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")], tmp_path)
        assert tests.returncode == 0, tests.stdout
    finally:
        removed = run(pip + ["uninstall", "-y", f"metajit-{name}"], tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert name not in devices(tmp_path)


def test_the_serial_template_passes_smoke_as_generated(tmp_path):
    package = scaffold.new_backend("sdkserial", str(tmp_path), template="serial")
    assert lines_of(package) <= 600
    smoke = run([sys.executable, "-m", "metajit.conformance", "run", "--backend", "sdkserial",
                 "--plugin", "metajit_sdkserial", "--tier", "smoke"], tmp_path, PYTHONPATH=package)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert " 0 failed" in smoke.stdout
    with open(os.path.join(package, "pyproject.toml")) as handle:
        assert 'sdkserial = "metajit_sdkserial"' in handle.read()
    with open(os.path.join(package, "metajit_sdkserial", "__init__.py")) as handle:
        backend = handle.read()
    assert "minimal" not in backend and "--backend sdkserial --tier smoke" in backend


@pytest.mark.parametrize("name", ["MyDevice", "9lives", "my-device", "cpu", "x" * 41])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(scaffold.ScaffoldError, match="must be a new lowercase identifier"):
        scaffold.new_backend(name, str(tmp_path))


def test_an_existing_destination_or_unknown_template_is_refused(tmp_path):
    scaffold.new_backend("twice", str(tmp_path))
    with pytest.raises(scaffold.ScaffoldError, match="already exists"):
        scaffold.new_backend("twice", str(tmp_path))
    with pytest.raises(scaffold.ScaffoldError, match="unknown template 'gpu'"):
        scaffold.new_backend("other", str(tmp_path), template="gpu")
    result = run([sys.executable, "-m", "metajit.sdk", "new-backend", "twice", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 2 and "already exists" in result.stderr
