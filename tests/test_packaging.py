"""A non-editable install (CI's demo run, a user's wheel) ships every file the package
reads at run time: the hand-written C++ drivers, headers and templates are package data."""
import fnmatch
import os
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READ_AT_RUN_TIME = ("*.cpp", "*.h", "*.tmpl")


def _setuptools_config():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]


def _source_dir(package, package_dirs):
    prefix = max((p for p in package_dirs if package == p or package.startswith(p + ".")), key=len)
    rest = package[len(prefix):].lstrip(".")
    return os.path.join(ROOT, package_dirs[prefix], *(rest.split(".") if rest else []))


def test_every_run_time_source_file_is_package_data():
    config = _setuptools_config()
    packages, package_dirs, data = config["packages"], config["package-dir"], config["package-data"]
    directories = {package: _source_dir(package, package_dirs) for package in packages}
    missing = []
    for package, directory in directories.items():
        nested = [d for p, d in directories.items() if p != package and d.startswith(directory + os.sep)]
        for current, subdirs, files in os.walk(directory):
            subdirs[:] = [s for s in subdirs if os.path.join(current, s) not in nested and s != "__pycache__"]
            for name in files:
                relative = os.path.relpath(os.path.join(current, name), directory)
                if any(fnmatch.fnmatch(name, pattern) for pattern in READ_AT_RUN_TIME) and not any(
                        fnmatch.fnmatch(relative, pattern) for pattern in data.get(package, ())):
                    missing.append(f"{package}: {relative}")
    assert not missing, f"add to [tool.setuptools.package-data] in pyproject.toml: {missing}"
