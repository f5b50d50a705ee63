"""template_accel tests run where it is available, on the template_accel device."""
import pytest

import metajit as jt

AVAILABLE = any(d.name == "template_accel" and d.available for d in jt.devices())


@pytest.fixture(params=["template_accel"] if AVAILABLE else [], autouse=True)
def device(request):
    """Override the package-wide device fixture: these tests are about template_accel."""
    previous = jt.get_device()
    jt.set_device(request.param)
    yield request.param
    jt.set_device(previous)
