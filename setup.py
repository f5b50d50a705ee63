"""Builds the optional C accelerators: the graph walks (`metajit.passes.graphwalk`) and the cpu
backend's kernel-sequence launcher; everything else is configured in pyproject.toml. When
no C compiler or Python headers are present they are skipped and the Python versions run."""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("metajit.passes._graphwalk", ["core/passes/_graphwalk.c"], optional=True, extra_compile_args=["-O2"]),
    Extension("metajit.backends.cpu._launch", ["backends/cpu/_launch.c"], optional=True,
              extra_compile_args=["-O2"]),
])
