"""CPU backend tests run only where the cpu backend is available, on the cpu device."""
import pytest

import metajit as jt

CPU_AVAILABLE = any(d.name == "cpu" and d.available for d in jt.devices())


@pytest.fixture(params=["cpu"] if CPU_AVAILABLE else [], autouse=True)
def device(request):
    """Override the package-wide device fixture: these tests are about the cpu backend."""
    previous = jt.get_device()
    jt.set_device(request.param)
    yield request.param
    jt.set_device(previous)
