"""Native launch batches kept per plan (`kept_batches`): a forward run again on the same
buffers runs the batch built by its last run without asking the programs again, reads
weights written since then (never their stale kept copies), and tells apart sequences
that differ only in a parameter's bits."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends import cpu
from metajit.backends.cpu import kept_batches, onednn
from metajit.toolkit.allocator import KeptCopies

pytestmark = [pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed"),
              pytest.mark.skipif(cpu.native_launcher is None, reason="the C launcher is not built")]
F = torch.nn.functional


def weights(rng):
    """A 1x1 stem, a depthwise 3x3 and a 3x3 convolution, with biases."""
    def pair(out_channels, in_channels, kernel):
        scale = 1 / np.sqrt(in_channels * kernel * kernel)
        return [(rng.standard_normal((out_channels, in_channels, kernel, kernel)) * scale).astype(np.float32),
                rng.standard_normal(out_channels).astype(np.float32)]
    return {"stem": pair(16, 3, 1), "depthwise": pair(16, 1, 3), "mix": pair(8, 16, 3)}


def forward(x, w, conv, relu, relu6):
    h = relu(conv(x, *w["stem"]))
    h = relu6(conv(h, *w["depthwise"], padding=1, groups=16))
    return conv(h, *w["mix"], padding=1) + 1.0


def ours(x, mine):
    with jt.no_grad():
        return forward(jt.array(x), mine, nn.conv2d, nn.relu, nn.relu6).numpy()


def theirs(x, w):
    tensors = {name: [torch.from_numpy(a) for a in pair] for name, pair in w.items()}
    return forward(torch.from_numpy(x), tensors, F.conv2d, F.relu, F.relu6).numpy()


@pytest.fixture
def asked(monkeypatch):
    """``{"programs": calls of a convolution's native_calls, "kept": kept batches run}``,
    this thread's kept batches forgotten first."""
    counts = {"programs": 0, "kept": 0}
    kept_batches.forget_all()  # (batches other tests kept on this thread)
    native_calls, find = onednn.ReorderedPrimitive.native_calls, kept_batches.find

    def counted_native_calls(self, *arguments):
        counts["programs"] += 1
        return native_calls(self, *arguments)

    def counted_find(*arguments):
        kept = find(*arguments)
        counts["kept"] += kept is not None
        return kept
    monkeypatch.setattr(onednn.ReorderedPrimitive, "native_calls", counted_native_calls)
    monkeypatch.setattr(kept_batches, "find", counted_find)
    return counts


def test_a_forward_run_again_runs_its_kept_batch_and_matches_torch(rng, asked):
    w = weights(rng)
    mine = {name: [jt.array(a) for a in pair] for name, pair in w.items()}
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    for _ in range(4):  # weights uploaded, seen settled, copied, then current: the batch is kept
        ours(x, mine)
    asked.update(programs=0, kept=0)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
        np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-5)
    assert asked == {"programs": 0, "kept": 3}


def test_weights_written_since_the_batch_was_kept_are_read_not_their_stale_copies(rng, asked):
    w = weights(rng)
    mine = {name: [jt.array(a) for a in pair] for name, pair in w.items()}
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    for _ in range(4):
        ours(x, mine)
    same_buffers = 0
    for step in range(3):
        addresses = [mine[name][0]._node.buffer.raw.address for name in w]
        for name in w:
            w[name][0] = w[name][0] * np.float32(0.5) + np.float32(0.01 * (step + 1))
            mine[name][0].assign(w[name][0])
        jt.sync_all()
        moved = [mine[name][0]._node.buffer.raw.address for name in w] != addresses
        asked.update(programs=0, kept=0)
        np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-5)
        # the same buffers with new contents: the batch kept for them is not run
        assert asked["kept"] == 0 or moved, asked
        same_buffers += not moved
        for _ in range(4):
            np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-5)
        assert asked["kept"] >= 1  # kept again once the new copies are current
    assert same_buffers  # (the caching allocator hands the freed buffer back to assign)


