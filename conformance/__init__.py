"""The backend conformance suite: hypothesis properties every metajit backend must pass.

Run it as ``conformance run --backend NAME`` (or ``python -m metajit.conformance``), or
from Python with `metajit.conformance.runner.run`.
"""
