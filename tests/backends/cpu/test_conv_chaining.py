"""Convolution chains on the cpu backend (`chaining`): convolutions handing intermediates
to each other in oneDNN's blocked layout give torch's values, and only intermediates that
convolutions alone read are chained."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends.cpu import chaining, onednn

pytestmark = pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed")


@pytest.fixture
def chained(monkeypatch):
    """The launches each realisation ran chained (a list per realisation)."""
    seen = []
    found = chaining.modes_for

    def spy(launches, plan_key):
        modes = found(launches, plan_key)
        seen.append(modes)
        return modes
    monkeypatch.setattr(chaining, "modes_for", spy)
    return seen


def parameters(rng, out_channels, in_channels, kernel):
    weight = rng.standard_normal((out_channels, in_channels, kernel, kernel)).astype(np.float32) / kernel
    return (weight / np.sqrt(in_channels)).astype(np.float32), rng.standard_normal(out_channels).astype(np.float32)


def inverted_residual(rng, channels, hidden):
    """A MobileNetV2 block's weights: expand 1x1, depthwise 3x3, project 1x1."""
    return [parameters(rng, hidden, channels, 1), parameters(rng, hidden, 1, 3), parameters(rng, channels, hidden, 1)]


def block_ours(x, weights):
    (w1, b1), (w2, b2), (w3, b3) = [(jt.array(w), jt.array(b)) for w, b in weights]
    with jt.no_grad():
        h = nn.relu6(nn.conv2d(x, w1, b1))
        h = nn.relu6(nn.conv2d(h, w2, b2, padding=1, groups=w2.shape[0]))
        return nn.conv2d(h, w3, b3)


def block_torch(x, weights):
    (w1, b1), (w2, b2), (w3, b3) = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in weights]
    h = torch.nn.functional.relu6(torch.nn.functional.conv2d(x, w1, b1))
    h = torch.nn.functional.relu6(torch.nn.functional.conv2d(h, w2, b2, padding=1, groups=w2.shape[0]))
    return torch.nn.functional.conv2d(h, w3, b3)


@pytest.mark.parametrize("channels,hidden", [(16, 32), (24, 144), (58, 58), (3, 20)])
def test_chained_block_matches_torch(rng, chained, channels, hidden):
    x = rng.standard_normal((1, channels, 14, 14)).astype(np.float32)
    weights = inverted_residual(rng, channels, hidden)
    ours = block_ours(jt.array(x), weights).numpy()
    np.testing.assert_allclose(ours, block_torch(torch.from_numpy(x), weights).numpy(), rtol=1e-4, atol=1e-4)
    modes = chained[-1]
    # expand -> depthwise -> project: the middle one takes its source and gives its output chained
    assert any(source and readers for source, readers in modes.values()), modes


def test_two_convolutions_reading_one_output_are_both_chained(rng, chained):
    # a Fire module's squeeze and its two expansions (dilated: oneDNN runs it, not Winograd)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    (ws, bs), (wa, ba), (wb, bb) = (parameters(rng, 32, 16, 1), parameters(rng, 32, 32, 1),
                                    parameters(rng, 32, 32, 3))

    def fire(x):  # as a module's forward: no Var of the squeezed value lives on to the realisation
        squeezed = nn.relu(nn.conv2d(x, jt.array(ws), jt.array(bs)))
        return jt.concat([nn.relu(nn.conv2d(squeezed, jt.array(wa), jt.array(ba))),
                          nn.relu(nn.conv2d(squeezed, jt.array(wb), jt.array(bb), padding=2, dilation=2))], dim=1)
    with jt.no_grad():
        ours = fire(jt.array(x)).numpy()
    F = torch.nn.functional
    t = F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(ws), torch.from_numpy(bs)))
    expected = torch.cat([F.relu(F.conv2d(t, torch.from_numpy(wa), torch.from_numpy(ba))),
                          F.relu(F.conv2d(t, torch.from_numpy(wb), torch.from_numpy(bb), padding=2, dilation=2))], 1)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-4, atol=1e-4)
    readers = [readers for _, readers in chained[-1].values() if readers]
    assert readers and len(readers[0]) == 2


