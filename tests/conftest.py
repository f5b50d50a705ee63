"""Shared fixtures: every core test runs on each installed, available backend."""
import numpy as np
import pytest

import metajit as jt

TESTED_DEVICES = [info.name for info in jt.devices()
                  if info.available and info.name in ("reference", "cpu")]


@pytest.fixture(params=TESTED_DEVICES, autouse=True)
def device(request):
    """Run the test on one backend and restore the previous device afterwards."""
    previous = jt.get_device()
    jt.set_device(request.param)
    yield request.param
    jt.set_device(previous)


@pytest.fixture
def rng():
    """A seeded numpy generator so failures reproduce."""
    return np.random.default_rng(1234)
