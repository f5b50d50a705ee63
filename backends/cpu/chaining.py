"""Convolution chains: a oneDNN convolution or pooling whose output only oneDNN
convolutions and poolings read (the next layer, the branches of an Inception or Fire
module, a residual added by the next block's last convolution) hands it over in the
blocked layout they all compute in, so the reorder to NCHW
after the first and the ones back before the others are skipped (onnxruntime keeps its
NCHWc layout between convolutions for the same reason; at batch 1 these reorders are
about a third of a depthwise network's convolution time).

Only intermediates placed in the executor's arena qualify: no one reads them after the
realisation, so their readers are all among the realisation's launches.
"""
import threading

from .onednn import ConcatProgram, PoolingProgram, ReorderedPrimitive

UNCHAINED = ((), ())
PLAN_CACHE_SIZE = 256
_modes_by_plan = {}  # plan key -> modes (`chained_launches`)
_clamped_by_plan = {}  # plan key -> (max poolings, edges) (`clamped_sources`)
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
    for oneDNN's layout, that its readers take at one of their chained positions."""
    for index, (_, readers) in modes.items():
        if readers:
            program, _, outputs, _ = launches[index]
            output = outputs[0]
            if not output.is_view or output.capacity < program.output_layout_bytes \
                    or any(all(launches[reader][1][p] is not output for p in modes[reader][0]) for reader in readers):
                return False
    return True


def chained_launches(launches):
    """``{launch index: (chained input positions, readers)}`` for the oneDNN convolutions
    and poolings among ``launches`` (one whole realisation's, as
    `metajit_backend_launch_sequence` receives them) that take inputs in oneDNN's layout
    (their source; a residual, in the output's layout), or hand their output in it to the
    launches ``readers`` (else empty). A value is chained when every reader is such a
    program reading it once, at a position that takes this layout."""
    read_by = {}
    for index, (_, inputs, _, _) in enumerate(launches):
        for position, buffer in enumerate(inputs):
            read_by.setdefault(id(buffer), []).append((index, position))
    modes = {}
    for index, (program, _, outputs, _) in enumerate(launches):
        if not isinstance(program, ReorderedPrimitive) or not outputs[0].is_view:
            continue
        found = read_by.get(id(outputs[0]), ())
        readers = tuple(reader for reader, _ in found)
        if found and all(reader > index and isinstance(launches[reader][0], ReorderedPrimitive)
                         and program.chains_into(launches[reader][0], position, outputs[0].capacity)
                         for reader, position in found) and len(set(readers)) == len(readers):
            modes[index] = (modes.get(index, UNCHAINED)[0], readers)
            for reader, position in found:
                modes[reader] = (modes.get(reader, UNCHAINED)[0] + (position,), modes.get(reader, UNCHAINED)[1])
    return modes


def clamped_for(launches, plan_key):
    """`clamped_sources` of ``launches``, found once per ``plan_key`` (the producers are
    checked again at each call)."""
    found = _clamped_by_plan.get(plan_key)
    if found is None or any(launches[reader][1][position] is not launches[writer][2][0]
                            for reader, position, writer in found[1]):
        found = clamped_sources(launches)
        with _caching:
            _clamped_by_plan[plan_key] = found
            if len(_clamped_by_plan) > PLAN_CACHE_SIZE:
                del _clamped_by_plan[next(iter(_clamped_by_plan))]
    return found[0]


def clamped_sources(launches):
    """``(indices, edges)``: the max poolings among ``launches`` whose source holds neither
    NaN nor -inf because a launch before them wrote it so — a oneDNN convolution whose
    activation post-op is a maximum with 0 (ReLU, ReLU6: NaN and -inf come out 0), or a
    pooling or concat of such values — so that they need not look for those values
    (`onednn.PoolingProgram`); ``edges`` are the ``(reader, input position, writer)``
    links that proof rests on."""
    writer_of, clamped, edges, poolings = {}, set(), [], set()
    for index, (program, inputs, outputs, _) in enumerate(launches):
        if getattr(program, "clamps_output", False):
            clamped.add(index)
        elif isinstance(program, (PoolingProgram, ConcatProgram)) and inputs:
            read = range(1) if isinstance(program, PoolingProgram) else range(len(inputs))
            writers = [writer_of.get(id(inputs[position])) for position in read]
            if all(writer in clamped for writer in writers):
                clamped.add(index)
                edges += [(index, position, writer) for position, writer in zip(read, writers)]
                if isinstance(program, PoolingProgram) and program.call.name == "max_pool2d":
                    poolings.add(index)
        for buffer in outputs:
            writer_of[id(buffer)] = index
    return poolings, edges


def unkept_outputs(completed, modes):
    """The launches among the first ``completed`` whose outputs are in oneDNN's layout
    (chained), for an interruption to report as ``metajit_unkept``: the executor would
    otherwise keep them as finished NCHW values (for a retry, or a Var the user holds)."""
    return tuple(index for index, (_, readers) in sorted(modes.items()) if readers and index < completed)
