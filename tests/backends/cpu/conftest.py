"""CPU backend tests run only where the cpu backend is available, on the cpu device."""
from tests.conftest import backend_only

device = backend_only("cpu")
