import gc

import pytest

from metajit import garbage_collection


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_import_raised_the_first_threshold_only(thresholds):
    gc.set_threshold(700, 7, 9)
    assert garbage_collection.relax_thresholds({}) == (garbage_collection.DEFAULT_THRESHOLD, 7, 9)


def test_a_higher_threshold_or_a_disabled_collector_is_kept(thresholds):
    gc.set_threshold(10 ** 6, 10, 10)
    assert garbage_collection.relax_thresholds({})[0] == 10 ** 6
    gc.set_threshold(0)
    assert garbage_collection.relax_thresholds({})[0] == 0


def test_environment_chooses_the_threshold_or_keeps_pythons(thresholds):
    gc.set_threshold(700, 10, 10)
    assert garbage_collection.relax_thresholds({"METAJIT_GC_THRESHOLD": "0"}) == (700, 10, 10)
    assert garbage_collection.relax_thresholds({"METAJIT_GC_THRESHOLD": "2000"}) == (2000, 10, 10)


def test_cycles_are_still_collected(thresholds):
    class Cycle:
        pass
    first, second = Cycle(), Cycle()
    first.other, second.other = second, first
    del first, second
    assert gc.collect() >= 2


def test_sync_all_skips_vars_only_a_reference_cycle_holds(thresholds):
    import metajit as jt
    x = jt.array([1.0])
    failing = jt.code(x.shape, x.dtype, [x], cpu_src='throw std::runtime_error("computed garbage");',
                      cuda_src='@out(0) = 0;')
    cycle = [failing]
    cycle.append(cycle)
    del failing, cycle
    jt.sync_all()
