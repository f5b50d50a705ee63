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
plain addresses, no buffers.
"""
import atexit
import collections
import threading

from metajit.flags import flags
from metajit.toolkit.allocator import KeptCopies

KEPT_PER_THREAD = 64
_local = threading.local()
_exiting = False


@atexit.register
def _stop_releasing():
    global _exiting
    _exiting = True


class KeptBatch:
    """One sequence's native calls (``calls``, a list for the launcher, and ``ends``: where
    each launch's calls end), the ``signature`` they were built for and the convolution
    chaining ``modes`` they ran in. ``answers`` are the weight copies' answers the calls
    were built on (``(launch index, input slot, copies, question, answer)``, `recorded_answers`):
    the copies they read are held while the batch lives and checked at each use (``held``);
    the other questions are asked again (``asked``), except a `KeptCopies.pin` that found
    no copy where `KeptCopies.derives_in_scratch` on the same source follows it (that one
    answers False where a copy is current)."""

    __slots__ = ("signature", "calls", "ends", "modes", "held", "asked")

    def __init__(self, signature, calls, ends, answers, modes):
        self.signature, self.calls, self.ends, self.modes = signature, calls, ends, modes
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
        find, as building the batch did)."""
        for index, slot, copies, buffer in self.held:
            if not copies.holds_current(launches[index][1][slot], buffer):
                return False
        for index, slot, copies, question, answer in self.asked:
            with copies.guard:
                if question(copies, launches[index][1][slot]) is not answer:
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
    count and the address of this thread's ``workspace`` buffer); None when the launches
    cannot be told apart by it (a parameter that is not a Python number)."""
    found = launcher.signature(launches)
    if found is None:
        return None
    scratch = workspace.current()
    return found, flags.num_threads, None if scratch is None else scratch.address


def find(plan_key, signature, launches):
    """The batch kept for ``plan_key`` when it was built for ``signature`` and is still
    current (`KeptBatch.current`) for ``launches``, else None. What the questions asked
    again pin, the caller unpins (`unpin_kept_copies`), also when None is returned."""
    batches = getattr(_local, "batches", None)
    kept = batches.get(plan_key) if batches is not None else None
    if kept is None or kept.signature != signature or not kept.current(launches):
        return None
    batches.move_to_end(plan_key)
    return kept


def keep(plan_key, kept):
    """Keep the `KeptBatch` ``kept`` for ``plan_key`` on this thread, in place of the one
    kept before (the least recently used goes beyond `KEPT_PER_THREAD`)."""
    batches = getattr(_local, "batches", None)
    if batches is None:
        batches = _local.batches = collections.OrderedDict()
    replaced = batches.pop(plan_key, None)
    if replaced is not None:
        replaced.release()
    batches[plan_key] = kept
    if len(batches) > KEPT_PER_THREAD:
        batches.popitem(last=False)[1].release()


def forget_all():
    """Drop this thread's kept batches (their programs and held copies with them)."""
    batches, _local.batches = getattr(_local, "batches", None), None
    for kept in (batches or {}).values():
        kept.release()


def as_addresses(call):
    """A native call ``(function, inputs, outputs, parameters)`` with plain addresses in
    place of buffers, to be kept without keeping the buffers."""
    function, inputs, outputs, parameters = call
    return (function, tuple([b if type(b) is int else b.address for b in inputs]),
            tuple([b if type(b) is int else b.address for b in outputs]), parameters)


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
