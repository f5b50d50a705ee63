"""Library ops: opaque graph nodes that a backend runs as a library kernel (oneDNN, cuDNN).

A library op is defined by a *decomposition* into meta-ops, which is its meaning: a
backend that does not claim the op runs the decomposition, and the decomposition's
gradient (again meta-ops) is what higher-order derivatives go through. A backend that
claims the op (``library_kernels`` in its description) gets a `LibraryCall` in
`metajit_backend_lower_library_kernel` and returns a program for it.

The front end asks `claimed` before recording a library node, so on devices without
the claim the graph holds only meta-ops. A library node still unclaimed at realisation
(the device changed after the graph was built) is expanded into its decomposition.
This module sees nodes only; the front end registers its Var-level definitions through
`metajit.nn.library`.
"""
import dataclasses

from ..ir import indexexpr
from .. import plugins
from ..ir.kernel import LibraryCall


@dataclasses.dataclass(frozen=True)
class LibraryOp:
    """``decompose(input nodes, attrs) -> node`` gives the meaning in meta-ops;
    ``gradients(node, grad node) -> [node or None per input]`` the first-order gradient
    (returning None: differentiate the decomposition)."""

    decompose: object
    gradients: object = None


OPS = {}


def register(name, decompose, gradients=None):
    """Define library op ``name`` (see `LibraryOp`)."""
    OPS[name] = LibraryOp(decompose, gradients)


_CLAIMS = {}  # (name, dtype) -> (library_kernels asked, answer): layers ask the same at every call


def claimed(name, dtype=None):
    """Whether the current device runs library op ``name`` (on inputs of ``dtype``) as a
    library kernel."""
    kernels = plugins.current().description.library_kernels
    known = _CLAIMS.get((name, dtype))
    if known is None or known[0] is not kernels:
        known = _CLAIMS[(name, dtype)] = (kernels, plugins.claims(kernels, name, dtype))
    return known[1]


def call_of(node):
    """The `LibraryCall` a library node's step hands to the backend."""
    name, attrs = node.attrs
    return LibraryCall(name, attrs, tuple((i.dtype, i.shape) for i in node.inputs),
                       ((node.dtype, node.shape),))


def decomposition(node):
    """The meta-op node equal to library ``node``, built on its inputs."""
    name, attrs = node.attrs
    return OPS[name].decompose(list(node.inputs), attrs)


def expand_unclaimed(nodes, library_kernels):
    """Turn every unrealised library node among ``nodes`` that the device does not claim
    into a zero-copy reshape of its decomposition (same value, meta-ops only); returns
    whether any node was rewritten."""
    rewritten = False
    for node in nodes:
        if node.op != "library" or node.is_realised \
                or plugins.claims(library_kernels, node.attrs[0], node.inputs[0].dtype):
            continue
        rewritten = True
        expanded = decomposition(node)
        node.op, node.inputs = "reindex", (expanded,)
        node.attrs = (tuple(indexexpr.loop(a) for a in range(len(node.shape))),
                      node.dtype.numpy.type(0).item(), ())
    return rewritten
