"""Convolution chains: a oneDNN convolution whose output only the next oneDNN convolution
reads hands it over in the blocked layout both compute in, so the reorder to NCHW after
the first and the one back before the second are skipped (onnxruntime keeps its NCHWc
layout between convolutions for the same reason; at batch 1 these reorders are about a
third of a depthwise network's convolution time).

Only intermediates placed in the executor's arena qualify: no one reads them after the
realisation, and the one reader is found among the realisation's launches.
"""
import threading

from .onednn import ConvolutionProgram

UNCHAINED = (False, None)
PLAN_CACHE_SIZE = 256
_modes_by_plan = {}  # plan key -> modes (`chained_launches`)
_caching = threading.Lock()


def modes_for(launches, plan_key):
    """`chained_launches` of ``launches``, found once per ``plan_key``: launches with one
    key run one plan, whose values have the same readers; the buffers are checked again."""
    modes = _modes_by_plan.get(plan_key)
    if modes is None or not _still_chained(launches, modes):
        modes = chained_launches(launches)
        with _caching:
            _modes_by_plan[plan_key] = modes
            if len(_modes_by_plan) > PLAN_CACHE_SIZE:
                del _modes_by_plan[next(iter(_modes_by_plan))]
    return modes


def _still_chained(launches, modes):
    """Whether each chained output of ``launches`` is still an arena part, large enough
    for oneDNN's layout, that its reader takes as its source."""
    for index, (_, reader) in modes.items():
        if reader is not None:
            program, _, outputs, _ = launches[index]
            output = outputs[0]
            if launches[reader][1][0] is not output or not output.is_view \
                    or output.capacity < program.output_layout_bytes:
                return False
    return True


def chained_launches(launches):
    """``{launch index: (source chained, reader)}`` for the convolutions among ``launches``
    (one whole realisation's, as `metajit_backend_launch_sequence` receives them) that take
    their source in oneDNN's layout, or hand their output in it to the launch ``reader``
    (else None)."""
    readers = {}
    for index, (_, inputs, _, _) in enumerate(launches):
        for position, buffer in enumerate(inputs):
            readers.setdefault(id(buffer), []).append((index, position))
    modes = {}
    for index, (program, _, outputs, _) in enumerate(launches):
        if type(program) is not ConvolutionProgram or not outputs[0].is_view:
            continue
        found = readers.get(id(outputs[0]), ())
        if len(found) != 1 or found[0][1] != 0:  # one reader, taking it as its source
            continue
        reader_index = found[0][0]
        reader = launches[reader_index][0]
        if reader_index > index and type(reader) is ConvolutionProgram \
                and program.chains_into(reader, outputs[0].capacity):
            modes[index] = (modes.get(index, UNCHAINED)[0], reader_index)
            modes[reader_index] = (True, modes.get(reader_index, UNCHAINED)[1])
    return modes


def completed_whole(completed, modes):
    """The launches to report finished after an interruption at ``completed``: a
    convolution whose output is in oneDNN's layout counts as unfinished until its reader
    has run (the executor would otherwise keep that output as if it were NCHW)."""
    for index, (_, reader) in sorted(modes.items()):
        if reader is not None and index < completed <= reader:
            return index
    return completed
