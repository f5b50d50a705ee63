"""The conformance suite catches planted bugs: each mutant backend fails the standard tier
(restricted to the families its bug touches), and the unmutated control passes them."""
import pytest

from metajit import plugins
from metajit.conformance import runner

from .mutants import MUTANTS, make_mutant


@pytest.fixture(params=["reference"], autouse=True)
def device(request):
    """These tests pick their backends themselves."""
    yield request.param


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_standard_tier_catches_planted_bug(name):
    options, families = MUTANTS[name]
    backend = f"mutant_{name}"
    plugins.register_backend(make_mutant(backend, **options), backend)
    try:
        results, _ = runner.run(backend, tier="standard", seed=1, keyword=families)
    finally:
        plugins.unregister_backend(backend)
    assert len(results) >= 2
    failed = [r for r in results if r.status == "failed"]
    assert failed, f"mutant {name} passed all of {families}"
    assert all(r.snippet for r in failed)


def test_control_backend_passes_the_same_families():
    plugins.register_backend(make_mutant("mutant_control"), "mutant_control")
    try:
        families = ",".join(f for _, f in MUTANTS.values())
        results, _ = runner.run("mutant_control", tier="standard", seed=1, keyword=families,
                                max_examples=8)
    finally:
        plugins.unregister_backend("mutant_control")
    assert results and all(r.status == "passed" for r in results), [
        (r.name, r.message[:200]) for r in results if r.status != "passed"]
