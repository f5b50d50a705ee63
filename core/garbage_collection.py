"""How often Python's cyclic garbage collector runs while metajit is used.

Building a graph allocates a few Python objects per op (nodes, index expressions), and a
model's forward keeps thousands of them alive until it is realised. Under CPython's
default thresholds ``(700, 10, 10)`` that triggers dozens of young collections per
forward and, every few forwards, a full collection over every object of the process
(torch's included when it is loaded): 35-40 ms per DenseNet-121 batch-1 forward on
average, a quarter of its time. Reference counting frees the graphs anyway (they hold
no cycles); the collector only has to find cycles, which it still does, just less often.

`relax_thresholds` (called on import) raises the first threshold to
``METAJIT_GC_THRESHOLD`` (default 50000) when the process still has a lower one, and
leaves the others alone; ``METAJIT_GC_THRESHOLD=0`` keeps the interpreter's setting.

A training step keeps its whole graph alive until it is realised: 50000 objects for a
DenseNet-121 step (forward and backward). Past the threshold, a young collection walks
all of them and finds nothing (30 ms). `fit_graph`, called by every realisation, raises
the first threshold further to `OBJECTS_PER_NODE` objects per node of the largest graph
realised so far (up to `MAXIMUM_THRESHOLD`), so that the next step's graph alone does not
trigger one; a threshold the user set is never changed.
"""
import gc
import os

DEFAULT_THRESHOLD = 50000
OBJECTS_PER_NODE = 4  # a node, its inputs tuple, its Var, index expressions: 2.5 measured
MAXIMUM_THRESHOLD = 2_000_000

_ours = None  # the first threshold metajit last set; any other value is the user's


def relax_thresholds(environ=os.environ):
    """Raise the collector's generation-0 threshold to metajit's setting; returns the
    thresholds now in effect. A higher threshold the user chose is kept."""
    try:
        wanted = int(environ.get("METAJIT_GC_THRESHOLD", DEFAULT_THRESHOLD))
    except ValueError:
        wanted = DEFAULT_THRESHOLD
    global _ours
    first, *rest = gc.get_threshold()
    if wanted > first > 0:  # 0: the user turned automatic collection off; keep that
        gc.set_threshold(wanted, *rest)
        _ours = wanted
    return gc.get_threshold()


def fit_graph(nodes):
    """Raise the collector's generation-0 threshold to fit a graph of ``nodes`` nodes
    (`OBJECTS_PER_NODE` objects each, at most `MAXIMUM_THRESHOLD`) when metajit set the
    threshold in effect and it is lower; returns the thresholds now in effect."""
    global _ours
    thresholds = gc.get_threshold()
    first, *rest = thresholds
    wanted = min(nodes * OBJECTS_PER_NODE, MAXIMUM_THRESHOLD)
    if first != _ours or wanted <= first:
        return thresholds
    gc.set_threshold(wanted, *rest)
    _ours = wanted
    return gc.get_threshold()
