"""Shared fixtures: every core test runs on each installed, available backend."""
import os

import numpy as np
import pytest

import metajit as jt

# METAJIT_TEST_DEVICES (comma-separated) runs the per-device tests on other devices too
# (bench/gpu_check.sh: cuda)
_WANTED = os.environ.get("METAJIT_TEST_DEVICES", "reference,cpu").split(",")
TESTED_DEVICES = [info.name for info in jt.devices() if info.available and info.name in _WANTED]


def devices_fixture(names, autouse=True):
    """A ``device`` fixture running each test on every device in ``names`` (restoring the
    previous device afterwards)."""
    @pytest.fixture(params=list(names), autouse=autouse)
    def device(request):
        previous = jt.get_device()
        jt.set_device(request.param)
        yield request.param
        jt.set_device(previous)
    return device


device = devices_fixture(TESTED_DEVICES)  # every test, on each tested device


def backend_only(name):
    """An autouse ``device`` fixture for a backend's own test directory: its tests run once,
    on backend ``name``, and are skipped where it is not available."""
    available = any(info.name == name and info.available for info in jt.devices())
    return devices_fixture([name] if available else [])


@pytest.fixture
def rng():
    """A seeded numpy generator so failures reproduce."""
    return np.random.default_rng(1234)
