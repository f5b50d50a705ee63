"""Native launch batches kept per plan: a realisation that launches the same programs on the
same buffers as the last one of its plan (a forward run again in eager inference,
`metajit.compile`'s replays) runs the batch of native calls built then, instead of asking
each program for its calls again (about 8 µs of Python per oneDNN convolution, half a
millisecond of a mobilenet_v2 forward at batch 1).

A batch is kept per thread (its oneDNN stream and workspace are the thread's) and found by
the plan key; it is used only when the sequence's `signature` is the same — programs, every
buffer address, the parameters' bits, the thread count, the thread's workspace — and every
weight copy its calls were built on is still current for the buffers now in those places
(`KeptBatch.current`). The copies a batch reads are held while it is kept, so another
thread dropping one does not release it under a running batch.

A batch keeps its programs alive (its calls carry their oneDNN primitives' addresses) and
its calls packed once (`_launch.pack`: plain addresses, no buffers, nothing to read again).
"""
import atexit
import collections
import threading

from metajit.flags import flags
from metajit.toolkit.allocator import KeptCopies

KEPT_PER_THREAD = 64
VARIANTS = 4
_local = threading.local()
_exiting = False


@atexit.register
def _stop_releasing():
    global _exiting
    _exiting = True


class KeptBatch:
    """One sequence's ``segments``: native batches (``(packed, parameters, ends)``: the
    calls packed for the launcher (`_launch.pack`), the parameter bytes they point into,
    and where each launch's calls end) and the indices of the launches that run
    as calls (a program with no native path for them, such as a max pooling that mends
    NaNs in Python); the ``signature`` they were built for and the convolution chaining
    ``modes`` and ``clamped`` poolings they ran with. ``answers`` are the weight copies'
    answers the calls were built on (``(launch index, input slot, copies, question,
    answer)``, `recorded_answers`): the copies they read are held while the batch lives
    and checked at each use (``held``); the other questions are asked again (``asked``),
    except a `KeptCopies.pin` that found no copy where `KeptCopies.derives_in_scratch` on
    the same source follows it (that one answers False where a copy is current)."""

    __slots__ = ("signature", "segments", "modes", "clamped", "held", "asked", "calls_made")

    def __init__(self, signature, segments, answers, modes, clamped):
        self.signature, self.segments, self.modes, self.clamped = signature, segments, modes, clamped
        self.calls_made = tuple(segment for segment in segments if type(segment) is int)
        self.held, self.asked = [], []
        for k, (index, slot, copies, question, answer) in enumerate(answers):
            if question is KeptCopies.pin and answer is not None:
                copies.hold(answer)
                self.held.append((index, slot, copies, answer))
            elif question is not KeptCopies.pin or answers[k + 1:k + 2] != [
                    (index, slot, copies, KeptCopies.derives_in_scratch, True)]:
                self.asked.append((index, slot, copies, question, answer))

    def current(self, launches):
        """Whether the copies this batch reads are still current for the buffers of
        ``launches``, and the questions asked again answer as before (pinning what they
        find, as building the batch did). They are first only peeked at: a check that
        fails leaves no sighting noted (which would make the next build derive a copy)."""
        for index, slot, copies, buffer in self.held:
            if not copies.holds_current(launches[index][1][slot], buffer):
                return False
        asked = [(copies, question, launches[index][1][slot], answer)
                 for index, slot, copies, question, answer in self.asked]
        if any(copies.peek(question, source) is not answer for copies, question, source, answer in asked):
            return False
        for copies, question, source, answer in asked:
            with copies.guard:
                if question(copies, source) is not answer:  # (another thread's call came between)
                    return False
        return True

    def release(self):
        """Let go of the copies this batch holds."""
        held, self.held = self.held, []
        for _, _, copies, buffer in held:
            copies.release(buffer)

    def __del__(self):
        if not _exiting:
            self.release()


def signature_of(launcher, launches, workspace):
    """What a kept batch of ``launches`` must match (`launcher.signature` with the thread
    count and the address of this thread's ``workspace`` buffer); None without a launcher
    that packs batches (not built, or built before it could), or when the launches cannot
    be told apart by it (a parameter that is not a Python number)."""
    if launcher is None or not hasattr(launcher, "pack"):
        return None
    found = launcher.signature(launches)
    if found is None:
        return None
    return found, flags.num_threads, _scratch_address(workspace)


def workspace_unmoved(signature, workspace):
    """Whether this thread's ``workspace`` buffer is still where it was when ``signature``
    (`signature_of`) was taken: a launch that grew it moved the scratch later calls read."""
    return signature[2] == _scratch_address(workspace)


def _scratch_address(workspace):
    scratch = workspace.current()
    return None if scratch is None else scratch.address


def find(plan_key, signature, launches):
    """The batch kept for ``plan_key`` and ``signature`` when it is still current
    (`KeptBatch.current`) for ``launches``, else None; a stale one is dropped (its held
    copies with it). What the questions asked again pin, the caller unpins
    (`unpin_kept_copies`), also when None is returned."""
    batches = getattr(_local, "batches", None)
    variants = batches.get(plan_key) if batches is not None else None
    if variants is None:
        return None
    for position, (kept, confirmed) in enumerate(variants):
        if kept.signature == signature:
            if not confirmed:
                return None
            if kept.current(launches):
                batches.move_to_end(plan_key)
                return kept
            del variants[position]
            kept.release()
            return None
    return None


def offer(plan_key, kept):
    """Keep the `KeptBatch` ``kept`` for ``plan_key`` on this thread, in place of one kept
    for the same signature. A plan keeps `VARIANTS` signatures (a loop that holds its last
    output while the next is computed alternates between two output buffers), and a
    thread `KEPT_PER_THREAD` plans, the least recently used going first. A batch with
    launches run as calls is used only once a second build for the same signature made
    the same calls: a program may run as a call once to prepare a native run (a product
    recording its BLAS calls)."""
    batches = getattr(_local, "batches", None)
    if batches is None:
        batches = _local.batches = collections.OrderedDict()
    variants = batches.pop(plan_key, [])
    replaced = [entry for entry in variants if entry[0].signature == kept.signature]
    others = [entry for entry in variants if entry[0].signature != kept.signature]
    confirmed = not kept.calls_made or any(entry[0].calls_made == kept.calls_made for entry in replaced)
    batches[plan_key] = [(kept, confirmed)] + others[:VARIANTS - 1]
    dropped = replaced + others[VARIANTS - 1:]
    if len(batches) > KEPT_PER_THREAD:
        dropped += batches.popitem(last=False)[1]
    for entry in dropped:
        entry[0].release()


def forget_all():
    """Drop this thread's kept batches (their programs and held copies with them)."""
    batches, _local.batches = getattr(_local, "batches", None), None
    for variants in (batches or {}).values():
        for kept, _ in variants:
            kept.release()


def answers_by_place(recorded, index, inputs):
    """The answers ``recorded`` (`recorded_answers`' log) while launch ``index`` built its
    calls, with the slot of ``inputs`` holding each source; None when a source is not
    among them (such a batch cannot be checked again, and is not kept)."""
    placed = []
    for copies, question, source, answer in recorded:
        slot = next((k for k, buffer in enumerate(inputs) if buffer is source), None)
        if slot is None:
            return None
        placed.append((index, slot, copies, question, answer))
    return placed