def test_output_with_another_reader_or_kept_stays_nchw(rng, chained):
    x = rng.standard_normal((1, 16, 10, 10)).astype(np.float32)
    weights = inverted_residual(rng, 16, 32)
    (w1, b1), (w2, b2), _ = [(jt.array(w), jt.array(b)) for w, b in weights]
    with jt.no_grad():
        first = nn.relu6(nn.conv2d(jt.array(x), w1, b1))
        second = nn.conv2d(first, w2, b2, padding=1, groups=32)
        mixed = second + first  # an element-wise reader of the first convolution's output
        jt.sync([first, mixed])
    modes = chained[-1]
    assert not any(readers for _, readers in modes.values()), modes
    F = torch.nn.functional
    (tw1, tb1), (tw2, tb2) = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in weights[:2]]
    t_first = F.relu6(F.conv2d(torch.from_numpy(x), tw1, tb1))
    np.testing.assert_allclose(first.numpy(), t_first.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mixed.numpy(), (F.conv2d(t_first, tw2, tb2, padding=1, groups=32) + t_first).numpy(),
                               rtol=1e-4, atol=1e-4)


def test_interrupted_chain_is_recomputed_from_nchw_values(rng, monkeypatch):
    x = rng.standard_normal((1, 24, 12, 12)).astype(np.float32)
    weights = inverted_residual(rng, 24, 48)
    expected = block_torch(torch.from_numpy(x), weights).numpy()
    block_ours(jt.array(x), weights).sync()  # compiled and planned
    run = onednn.ConvolutionProgram.__call__
    interrupted = []

    def interrupt_chained_reader(self, inputs, outputs, parameters, source_chained=False, output_chained=False):
        if source_chained and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return run(self, inputs, outputs, parameters, source_chained, output_chained)
    monkeypatch.setattr(onednn.ConvolutionProgram, "__call__", interrupt_chained_reader)
    monkeypatch.setattr(onednn.ConvolutionProgram, "native_calls", lambda self, *arguments: None)  # run as calls
    out = block_ours(jt.array(x), weights)
    with pytest.raises(KeyboardInterrupt):
        out.sync()
    assert interrupted
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_unkept_outputs_are_the_finished_chained_ones():
    modes = {2: (False, (4, 6)), 4: (True, ()), 6: (True, (8,)), 8: (True, ())}
    assert chaining.unkept_outputs(5, modes) == (2,)
    assert chaining.unkept_outputs(9, modes) == (2, 6)
    assert chaining.unkept_outputs(2, modes) == ()


def interrupt_launch(monkeypatch, pick):
    """Make the next realisation with chains raise KeyboardInterrupt at launch
    ``pick(modes)`` (then run normally again)."""
    found, armed = chaining.modes_for, [True]

    def spy(launches, plan_key):
        modes = found(launches, plan_key)
        if armed and armed[0] and modes:
            armed[0] = False
            index = pick(modes)

            def interrupted(*arguments):
                raise KeyboardInterrupt
            launches[index] = (interrupted,) + tuple(launches[index][1:])
        return modes
    monkeypatch.setattr(chaining, "modes_for", spy)


