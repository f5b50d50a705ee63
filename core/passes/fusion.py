"""Fusion: turn the unrealised part of the lazy graph into backend-neutral `Kernel` s.

Rules (Jittor's, plus duplication of cheap producers):

* A node is *materialised* (written to a buffer by its own kernel) when it is a
  realisation target, a reduce or reindex_reduce, an extra index input of a
  reindex, or an element-wise node whose consumers fall in more than one kernel
  (within one kernel the value tree shares it) — unless it is one cheap op over a
  stored full-size input and small broadcast operands (``x - mean``), which each
  consumer recomputes: that reads the input once per consumer instead of writing the
  result and reading it back.
* Everything else is inlined into its consumers: element-wise chains, broadcasts
  and reindex reads compose into one value tree, with reindex index expressions
  substituted into the loads and out-of-range reads turned into ``select``\\ s —
  except that an element-wise chain under an *expanding* reindex (more outputs than
  inputs: im2col, pooling windows) is stored once rather than recomputed per read.
* Library nodes (`metajit.library_ops`) and their inputs are materialised: the
  library step reads and writes dense buffers.
* A stored element-wise producer whose stored element-wise consumer of the same shape
  reaches it through inlined element-wise nodes is computed and stored by the
  consumer's kernel as a second output (`_siblings`), when nothing earlier reads it.
* Constants, loop coordinates and index-only nodes (broadcast, reindex) are never
  stored for sharing: they are recomputed in each consumer, and sharing passes to
  their source.

When the backend claims the ``matmul`` library kernel, the operands of a sum over one
axis of a product of two broadcasts (what ``a @ b`` and its gradients become) are
materialised, so the kernel is a plain matrix product, and such kernels become ``matmul``
`metajit.ir.kernel.LibraryCall` s (`metajit.toolkit.analysis.matmul_attrs`) that the
backend runs with its BLAS, like the convolutions.

The result is a `Plan`: host leaves to upload and kernel steps in execution order.
Plans are cached by the graph's structure (ops, attrs, shapes, dtypes, edges; never
data or constant values), so a repeated training step skips fusion entirely.
"""
import contextlib
import dataclasses
import gc
import itertools
import operator
import threading

from ..ir import dtypes, indexexpr, kernel as K, opset
from . import donation, graphwalk, library_ops
from .. import plugins
from ..errors import MetajitValueError
from ..ir.graph import numel
from ..plugins import FusionCosts
from ..toolkit import analysis


@dataclasses.dataclass
class Step:
    """One kernel launch: ``kernel`` (a `Kernel`, or a `LibraryCall`) reads ``input_nodes``,
    writes ``output_nodes`` and gets ``parameters`` (the values of its scalar parameters).
    A step without a kernel is an alias: its output is a reshape of its input and shares
    the input's buffer."""

    kernel: K.Kernel
    input_nodes: list
    output_nodes: list
    parameter_nodes: list = dataclasses.field(default_factory=list)

    @property
    def parameters(self):
        """The launch values of the kernel's scalar parameters."""
        return tuple(node.attrs[0] for node in self.parameter_nodes)


@dataclasses.dataclass
class Plan:
    """What a realisation does: ``uploads`` (host leaves), ``steps`` (kernels) in order, and
    the ``intermediates`` whose buffers are dropped afterwards."""

    uploads: list
    steps: list
    intermediates: list


_ALWAYS_INLINED = ("constant", "index")
_INDEX_ONLY = ("broadcast_to", "reindex")


PLAN_CACHE_SIZE = 4096
DEFAULT_COSTS = FusionCosts()
_plan_cache = {}  # oldest entry evicted first; hits do not reorder (that would hash the key again)
_caching = threading.Lock()  # two threads must not both evict the same oldest plan


def plan(targets, library_kernels=(), costs=DEFAULT_COSTS):
    """Fuse the unrealised graph behind ``targets`` into a `Plan` (cached by structure).

    ``library_kernels`` are the backend's claims (e.g. ``("matmul",)``), ``costs`` its
    `metajit.plugins.FusionCosts`.
    """
    template, order = plan_template(targets, library_kernels, costs)
    return template.instantiate(order)


