import gc

import numpy as np
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


def test_fit_graph_raises_metajits_threshold_to_a_graphs_size(thresholds):
    gc.set_threshold(700, 10, 10)
    garbage_collection.relax_thresholds({"METAJIT_GC_THRESHOLD": "1000"})
    per_node = garbage_collection.OBJECTS_PER_NODE
    assert garbage_collection.fit_graph(100)[0] == 1000  # small graphs keep it
    assert garbage_collection.fit_graph(5000) == (5000 * per_node, 10, 10)
    assert garbage_collection.fit_graph(10 ** 9)[0] == garbage_collection.MAXIMUM_THRESHOLD
    assert garbage_collection.fit_graph(5000)[0] == garbage_collection.MAXIMUM_THRESHOLD  # never lowered


def test_fit_graph_keeps_a_threshold_the_user_set(thresholds):
    gc.set_threshold(700, 10, 10)
    garbage_collection.relax_thresholds({"METAJIT_GC_THRESHOLD": "1000"})
    gc.set_threshold(1500, 10, 10)
    assert garbage_collection.fit_graph(10 ** 5)[0] == 1500
    gc.set_threshold(0)
    assert garbage_collection.fit_graph(10 ** 5)[0] == 0


def test_a_realised_training_graph_triggers_no_young_collection(thresholds, device):
    import metajit as jt
    if device == "reference":
        pytest.skip("the reference backend interprets its kernels with Python objects (10000 for this graph)")
    gc.set_threshold(700, 10, 10)
    garbage_collection.relax_thresholds({"METAJIT_GC_THRESHOLD": "2000"})
    layers = [jt.nn.Linear(4, 4) for _ in range(60)]

    def step():
        out = jt.array(np.ones((2, 4), np.float32))
        for layer in layers:
            out = jt.nn.relu(layer(out))
        return [g.sync() for g in jt.grad(out.sum(), [layer.weight for layer in layers])]
    step()  # the first realisations size the threshold to the graph and compile its plan
    step()
    collections = []
    gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
    try:
        step()
    finally:
        gc.callbacks.pop()
    assert collections == []
