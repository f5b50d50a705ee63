"""These tests compile for (and run on) a GPU without a metajit device: run them once."""
from tests.conftest import backend_only

device = backend_only("cpu")
