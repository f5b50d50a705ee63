"""Whole-plan replay with CUDA Graphs: a realisation whose launch sequence repeats (same
plan, same buffers, same parameter values, as in a training or inference loop once the
caching allocator has settled) is recorded once into a CUDA graph and from then on queued
with one ``cuGraphLaunch`` instead of one launch (and one Python call) per kernel.

A sequence is recorded the second time it is seen (the first run chose every library
algorithm and allocated every workspace, so recording never searches or allocates).
Sequences holding a program that is not ``graph_safe`` (one that reads values on the
host, e.g. a ``jt.code`` operator whose output size varies) always run launch by launch.
Each plan keeps at most `GRAPHS_PER_PLAN` recorded graphs (least recently used dropped).
A plan recorded `FUTILE_RECORDINGS` times in a row without one replay (its buffers or
parameters never repeat) stops being recorded: recording costs more than launching.
``METAJIT_CUDA_GRAPHS=0`` turns replay off.
"""
import collections
import os

from metajit.toolkit.launching import run_each

GRAPHS_PER_PLAN = 4
MAX_SIGHTINGS = 4096  # remembered sequence signatures waiting for their second sighting
FUTILE_RECORDINGS = 3


def signature(launches):
    """What a recorded graph depends on: every buffer address and parameter value."""
    return tuple((id(program), tuple(b.address for b in inputs), tuple(b.address for b in outputs), tuple(parameters))
                 for program, inputs, outputs, parameters in launches)


class GraphReplay:
    """Records and replays launch sequences on ``device`` (see the module docstring); a
    graph is only replayed while ``context()`` returns what it did at recording.
    ``device.record(queue_work)`` returns a graph of what ``queue_work()`` queues,
    ``launch_graph(graph, name)`` queues it, ``destroy_graph(graph)`` releases it."""

    def __init__(self, device, context=lambda: None, enabled=None):
        self.device = device
        self.context = context  # host state the recorded work depends on (e.g. the TF32 switch)
        self.enabled = os.environ.get("METAJIT_CUDA_GRAPHS", "1") != "0" if enabled is None else enabled
        self.graphs = {}  # plan key -> OrderedDict(signature -> graph)
        self.sightings = set()
        self.unreplayed = collections.Counter()  # plan key -> recordings since its last replay
        self.recorded = 0
        self.replayed = 0

    def run(self, launches, plan_key):
        """Run ``launches`` (``(program, inputs, outputs, parameters)``), replaying or
        recording a graph when the sequence repeats."""
        if not self.enabled or len(launches) < 2 or not all(getattr(p, "graph_safe", False) for p, *_ in launches):
            run_each(launches)
            return
        key = (self.context(), signature(launches))
        per_plan = self.graphs.setdefault(plan_key, collections.OrderedDict())
        graph = per_plan.get(key)
        if graph is not None:
            per_plan.move_to_end(key)
            self.device.launch_graph(graph, f"the CUDA graph of a {len(launches)}-kernel plan")
            self.replayed += 1
            self.unreplayed[plan_key] = 0
            return
        sighting = (plan_key, key)
        if self.unreplayed[plan_key] >= FUTILE_RECORDINGS:  # its graphs may still replay (and re-arm it)
            run_each(launches)
            return
        if sighting not in self.sightings:
            if len(self.sightings) >= MAX_SIGHTINGS:
                self.sightings.clear()
            self.sightings.add(sighting)
            run_each(launches)
            return
        self.sightings.discard(sighting)
        graph = self._record(launches)
        per_plan[key] = graph
        if len(per_plan) > GRAPHS_PER_PLAN:
            _, old = per_plan.popitem(last=False)
            self.device.destroy_graph(old)
        self.device.launch_graph(graph, f"the CUDA graph of a {len(launches)}-kernel plan")
        self.recorded += 1
        self.unreplayed[plan_key] += 1

    def _record(self, launches):
        try:
            return self.device.record(lambda: run_each(launches))
        except BaseException as error:
            error.metajit_completed = 0  # recorded, not run
            raise
