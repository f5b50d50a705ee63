"""A mutant backend importable by name (``--plugin tests.conformance.mutant_plugin:PLUGIN``),
for runs in other processes: ``maximum`` computed as ``fmax`` (nan does not propagate)."""
import numpy as np

from .mutants import make_mutant

PLUGIN = make_mutant("mutant_fmax", binary_overrides={"maximum": np.fmax})
