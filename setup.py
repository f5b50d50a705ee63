"""Builds the optional C accelerator of the graph walks (`metajit.graphwalk`); everything
else is configured in pyproject.toml. When no C compiler or Python headers are present the
extension is skipped and the Python versions run."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("metajit._graphwalk", ["core/_graphwalk.c"], optional=True,
                             extra_compile_args=["-O2"])])
