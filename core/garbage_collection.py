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
"""
import gc
import os

DEFAULT_THRESHOLD = 50000


def relax_thresholds(environ=os.environ):
    """Raise the collector's generation-0 threshold to metajit's setting; returns the
    thresholds now in effect. A higher threshold the user chose is kept."""
    try:
        wanted = int(environ.get("METAJIT_GC_THRESHOLD", DEFAULT_THRESHOLD))
    except ValueError:
        wanted = DEFAULT_THRESHOLD
    first, *rest = gc.get_threshold()
    if wanted > first > 0:  # 0: the user turned automatic collection off; keep that
        gc.set_threshold(wanted, *rest)
    return gc.get_threshold()