def plan_template(targets, library_kernels=(), costs=DEFAULT_COSTS, order=None):
    """``(PlanTemplate, order)``: the cached plan for the graph's structure and the graph
    order its positions refer to (what the executor runs without building a `Plan`);
    ``order``: the targets' `graphwalk.realised_order` when the caller has it."""
    if order is None:
        order = graphwalk.realised_order(targets)
    if library_ops.expand_unclaimed(order, library_kernels):
        order = graphwalk.realised_order(targets)
    with _collector_paused():
        key = graphwalk.plan_key(order, targets, (tuple(library_kernels), costs))
        template = _plan_cache.get(key)
    if template is None:
        template = PlanTemplate(_fuse(order, targets, library_kernels, costs), order)
        with _collector_paused():
            unchanged = graphwalk.plan_key(order, targets, (tuple(library_kernels), costs)) == key
        if unchanged:  # else another thread computed or uploaded a node meanwhile: the plan fits this call only
            with _caching:
                _plan_cache[key] = template
                if len(_plan_cache) > PLAN_CACHE_SIZE:
                    del _plan_cache[next(iter(_plan_cache))]
    return template, order


@contextlib.contextmanager
def _collector_paused():
    """No automatic garbage collection inside the block. Without the C walk the plan-cache
    key is a tuple per node (20000 for a DenseNet training step), freed again on a cache
    hit: counted as allocations they would start a young collection over the whole live
    graph (10-20 ms), for objects that hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_interned_kernels = {}
_template_keys = itertools.count()


def _interned(kernel):
    """One shared object per distinct kernel, so that program caches keyed by kernels
    hit by identity instead of comparing kernel trees."""
    if kernel is None:
        return None
    if len(_interned_kernels) > PLAN_CACHE_SIZE * 4:
        _interned_kernels.clear()
    return _interned_kernels.setdefault(kernel, kernel)


def _picker(positions):
    """A function taking the graph order to the nodes at ``positions``, as a tuple."""
    if not positions:
        return lambda order: ()
    if len(positions) == 1:
        (only,) = positions
        return lambda order: (order[only],)
    return operator.itemgetter(*positions)


class PlanTemplate:
    """A fused `Plan` with its nodes named by position in the graph order, so that a graph
    of the same structure replays it.

    ``uploads``, ``intermediates``, ``kept`` (the steps' other outputs: the values that
    outlive the realisation) and ``leaves`` (every realised node the plan reads) are
    pickers (order -> nodes); ``steps`` holds ``(kernel, inputs, outputs, parameters)``
    pickers per step and ``outputs`` each step's output ``(bytes, dtype)`` pairs.
    ``prepared`` is the executor's per-device cache (compiled programs with the steps);
    ``key`` a number no other template in this process has, which the executor passes to
    the backend's ``launch_sequence`` (a backend may capture the sequence once and replay it).
    """

    __slots__ = ("uploads", "steps", "outputs", "intermediates", "kept", "leaves", "prepared", "key")

    def __init__(self, fresh, order):
        position = graphwalk.positions(order)

        def where(nodes):
            return _picker([position[id(n)] for n in nodes])
        self.uploads = where(fresh.uploads)
        self.steps = tuple((_interned(s.kernel), where(s.input_nodes), where(s.output_nodes),
                            where(s.parameter_nodes)) for s in fresh.steps)
        self.outputs = tuple(tuple((numel(n.shape) * n.dtype.itemsize, n.dtype) for n in s.output_nodes)
                             for s in fresh.steps)
        self.intermediates = where(fresh.intermediates)
        temporary = {id(n) for n in fresh.intermediates}
        self.kept = where([n for s in fresh.steps for n in s.output_nodes if id(n) not in temporary])
        self.leaves = where([n for n in order if n.is_realised])
        self.prepared = {}
        self.key = next(_template_keys)

    def instantiate(self, order):
        """The `Plan` for the graph ``order`` (of this template's structure)."""
        return Plan(list(self.uploads(order)),
                    [Step(kernel, inputs(order), outputs(order), parameters(order))
                     for kernel, inputs, outputs, parameters in self.steps],
                    list(self.intermediates(order)))


def _fuse(order, targets, library_kernels, costs):
    target_ids = {id(t) for t in targets}
    consumers = {}
    forced = set(target_ids)
    uploads = []
    for node in order:
        if node.is_realised:
            if node.buffer is None:
                uploads.append(node)
            continue
        if node.op == donation.DONATED:
            raise MetajitValueError("this value was an optimizer's parameter or state before its step, whose "
                                    "memory the step reused for the new value (as PyTorch updates in place): "
                                    "compute what reads it (e.g. the gradients of that loss) before the step")
        if node.op == "batch_placeholder":
            raise MetajitValueError("vmap: a value inside the vmapped function was read (numpy, item, sync, "
                                    "print or a data-dependent op such as nonzero); a vmapped function must "
                                    "stay lazy: compute such values outside it")
        if node.op in ("reduce", "reindex_reduce"):
            forced.add(id(node))
        if node.op in ("reindex", "reindex_reduce"):
            forced.update(id(e) for e in node.inputs[1:])
        if node.op == "library":
            forced.add(id(node))
            forced.update(id(i) for i in node.inputs)
        if plugins.claims(library_kernels, "matmul", node.dtype):
            forced.update(id(s) for s in _matmul_operands(node) if not s.is_realised)
        amplified = _amplified_producer(node)
        if amplified is not None:
            forced.add(id(amplified))
        for source in {id(i): i for i in node.inputs}.values():
            consumers.setdefault(id(source), []).append(node)
    for node in reversed(order):
        # a stored reshape aliases its source's buffer, so store the source instead of copying
        if id(node) in forced and is_pure_reshape(node) and not node.inputs[0].is_realised \
                and node.inputs[0].op not in _ALWAYS_INLINED:
            forced.add(id(node.inputs[0]))
    materialised, widely_read = _choose_materialised(order, consumers, forced, costs)
    shared_loops = costs.shared_reduction_loops
    co_stored, absorbed = _siblings(order, materialised, consumers, widely_read, shared_loops)
    if shared_loops:
        grouped = _sibling_reductions(order, materialised, consumers, co_stored, absorbed,
                                      lambda node: plugins.claims(library_kernels, "matmul", node.dtype)
                                      and bool(_matmul_operands(node)))
        for host, members in grouped.items():
            co_stored[host] = co_stored.get(host, []) + members
    steps = [_alias_step(node) if is_pure_reshape(node) and _is_stored(node.inputs[0], materialised)
             else _build_step(node, materialised, co_stored.get(id(node), ()))
             for node in order if id(node) in materialised and not node.is_realised and id(node) not in absorbed]
    for step in steps:
        kernel = step.kernel
        if isinstance(kernel, K.Kernel) and plugins.claims(library_kernels, "matmul", kernel.outputs[0][0]):
            step.kernel = analysis.as_matmul_call(kernel) or kernel
    intermediates = [n for n in order if id(n) in materialised and id(n) not in target_ids
                     and not n.is_realised]
    return Plan(uploads, steps, intermediates)


def _is_plain_elementwise(node):
    return not node.is_realised and node.op in opset.ELEMENTWISE and node.op not in _ALWAYS_INLINED


def _siblings(order, materialised, consumers, widely_read, into_reductions=False):
    """Stored element-wise producers that the kernel of a stored element-wise consumer of
    the same shape computes and stores itself (SGD's momentum buffer with the parameter
    update; BatchNorm's output with the ReLU after it): one loop reads the inputs once
    and writes both, instead of a second kernel reading the first one's output back.
    With ``into_reductions`` (`FusionCosts.shared_reduction_loops`) a plain reduction's
    kernel does the same for producers over its domain (BatchNorm's masked gradient,
    summed and then read by the input gradient).

    A producer qualifies when the consumer reaches it through inlined element-wise nodes
    only (same index) and every other reader of it comes later in the order, so its
    buffer is written before anyone loads it; not one stored for being read at many
    positions (``widely_read``), which the consumer would recompute at them. Returns ({consumer id: [producers]}, ids of
    the absorbed producers)."""
    position = graphwalk.positions(order)
    co_stored, absorbed = {}, set()
    for node in order:
        if id(node) not in materialised or id(node) in absorbed:
            continue
        if _is_plain_elementwise(node):
            domain = node.shape
        elif into_reductions and node.op == "reduce" and not node.is_realised:
            domain = node.inputs[0].shape
        else:
            continue
        region, stack, found = {id(node)}, list(node.inputs), {}
        while stack:
            source = stack.pop()
            if id(source) in region or not _is_plain_elementwise(source) or source.shape != domain:
                continue
            if id(source) in materialised:
                if id(source) not in absorbed and id(source) not in co_stored and id(source) not in widely_read:
                    found[id(source)] = source
                continue
            region.add(id(source))
            stack.extend(source.inputs)
        for producer in found.values():
            # every other kernel that reads it (directly or through nodes it inlines) runs later
            if all(r is node or position[id(r)] > position[id(node)]
                   for r in _reading_kernels(producer, consumers, materialised)):
                co_stored.setdefault(id(node), []).append(producer)
                absorbed.add(id(producer))
    return co_stored, absorbed


SIBLING_REDUCTIONS_MAX = 4  # reductions one kernel computes together (accumulators per loop)


def _sibling_reductions(order, materialised, consumers, co_stored, absorbed, is_matmul):
    """Plain reductions with one domain, operator, axes and dtype that read a common
    full-size stored value are computed by one kernel, one store each: a single pass over
    the shared input instead of one per reduction (BatchNorm's shifted sum and sum of
    squares; the sums of its gradient and of the gradient times its input).

    The group's kernel runs at one member's position (its *host*), so every member's
    inputs must be computed before it and every reader of a member after it: a reduction
    joins a group hosted earlier when its inputs are ready there, or becomes the host
    when every reader of the members comes after it. ``co_stored`` (element-wise
    siblings, computed at their consumer's position) is taken into account; matrix
    products a library kernel runs (``is_matmul``) stay alone. Returns ({host id:
    [other members]}) and adds the members to ``absorbed``."""
    position = graphwalk.positions(order)
    computed_at = {id(p): position[host] for host, producers in co_stored.items() for p in producers}
    groups = {}  # (domain, attrs, dtype) -> [_ReductionGroup]
    for node in order:
        if node.op != "reduce" or node.is_realised or id(node) not in materialised or is_matmul(node):
            continue
        at = position[id(node)]
        leaves = _stored_leaves(node.inputs[0], materialised)
        size = numel(node.inputs[0].shape)
        shared = {id(leaf) for leaf in leaves if numel(leaf.shape) * 64 > size}
        first_reader = min((position[id(r)] for r in _reading_kernels(node, consumers, materialised)),
                           default=len(order))
        key = (node.inputs[0].shape, node.attrs, node.dtype)
        # a reduction storing element-wise siblings keeps them at its position: it may host
        # a group that stays there, never join one elsewhere
        stays = id(node) in co_stored
        for group in groups.get(key, ()):
            if len(group.members) >= SIBLING_REDUCTIONS_MAX or not shared & group.leaves:
                continue
            inside = {id(p) for p in co_stored.get(id(group.host), ())}  # values the host's kernel computes
            ready = max((-1 if leaf.is_realised else computed_at.get(id(leaf), position[id(leaf)])
                         for leaf in leaves if id(leaf) not in inside), default=-1)
            early = not stays and ready < position[id(group.host)]  # computed early, at the host
            if not early and (group.first_reader <= at or id(group.host) in co_stored):
                continue  # nor can the group move to this node
            if not early:
                group.host = node
            group.members.append(node)
            group.leaves |= shared
            group.first_reader = min(group.first_reader, first_reader)
            for member in group.members:
                computed_at[id(member)] = position[id(group.host)]
            break
        else:
            groups.setdefault(key, []).append(_ReductionGroup(node, [node], shared, first_reader))
    together = {}
    for group in itertools.chain.from_iterable(groups.values()):
        if len(group.members) > 1:
            together[id(group.host)] = [m for m in group.members if m is not group.host]
            absorbed.update(id(m) for m in together[id(group.host)])
    return together


@dataclasses.dataclass
class _ReductionGroup:
    """Sibling reductions computed by one kernel at ``host``'s position: the ``members``
    (host included), the ids of the full-size stored values they load (``leaves``) and the
    earliest position of a kernel reading a member (``first_reader``)."""

    host: object
    members: list
    leaves: set
    first_reader: int


def _stored_leaves(node, materialised):
    """The stored values (realised or materialised) a kernel computing ``node`` inline loads."""
    leaves, stack, seen = [], [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.is_realised or id(current) in materialised:
            leaves.append(current)
        elif current.op != "constant":
            stack.extend(current.inputs)
    return leaves


def _reading_kernels(producer, consumers, materialised):
    """The materialised nodes whose kernels read ``producer``: its materialised consumers,
    and those of the inlined nodes between (a node inlined into two kernels is read by both)."""
    kernels, stack, seen = [], list(consumers.get(id(producer), ())), set()
    while stack:
        reader = stack.pop()
        if id(reader) in seen:
            continue
        seen.add(id(reader))
        if id(reader) in materialised or reader.is_realised:
            kernels.append(reader)
        else:
            stack.extend(consumers.get(id(reader), ()))
    return kernels


_WINDOW_EXPANSION = 16      # a broadcast expanding a value at most this much is a window's
_WINDOW_MIN_ELEMENTS = 4096


def _amplified_producer(node):
    """The element-wise producer a gather would recompute several times per element.

    A reindex with more output than input elements (im2col, pooling windows, upsampling)
    reads each source element repeatedly; inlining an element-wise chain under it would
    repeat that work for every read, so the chain is stored once instead. So does a
    broadcast over a few window positions (a pooling gradient spreads each output's
    gradient over its 3x3 window: DenseNet's first feature map has a gradient summing
    seven layers' contributions, which was computed nine times per element); a broadcast
    of small values over many (a per-channel scale) keeps them inlined.
    """
    if node.op == "broadcast_to":
        source_size = numel(node.inputs[0].shape)
        if source_size < _WINDOW_MIN_ELEMENTS or numel(node.shape) > _WINDOW_EXPANSION * source_size:
            return None
    elif node.op != "reindex" or numel(node.shape) <= numel(node.inputs[0].shape) or _reads_each_once(node):
        return None
    producer = node.inputs[0]
    while not producer.is_realised and producer.op in _INDEX_ONLY:
        producer = producer.inputs[0]
    if producer.is_realised or producer.op in _ALWAYS_INLINED or producer.op not in opset.ELEMENTWISE:
        return None
    return producer


def _shifted_axis(expr):
    """The output axis ``k`` when ``expr`` is ``i<k>`` or ``i<k>`` plus or minus a constant."""
    if expr.op == "loop":
        return expr.args[0]
    if expr.op in ("add", "sub") and expr.args[0].op == "loop" and expr.args[1].op == "const":
        return expr.args[0].args[0]
    if expr.op == "add" and expr.args[1].op == "loop" and expr.args[0].op == "const":
        return expr.args[1].args[0]
    return None


def _reads_each_once(node):
    """Whether a reindex reads each source element at most once: every source index is a
    distinct output index shifted by a constant and no longer output axis goes unread (a
    padding: the gradient pieces of ``chunk`` joined by zero-padded reads), so a producer
    inlined under it is computed once per element however many outputs fall outside."""
    exprs, _, conditions = node.attrs
    if len(node.inputs) > 1 or conditions:
        return False
    axes = [_shifted_axis(expr) for expr in exprs]
    if None in axes or len(set(axes)) != len(axes):
        return False
    return all(size == 1 or axis in axes for axis, size in enumerate(node.shape))


def is_pure_reshape(node):
    """True for a reindex that only reads its source row-major in another shape."""
    return (node.op == "reindex" and len(node.inputs) == 1 and not node.attrs[2]
            and numel(node.shape) == numel(node.inputs[0].shape)
            and tuple(node.attrs[0]) == indexexpr.reshape_exprs(node.inputs[0].shape, node.shape))


def _is_stored(node, materialised):
    return node.is_realised or id(node) in materialised


def _alias_step(node):
    return Step(None, [node.inputs[0]], [node])


def _plain_view_source(node):
    """Peel broadcasts and plain axis-relabelling reindexes; returns (source, broadcast seen)."""
    broadcast = False
    while not node.is_realised:
        if node.op == "broadcast_to":
            broadcast = True
        elif not (node.op == "reindex" and len(node.inputs) == 1 and not node.attrs[2]
                  and all(e.op == "loop" or e == indexexpr.const(0) for e in node.attrs[0])):
            break
        node = node.inputs[0]
    return node, broadcast


def _matmul_operands(node):
    """The two operand sources when ``node`` is a matrix-product reduction, else ()."""
    if node.op != "reduce" or node.attrs[0] != "sum" or len(node.attrs[1]) != 1:
        return ()
    product = node.inputs[0]
    if product.op != "mul" or product.is_realised:
        return ()
    peeled = [_plain_view_source(operand) for operand in product.inputs]
    if not all(broadcast for _, broadcast in peeled):
        return ()
    return [source for source, _ in peeled]


# Element-wise ops cheap enough to recompute in each consumer instead of storing them.
_CHEAP_OPS = frozenset(("add", "sub", "mul", "neg", "maximum", "minimum"))
_STORED_OPS = ("reduce", "reindex_reduce", "library")  # always materialised by `_fuse`


def _worth_duplicating(node, kernels, costs):
    """Whether to recompute ``node`` in each of its consumer ``kernels`` instead of storing
    it: one cheap op over a full-size input and small (broadcast) operands moves less
    memory recomputed (each consumer reads that input) than stored (written once, then
    read by every consumer). Only a single op: deeper chains recompute per element what
    the compiler may not hoist (per-channel divisions, square roots)."""
    if node.op not in _CHEAP_OPS or len(kernels) > costs.duplicate_max_kernels:
        return False
    size = numel(node.shape)
    full = 0
    for operand in node.inputs:
        source = operand
        while not source.is_realised and source.op == "broadcast_to":
            source = source.inputs[0]
        if source.op in _ALWAYS_INLINED:
            continue
        if numel(source.shape) == size and source is operand and (source.is_realised or source.op in _STORED_OPS):
            full += 1
        elif numel(source.shape) * 64 > size or source is operand:
            return False
    return full == 1


def _consumer_kernels(node, consumers, owners):
    """The kernels (by root id) that would inline ``node``: those of its consumers."""
    return frozenset().union(*(owners[id(c)] for c in consumers.get(id(node), ())))


def _is_identity_cast(node):
    """A cast to the value's own dtype (what ``detach`` records): a plain read."""
    return node.op == "cast" and node.dtype == node.inputs[0].dtype


def _choose_materialised(order, consumers, forced, costs):
    """Materialise forced nodes, expensive nodes whose consumers fall in several kernels,
    and nodes a kernel element would evaluate at more than ``costs.max_inlined_reads``
    positions (returned as the second result).

    A kernel is named by its root (a materialised node); walking consumers first, each
    node learns the set of kernels that would inline it. Leaves, index-only nodes and
    identity casts (detached values: BatchNorm's shift) are never stored for sharing:
    they are cheap to recompute, so sharing passes to their source; so is one cheap op
    over a stored input (`_worth_duplicating`).
    """
    materialised = set()
    owners = {}
    read_paths = {}
    widely_read = set()  # stored for their reads: recomputing them is what storing avoids
    for node in reversed(order):
        if node.is_realised:
            continue
        if id(node) in forced:
            materialised.add(id(node))
            owners[id(node)] = frozenset((id(node),))
            read_paths[id(node)] = _AT_ROOT
            continue
        kernels = _consumer_kernels(node, consumers, owners)
        storable = node.op not in _ALWAYS_INLINED and node.op not in _INDEX_ONLY and not _is_identity_cast(node)
        paths = _AT_ROOT
        if len(kernels) > 1 and storable and not _worth_duplicating(node, kernels, costs):
            materialised.add(id(node))
            kernels = frozenset((id(node),))
        else:
            paths = _read_paths(node, consumers, read_paths)
            if len(paths) > costs.max_inlined_reads and storable:
                materialised.add(id(node))
                widely_read.add(id(node))
                kernels, paths = frozenset((id(node),)), _AT_ROOT
        owners[id(node)] = kernels
        read_paths[id(node)] = paths
    _recompute_cheap_chains(order, consumers, forced | widely_read, materialised, owners, costs)
    _limit_inlined_depth(order, materialised, costs.max_inlined_depth)
    return materialised, widely_read


_AT_ROOT = frozenset(((),))


def _read_paths(node, consumers, read_paths):
    """The positions at which the kernels inlining ``node`` evaluate it per element, as the
    index-changing nodes (reindex, broadcast) on each way from a kernel's root to it: ways
    through the same ones read the same position and share one value."""
    paths = set()
    for consumer in consumers.get(id(node), ()):
        if consumer.is_realised:
            continue
        above = read_paths[id(consumer)]
        if consumer.op in _INDEX_ONLY:
            above = [path + (id(consumer),) for path in above]
        paths.update(above)
    return frozenset(paths)


_CHAIN_OPS = _CHEAP_OPS | frozenset(opset.COMPARISON_BINARY) | {"cast", "select", "abs"}


def _chain_leaves(node, materialised, max_ops):
    """The stored values (element count by id) a short chain of cheap element-wise ops
    rooted at ``node`` reads, through gathers without index inputs and broadcasts; None
    when the chain is longer than ``max_ops``, holds another op, or reads a value
    that is not stored. Cheap ops on values at most 1/64 of ``node``'s size (per-channel
    statistics folded into a scale and shift, as BatchNorm's output is) and casts do not
    count toward ``max_ops``: recomputing them per element costs a few flops."""
    size = numel(node.shape)
    leaves, ops, pending = {}, 0, [node]
    while pending:
        current = pending.pop()
        if current is not node and (current.is_realised or id(current) in materialised):
            leaves[id(current)] = numel(current.shape)
            continue
        if current.op in _ALWAYS_INLINED:
            continue
        if current.op == "broadcast_to" or (current.op == "reindex" and len(current.inputs) == 1):
            pending.append(current.inputs[0])
            continue
        if current.op not in _CHAIN_OPS:
            return None
        if numel(current.shape) * 64 > size and current.op != "cast":  # (a conversion: about free)
            ops += 1
            if ops > max_ops:
                return None
        pending.extend(current.inputs)
    return leaves


def _recompute_cheap_chains(order, consumers, forced, materialised, owners, costs):
    """Un-store a node that is a short chain of cheap ops over stored values when its
    consumer kernels recomputing it read less memory than storing it costs (a write, a
    read per consumer kernel, and the producer kernel's own reads): max-pooling's
    gradient mask ``x == window max`` is recomputed by the count and the scatter kernels
    instead of being written and read twice."""
    for node in order:
        if id(node) not in materialised or id(node) in forced or node.is_realised:
            continue
        kernels = _consumer_kernels(node, consumers, owners)
        if len(kernels) > costs.duplicate_max_kernels:
            continue
        leaves = _chain_leaves(node, materialised, costs.chain_max_ops)
        if leaves is None:
            continue
        read = sum(leaves.values())
        if len(kernels) * read < numel(node.shape) * (1 + len(kernels)) + read:
            materialised.discard(id(node))
            owners[id(node)] = kernels


def _limit_inlined_depth(order, materialised, max_depth):
    """Also materialise nodes whose inlined value tree would grow deeper than
    ``max_depth`` (a chain of 20000 adds becomes kernels of 64 levels, not one
    expression no compiler or recursive walk handles)."""
    depth = {}
    for node in order:
        if node.is_realised or id(node) in materialised:
            continue
        level = 1 + max([depth.get(id(i), 0) for i in node.inputs], default=0)
        if level > max_depth:
            materialised.add(id(node))
            level = 0
        depth[id(node)] = level


class _KernelBuilder:
    """Builds one kernel's value tree; inputs are deduplicated into slots."""

    def __init__(self, root, materialised, domain, co_stored=()):
        self.root = root
        self.co_stored = {id(n) for n in co_stored}
        self.materialised = materialised
        self.domain = domain
        self.slots = {}
        self.input_nodes = []
        self.parameter_slots = {}
        self.parameter_nodes = []
        self.memo = {}

    def slot(self, node):
        found = self.slots.get(id(node))
        if found is None:
            found = self.slots[id(node)] = len(self.input_nodes)
            self.input_nodes.append(node)
        return found

    def parameter(self, node):
        """User constants become launch parameters, so their values never key a kernel."""
        slot = self.parameter_slots.get(id(node))
        if slot is None:
            slot = self.parameter_slots[id(node)] = len(self.parameter_nodes)
            self.parameter_nodes.append(node)
        return K.parameter(slot, node.dtype)

    def is_loaded(self, node):
        return node is not self.root and id(node) not in self.co_stored and (
            node.is_realised or id(node) in self.materialised)

    def value(self, node, index):
        key = (id(node), index)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self._compute(node, index)
        return found

    def _compute(self, node, index):
        if self.is_loaded(node):
            return K.load(self.slot(node), index, node.dtype)
        op = node.op
        if op == "constant":
            return self.parameter(node)
        if op == "index":
            return K.index_value(index[node.attrs[0]], node.dtype)
        if op == "broadcast_to":
            source = node.inputs[0]
            offset = len(node.shape) - len(source.shape)
            source_index = tuple(
                indexexpr.const(0) if size == 1 and node.shape[offset + axis] != 1
                else index[offset + axis] for axis, size in enumerate(source.shape))
            return self.value(source, source_index)
        if op == "reindex":
            return self._reindex_value(node, index)
        if op == "custom_grad":  # a value with a user-written gradient: its first input's value
            return self.value(node.inputs[0], index)
        operands = [self.value(i, index) for i in node.inputs]
        return K.apply(op, operands, node.dtype)

    def extra_slots(self, node):
        return [self.slot(e) for e in node.inputs[1:]]

    def in_range(self, exprs, shape):
        """Conditions that ``exprs`` index inside ``shape`` (only those not provable)."""
        conditions = []
        for expr, size in zip(exprs, shape):
            low, high = indexexpr.bounds(expr, self.domain)
            if low < 0:
                conditions.append(indexexpr.binary("ge", expr, 0))
            if high >= size:
                conditions.append(indexexpr.binary("lt", expr, size))
        return conditions

    def mapped_index(self, node, exprs, overflow_conditions, index, target_shape):
        """A reindex(_reduce) node's expressions in this kernel's loops, and when they are valid:
        inside ``target_shape`` and with no overflow condition holding."""
        extra_slots = self.extra_slots(node)
        mapped = tuple(indexexpr.simplify(indexexpr.substitute(e, index, extra_slots), self.domain)
                       for e in exprs)
        valid = self.in_range(mapped, target_shape)
        valid += [indexexpr.logical_not(indexexpr.substitute(c, index, extra_slots))
                  for c in overflow_conditions]
        return mapped, indexexpr.all_of(valid)

    def _reindex_value(self, node, index):
        exprs, overflow_value, overflow_conditions = node.attrs
        source = node.inputs[0]
        source_index, condition = self.mapped_index(node, exprs, overflow_conditions, index,
                                                    source.shape)
        if condition == indexexpr.const(0) or numel(source.shape) == 0:
            return K.constant(overflow_value, node.dtype)
        inner = self.value(source, source_index)
        if condition == indexexpr.const(1):
            return inner
        return K.apply("select", [K.index_value(condition, dtypes.bool_), inner,
                                  K.constant(overflow_value, node.dtype)], node.dtype)


def _build_step(node, materialised, co_stored=()):
    """The kernel step computing materialised ``node``; ``co_stored`` are nodes it computes
    inline and stores as further outputs: element-wise nodes of its shape (`_siblings`),
    or reductions like ``node`` over the same domain (`_sibling_reductions`)."""
    if node.op == "library":
        return Step(library_ops.call_of(node), list(node.inputs), [node])
    if node.op in ("reduce", "reindex_reduce"):
        domain = node.inputs[0].shape
    else:
        domain = node.shape
    builder = _KernelBuilder(node, materialised, domain, co_stored)
    loops = tuple(indexexpr.loop(a) for a in range(len(domain)))
    condition = None
    reduce_op = None
    if node.op == "reduce":
        reduce_op, axes, keepdims = node.attrs
        value = builder.value(node.inputs[0], loops)
        index = tuple(indexexpr.const(0) if axis in axes else loops[axis]
                      for axis in range(len(domain)) if keepdims or axis not in axes)
    elif node.op == "reindex_reduce":
        reduce_op, exprs, overflow_conditions = node.attrs
        value = builder.value(node.inputs[0], loops)
        index, condition = builder.mapped_index(node, exprs, overflow_conditions, loops, node.shape)
    else:
        value = builder._compute(node, loops)
        index = loops
    outputs = [node] + list(co_stored)
    stores = [K.Store(0, index, value, reduce_op, condition)]
    stores += [K.Store(slot, index, builder.value(sibling.inputs[0], loops), reduce_op) if sibling.op == "reduce"
               else K.Store(slot, loops, builder.value(sibling, loops)) for slot, sibling in enumerate(co_stored, 1)]
    kernel = K.Kernel(domain, [(n.dtype, n.shape) for n in builder.input_nodes],
                      [(n.dtype, n.shape) for n in outputs], stores, [p.dtype for p in builder.parameter_nodes])
    return Step(kernel, builder.input_nodes, outputs, builder.parameter_nodes)