def test_a_loop_holding_its_last_output_alternates_between_two_kept_batches(rng, asked):
    """``y = model(x)`` in a loop holds the last output while the next is computed, so
    the outputs alternate between two buffers: both sequences are kept."""
    w = weights(rng)
    mine = {name: [jt.array(a) for a in pair] for name, pair in w.items()}
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    held = None
    with jt.no_grad():
        for step in range(10):
            if step == 6:
                asked.update(programs=0, kept=0)
            held = forward(jt.array(x), mine, nn.conv2d, nn.relu, nn.relu6)
            held.sync()
    assert asked == {"programs": 0, "kept": 4}
    np.testing.assert_allclose(held.numpy(), theirs(x, w), rtol=1e-4, atol=1e-5)


def test_a_max_pooling_mending_nans_in_python_runs_as_a_call_inside_its_kept_batch(rng, asked):
    """A maximum over values that may hold NaN (no ReLU before it) mends them in Python
    after oneDNN's pooling: the kept batch runs it as a call between its native parts."""
    stem = weights(rng)["stem"]
    mine, tensors = [jt.array(a) for a in stem], [torch.from_numpy(a) for a in stem]

    def pooled(x, conv, max_pool):
        return max_pool(conv(x, *tensors if conv is F.conv2d else mine) * 2.0, 3, 2, 1) + 1.0
    for step in range(8):
        x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
        if step >= 6:
            x[0, 1, 4, 4] = np.nan
        if step == 5:
            asked.update(programs=0, kept=0)
        with jt.no_grad():
            result = pooled(jt.array(x), nn.conv2d, nn.max_pool2d).numpy()
        expected = pooled(torch.from_numpy(x), F.conv2d, F.max_pool2d).numpy()
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
    assert np.isnan(result).any() and asked == {"programs": 0, "kept": 3}
    pooling = [batch for variants in kept_batches._local.batches.values() for batch, _ in variants
               if any(type(p).__name__ == "PoolingProgram" for p in batch.signature[0][0])]
    assert pooling and all(batch.calls_made for batch in pooling)


def test_a_weight_new_at_every_step_before_a_constant_one_is_never_copied(rng, asked, monkeypatch):
    """A trained weight read before a frozen one (a generator trained through a fixed
    network): checking a kept batch must not note a sighting of the trained weight
    when a later question fails, or the rebuild would derive a kept copy of weights that
    change at every step. Once both settle, the kept batch runs."""
    made = []
    lookup = KeptCopies.lookup

    def counted_lookup(self, source):
        found = lookup(self, source)
        made.append(found is not None and not found[1])  # a copy derived now
        return found
    monkeypatch.setattr(KeptCopies, "lookup", counted_lookup)
    with jt.no_grad():  # a workspace large enough already: the first step's batch is kept
        big = rng.standard_normal((4, 64, 32, 32)).astype(np.float32)
        nn.conv2d(jt.array(big), jt.array(big[:, :, :3, :3].copy()), padding=1).numpy()
    trained = rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1
    frozen = rng.standard_normal((8, 16, 3, 3)).astype(np.float32) * 0.1
    mine_trained, mine_frozen = jt.array(trained), jt.array(frozen)
    x = rng.standard_normal((1, 8, 8, 8)).astype(np.float32)
    for step in range(8):
        trained = trained + np.float32(0.01)
        mine_trained.assign(trained)
        jt.sync_all()
        if step == 5:
            asked.update(programs=0, kept=0)
        with jt.no_grad():
            result = nn.conv2d(nn.relu(nn.conv2d(jt.array(x), mine_trained, padding=1)), mine_frozen,
                               padding=1).numpy()
        expected = F.conv2d(F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(trained), padding=1)),
                            torch.from_numpy(frozen), padding=1).numpy()
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
    assert made.count(True) == 1  # the frozen weight's copy, never the trained one's
    assert asked == {"programs": 0, "kept": 3}


def test_a_forgotten_batch_lets_go_of_the_weight_copies_it_held(rng):
    w = weights(rng)
    mine = {name: [jt.array(a) for a in pair] for name, pair in w.items()}
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    kept_batches.forget_all()
    for _ in range(4):
        ours(x, mine)
    batches = [batch for variants in kept_batches._local.batches.values() for batch, _ in variants]
    held = [(copies, buffer) for batch in batches for _, _, copies, buffer in batch.held]
    assert len(held) == 3 and all(id(buffer) in copies.pins for copies, buffer in held)
    kept_batches.forget_all()
    assert all(id(buffer) not in copies.pins for copies, buffer in held)
    np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-5)


