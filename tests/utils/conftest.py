"""The converter's tests run converted models on the cpu backend only (the reference
interpreter would take minutes per model); the conversions themselves need no device."""
from tests.conftest import backend_only

device = backend_only("cpu")
