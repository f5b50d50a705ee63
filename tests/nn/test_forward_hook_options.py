"""``register_forward_hook`` / ``register_forward_pre_hook`` with PyTorch's ``with_kwargs`` and
``prepend``, against torch."""
import numpy as np
import torch

import metajit as jt


class _Scaled:
    """A module factory whose forward takes a keyword (``scale``)."""

    @staticmethod
    def make(library):
        class Scaled(library.nn.Module):
            def forward(self, x, scale=1.0):
                return x * scale
        return Scaled()


def _run(library, register):
    module = _Scaled.make(library)
    calls = []
    register(module, calls)
    output = module(library.tensor(np.array([1.0, 2.0], np.float32)), scale=3.0)
    return output.detach().numpy() if library is torch else output.numpy(), calls


def _hooks(module, calls):
    def pre_with_kwargs(m, args, kwargs):
        calls.append(("pre kwargs", sorted(kwargs)))
        return (args[0] + 1,), {"scale": kwargs["scale"] * 2}

    def pre(m, args):
        calls.append(("pre", len(args)))

    def post_with_kwargs(m, args, kwargs, output):
        calls.append(("post kwargs", kwargs["scale"]))
        return output - 1

    def post(m, args, output):
        calls.append(("post", None))

    module.register_forward_pre_hook(pre)
    module.register_forward_pre_hook(pre_with_kwargs, with_kwargs=True, prepend=True)
    module.register_forward_hook(post)
    module.register_forward_hook(post_with_kwargs, with_kwargs=True, prepend=True)


def test_hooks_with_kwargs_and_prepend():
    ours, our_calls = _run(jt, _hooks)
    theirs, their_calls = _run(torch, _hooks)
    np.testing.assert_array_equal(ours, theirs)
    assert our_calls == their_calls
