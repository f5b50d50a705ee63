"""template_accel tests run where it is available, on the template_accel device."""
from tests.conftest import backend_only

device = backend_only("template_accel")