class Buffer:
    address = 4096


@pytest.mark.parametrize("first, second", [(0.0, -0.0), (1, 1.0), (1, True), (2.5, 2.5000000000000004)])
def test_the_signature_tells_apart_parameters_python_calls_equal(first, second):
    signature = cpu.native_launcher.signature
    launch = ["program", [Buffer(), 8192], (Buffer(),)]
    assert signature([(*launch, (first,))]) != signature([(*launch, (second,))])
    assert signature([(*launch, (first,))]) == signature([(*launch, (first,))])


def test_the_signature_tells_apart_addresses_and_programs_and_gives_none_for_other_parameters():
    signature = cpu.native_launcher.signature
    one = signature([("a", [4096], [8192], None), ("b", [], [4096], (1,))])
    assert one == signature([("a", (4096,), (8192,), ()), ("b", [], [Buffer()], [1])])
    assert one != signature([("a", [4096], [8192], None), ("c", [], [4096], (1,))])
    assert one != signature([("a", [4096, 8192], [], None), ("b", [], [4096], (1,))])  # where the counts split
    assert signature([("a", [], [4096], ("text",))]) is None
    assert signature([("a", [], [4096], (1 << 70,))]) is None
    with pytest.raises(TypeError, match="program, inputs, outputs, parameters"):
        signature([("a", [], [])])


class Released:
    """A stand-in for a `KeptBatch` counting its releases."""

    def __init__(self, signature, calls_made=()):
        self.signature, self.calls_made, self.releases = signature, calls_made, 0

    def current(self, launches):
        return True

    def release(self):
        self.releases += 1


def test_offer_keeps_a_few_signatures_per_plan_and_confirms_batches_that_make_calls(monkeypatch):
    monkeypatch.setattr(kept_batches, "KEPT_PER_THREAD", 2)
    kept_batches.forget_all()
    first, second, third = (Released(s) for s in "abc")
    for batch in (first, second, third):
        kept_batches.offer("plan", batch)
    assert kept_batches.find("plan", "a", []) is first and kept_batches.find("plan", "c", []) is third
    again = Released("a")
    kept_batches.offer("plan", again)  # replaces the batch of the same signature
    assert first.releases == 1 and kept_batches.find("plan", "a", []) is again
    for k in range(kept_batches.VARIANTS):
        kept_batches.offer("plan", Released(f"new {k}"))
    assert second.releases == third.releases == again.releases == 1  # the oldest variants went
    calling = Released("x", calls_made=(3,))
    kept_batches.offer("other", calling)
    assert kept_batches.find("other", "x", []) is None  # not yet confirmed
    confirming = Released("x", calls_made=(3,))
    kept_batches.offer("other", confirming)
    assert kept_batches.find("other", "x", []) is confirming
    kept_batches.offer("third plan", Released("y"))  # beyond KEPT_PER_THREAD plans: "plan" goes
    assert kept_batches.find("plan", "new 0", []) is None and kept_batches.find("other", "x", []) is confirming
    kept_batches.forget_all()
    assert confirming.releases == 1


def test_an_interruption_after_every_launch_ran_reports_them_all_finished(rng, monkeypatch):
    """Keeping the batch comes after the sequence ran: an exception there (Ctrl-C) reports
    every launch finished, so the executor keeps their outputs instead of treating donated
    buffers they overwrote as intact."""
    kept_batches.forget_all()
    w = weights(rng)
    mine = {name: [jt.array(a) for a in pair] for name, pair in w.items()}
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    sequences = []
    run_sequence = cpu._run_sequence

    def counted_run_sequence(launches, *arguments, **options):
        sequences.append(len(launches))
        return run_sequence(launches, *arguments, **options)

    def interrupted_offer(plan_key, kept):
        raise KeyboardInterrupt
    monkeypatch.setattr(cpu, "_run_sequence", counted_run_sequence)
    monkeypatch.setattr(kept_batches, "offer", interrupted_offer)
    with pytest.raises(KeyboardInterrupt) as raised:
        ours(x, mine)
    assert raised.value.metajit_completed == sequences[-1] > 0
    monkeypatch.undo()
    np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-5)