def test_a_value_the_user_holds_is_right_after_an_interrupted_chain(rng, monkeypatch):
    # a (held by the user) is a target, kept in the plain layout (`executor._held_results`);
    # b -> b2 chained and finished, the launch after them interrupted: a's value is right
    x = rng.standard_normal((1, 24, 12, 12)).astype(np.float32)
    w1 = rng.standard_normal((48, 24, 1, 1)).astype(np.float32) / 5
    w2 = rng.standard_normal((48, 48, 1, 1)).astype(np.float32) / 7
    w4 = rng.standard_normal((48, 48, 1, 1)).astype(np.float32) / 7
    w3 = rng.standard_normal((16, 48, 3, 3)).astype(np.float32) / 20

    def ours():
        with jt.no_grad():
            a = nn.conv2d(jt.array(x), jt.array(w1), jt.zeros(48))
            b = nn.conv2d(nn.conv2d(a, jt.array(w2), jt.zeros(48)), jt.array(w4), jt.zeros(48))
            return a, nn.conv2d(b * 2.0 + 1.0, jt.array(w3), jt.zeros(16), padding=1, dilation=2)
    ours()[1].sync()
    interrupt_launch(monkeypatch, lambda modes: max(r for _, readers in modes.values() for r in readers) + 1)
    a, c = ours()
    with pytest.raises(KeyboardInterrupt):
        c.sync()
    F = torch.nn.functional
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w1))
    np.testing.assert_allclose(a.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_interrupted_training_step_with_chains_keeps_parameters_consistent(rng, monkeypatch):
    # the step's convolutions chain (forward into the next and into its weight gradient);
    # launches that ran still count as started, so a parameter whose donated buffer was
    # overwritten is invalidated, never read back as gradient bytes
    x = rng.standard_normal((2, 16, 10, 10)).astype(np.float32)
    values = [rng.standard_normal((32, 16, 3, 3)).astype(np.float32) / 12] + \
        [rng.standard_normal((32, 32, 1, 1)).astype(np.float32) / 6 for _ in range(3)]
    weights = [jt.array(v) for v in values]
    for w in weights:
        w.requires_grad = True
    optimizer = jt.optim.SGD(weights, lr=0.1)

    def step():
        h = nn.conv2d(jt.array(x), weights[0], padding=1)
        for w in weights[1:]:
            h = nn.conv2d(h, w)
        optimizer.step((h * h).mean())
    step()
    before = [w.numpy().copy() for w in weights]
    tw = [torch.from_numpy(b).requires_grad_() for b in before]
    th = torch.nn.functional.conv2d(torch.from_numpy(x), tw[0], padding=1)
    for t in tw[1:]:
        th = torch.nn.functional.conv2d(th, t)
    (th * th).mean().backward()
    stepped = [(t - 0.1 * t.grad).detach().numpy() for t in tw]
    interrupt_launch(monkeypatch, lambda modes: max(r for _, readers in modes.values() for r in readers))
    with pytest.raises(KeyboardInterrupt):
        step()
    for w, old, new in zip(weights, before, stepped):
        try:
            value = w.numpy()
        except Exception as error:  # a lost parameter says so
            assert "donat" in str(error).lower() or "lost" in str(error).lower(), error
            continue
        assert np.allclose(value, old, atol=1e-5) or np.allclose(value, new, atol=1e-4)


def test_padded_channel_blocks_get_room_in_the_arena(rng, monkeypatch):
    # 24 channels are two blocks of 16 in oneDNN's layout: the producer's output_capacity
    # asks the arena for the padded size, so the value can still be chained
    seen = []
    found = chaining.modes_for

    def spy(launches, plan_key):
        seen.append(launches)
        return found(launches, plan_key)
    monkeypatch.setattr(chaining, "modes_for", spy)
    x = rng.standard_normal((1, 24, 9, 9)).astype(np.float32)
    weights = inverted_residual(rng, 24, 24)
    np.testing.assert_allclose(block_ours(jt.array(x), weights).numpy(),
                               block_torch(torch.from_numpy(x), weights).numpy(), rtol=1e-4, atol=1e-4)
    programs = [(program, outputs[0]) for program, _, outputs, _ in seen[-1]
                if isinstance(program, onednn.ConvolutionProgram) and outputs[0].is_view]
    dense = 4 * 24 * 9 * 9
    assert programs and all(program.output_layout_bytes > dense for program, _ in programs)
    assert all(output.capacity >= program.output_layout_bytes for program, output in programs)


def test_profiled_launches_run_chained_as_unprofiled_ones(rng, chained):
    """`profile_scope` times each launch as the realisation runs it: the block's
    convolutions hand their intermediates over in oneDNN's layout (no reorder timed that
    the unprofiled run skips), one timed row per launch, and torch's values."""
    x = rng.standard_normal((1, 16, 14, 14)).astype(np.float32)
    weights = inverted_residual(rng, 16, 64)
    block_ours(jt.array(x), weights).numpy()  # compiled, planned and chained once unprofiled
    unprofiled = list(chained)
    with jt.debug.record_kernels() as launched, jt.profile_scope() as report:
        ours = block_ours(jt.array(x), weights).numpy()
    np.testing.assert_allclose(ours, block_torch(torch.from_numpy(x), weights).numpy(), rtol=1e-4, atol=1e-4)
    assert len(chained) == len(unprofiled) + 1 and chained[-1] == unprofiled[-1]
    assert any(source and readers for source, readers in chained[-1].values())
    assert len(launched) == sum(row.count for row in report.rows) == 3
    assert all(entry.seconds > 0 for entry in launched)
