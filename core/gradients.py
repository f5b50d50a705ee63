"""Gradients as users see them: `grad`, `vjp`, `jvp`, ``Var.backward``, and each
meta-op's gradient rule, registered with the node-level mechanism in `metajit.passes.autodiff`.

Every rule builds its result from meta-ops through the front end, so gradients are
lazy Vars that can be differentiated again (grads of any order).
"""
import math
import weakref

from .passes import autodiff
from .ir import dtypes, graph, indexexpr
from .errors import MetajitValueError
from .passes.fusion import is_pure_reshape
from .math_ops import as_node, binary, cast, unary, where, wrap
from .var import Var


def _unbroadcast_sum(g, x_shape, axes):
    from .reductions import sum as reduce_sum
    from .shape_ops import reshape
    return reshape(reduce_sum(g, dim=axes), x_shape) if axes else reshape(g, x_shape)


def _expand_reduced(value, node):
    """Broadcast a reduce node's output (or its grad) back over the reduced input shape."""
    from .shape_ops import reshape
    op, axes, keepdims = node.attrs
    source_shape = node.inputs[0].shape
    kept = [1 if a in axes else s for a, s in enumerate(source_shape)]
    return wrap(graph.broadcast_to(reshape(value, kept)._node, source_shape))


def _zero_safe_product_grad(g_expanded, x, product_of, expand):
    """d prod / dx_i = prod of the others, computed without dividing by zero."""
    is_zero = binary("eq", x, 0)
    nonzero_product = expand(product_of(where(is_zero, 1.0, x)))
    zero_count = expand(product_of.count_zeros(is_zero))
    only_zero_here = binary("logical_and", binary("eq", zero_count, 1), is_zero)
    others = where(binary("eq", zero_count, 0), binary("div", nonzero_product, where(is_zero, 1.0, x)),
                   where(only_zero_here, nonzero_product, 0.0))
    return binary("mul", g_expanded, others)


def _reduce_rule(node, g, inputs, out):
    op, axes, _ = node.attrs
    x = inputs[0]
    g_expanded = _expand_reduced(g, node)
    if op == "sum":
        return [g_expanded]
    if op in ("max", "min"):
        out_expanded = _expand_reduced(out, node)
        hits = cast(binary("eq", x, out_expanded), x.dtype)
        from .reductions import sum as reduce_sum
        count = _expand_reduced(reduce_sum(hits, dim=axes, keepdims=node.attrs[2]), node)
        return [binary("mul", g_expanded, binary("div", hits, count))]
    if op == "prod":
        from .reductions import prod, sum as reduce_sum

        def product_of(v):
            return prod(v, dim=axes, keepdims=node.attrs[2])
        product_of.count_zeros = lambda mask: reduce_sum(cast(mask, dtypes.int32), dim=axes,
                                                         keepdims=node.attrs[2])
        return [_zero_safe_product_grad(g_expanded, x, product_of,
                                        lambda v: _expand_reduced(v, node))]
    return [None]


def _broadcast_rule(node, g, inputs, out):
    source_shape = node.inputs[0].shape
    offset = len(node.shape) - len(source_shape)
    axes = list(range(offset)) + [offset + a for a, s in enumerate(source_shape)
                                  if s == 1 and node.shape[offset + a] != 1]
    return [_unbroadcast_sum(g, source_shape, axes)]


def _extras(node):
    return [wrap(e) for e in node.inputs[1:]]


def _inverse_of_relabel(node):
    """For a reindex that reads each source element at most once through affine index
    expressions of one loop index, or of two in mixed radix (``i2*2 + i4`` with ``i4 < 2``:
    non-overlapping windows), as slices, permutes, flips, squeezes, int indexing, reshapes
    and stride=kernel pooling produce, the inverse gather: ``(expressions over source
    loops, overflow conditions)``; else None."""
    exprs, _, conditions = node.attrs
    source = node.inputs[0]
    if len(node.inputs) > 1:
        return None
    if graph.numel(node.shape) == graph.numel(source.shape) and not conditions and \
            tuple(exprs) == indexexpr.reshape_exprs(source.shape, node.shape):
        return indexexpr.reshape_exprs(node.shape, source.shape), []
    inverse, extra_conditions = [None] * len(node.shape), []
    for axis, expr in enumerate(exprs):
        form = indexexpr.linear_form(expr)
        if form is None or len(form[0]) > 2:
            return None
        coefficients, offset = form
        position = indexexpr.loop(axis)
        if not coefficients:
            if source.shape[axis] != 1:
                extra_conditions.append(indexexpr.binary("ne", position, offset))
            continue
        shifted = position - offset
        if len(coefficients) == 2:
            # mixed radix, e.g. a pooling window i2*2 + i4 with 0 <= i4 < 2
            (outer, scale), (inner, unit) = sorted(coefficients.items(), key=lambda item: -abs(item[1]))
            if unit != 1 or scale <= node.shape[inner] - 1 or inverse[outer] is not None \
                    or inverse[inner] is not None:
                return None
            inverse[outer], inverse[inner] = shifted // scale, shifted % scale
            if node.shape[inner] < scale:
                extra_conditions.append(indexexpr.binary("ge", shifted % scale, node.shape[inner]))
            continue
        ((out_axis, scale),) = coefficients.items()
        if inverse[out_axis] is not None:
            return None
        inverse[out_axis] = shifted // scale
        if abs(scale) != 1:
            extra_conditions.append(indexexpr.binary("ne", shifted % scale, 0))
    for out_axis, size in enumerate(node.shape):
        if inverse[out_axis] is None:
            if size != 1:
                return None
            inverse[out_axis] = indexexpr.const(0)
    extra_conditions += [indexexpr.substitute(c, inverse) for c in conditions]
    return inverse, extra_conditions


def _unmasked(g, exprs, domain):
    """``g`` without its outer selects whose index condition holds, or fails, at every
    position the gather ``exprs`` (over loops of ``domain``) reads. A concatenation is a
    select tree over its pieces, so each piece's gradient arrives masked to the piece's
    channels, through one select per tree level; read where it lies, the piece's gradient
    is the output gradient itself (DenseNet stored each level's masked gradient)."""
    while g.op == "select" and not g.is_realised:
        holds = _index_condition_over(g.inputs[0], exprs, domain)
        if holds is None:
            break
        g = g.inputs[1] if holds else g.inputs[2]
    return g


def _index_condition_over(condition, exprs, domain):
    """Whether ``position < bound`` (`graph.select_below`'s condition) holds at every
    position the gather ``exprs`` reads (True), at none (False), or either (None)."""
    if condition.op != "lt" or condition.is_realised:
        return None
    position, bound = condition.inputs
    if position.op != "index" or position.is_realised or bound.op != "broadcast_to" \
            or bound.inputs[0].op != "constant":
        return None
    low, high = indexexpr.bounds(exprs[position.attrs[0]], domain)
    limit = bound.inputs[0].attrs[0]
    return True if high < limit else False if low >= limit else None


def _product_sum_permuted(g, inverse):
    """When the gradient ``g`` is a sum of a product (a matrix product's gradient) and
    the relabel ``inverse`` only permutes its axes, the same sum laid out in the permuted
    order, so the product is written in the order its consumers read (a Linear layer's
    weight gradient comes out as (out, in), not transposed); else None."""
    exprs, conditions = inverse
    shape = g.shape
    while not g.is_realised and is_pure_reshape(g):  # reshapes that cancel out (unsqueeze, squeeze)
        g = g.inputs[0]
    if conditions or g.shape != shape or g.op != "reduce" or g.attrs[0] != "sum" or g.attrs[2] \
            or g.is_realised:
        return None
    product = g.inputs[0]
    if product.op != "mul" or product.is_realised or any(e.op != "loop" for e in exprs):
        return None
    source_of = [e.args[0] for e in exprs]   # gradient axis k lands on result axis source_of[k]
    if sorted(source_of) != list(range(len(exprs))) or source_of == sorted(source_of):
        return None
    reduced = g.attrs[1]
    kept = [a for a in range(len(product.shape)) if a not in reduced]
    order = [kept[source_of.index(axis)] for axis in range(len(kept))] + list(reduced)
    permuted = graph.elementwise("mul", [graph.permute(operand, order) for operand in product.inputs])
    return graph.reduce("sum", permuted, tuple(range(len(kept), len(order))))


def _reindex_rule(node, g, inputs, out):
    exprs, _, conditions = node.attrs
    source = node.inputs[0]
    inverse = _inverse_of_relabel(node)
    if inverse is not None:
        permuted = _product_sum_permuted(g._node, inverse)
        if permuted is not None:
            return [wrap(permuted)]
        read = _unmasked(g._node, inverse[0], source.shape)
        return [wrap(graph.reindex(read, source.shape, inverse[0], 0, inverse[1]))]
    scattered = graph.reindex_reduce("sum", g._node, source.shape, exprs, conditions,
                                     [e._node for e in _extras(node)])
    return [wrap(scattered)] + [None] * (len(node.inputs) - 1)


def _reindex_reduce_rule(node, g, inputs, out):
    op, exprs, conditions = node.attrs
    x = inputs[0]
    extras = [e._node for e in _extras(node)]
    none_for_extras = [None] * len(extras)

    def gather(value, fill=0):
        return wrap(graph.reindex(value._node, x.shape, exprs, fill, conditions, extras))

    if op == "sum":
        return [gather(g)] + none_for_extras
    if op in ("max", "min"):
        hits = cast(binary("eq", x, gather(out)), x.dtype)
        count = wrap(graph.reindex_reduce("sum", hits._node, node.shape, exprs, conditions, extras))
        return [binary("mul", gather(g), binary("div", hits, gather(count, 1)))] + none_for_extras
    if op == "prod":
        def product_of(v):
            return wrap(graph.reindex_reduce("prod", v._node, node.shape, exprs, conditions, extras))
        product_of.count_zeros = lambda mask: wrap(graph.reindex_reduce(
            "sum", cast(mask, dtypes.int32)._node, node.shape, exprs, conditions, extras))
        return [_zero_safe_product_grad(gather(g), x, product_of, gather)] + none_for_extras
    return [None] + none_for_extras


def _pow_rule(node, g, inputs, out):
    a, b = inputs
    grad_a = binary("mul", g, binary("mul", b, binary("pow", a, binary("sub", b, 1))))
    log_a = unary("log", where(binary("gt", a, 0), a, 1.0))
    grad_b = where(binary("gt", a, 0), binary("mul", g, binary("mul", out, log_a)), 0.0)
    return [grad_a, grad_b]


def _is_constant(node):
    return node.op == "constant" or (node.op == "broadcast_to" and node.inputs[0].op == "constant")


def _extreme_rule(prefer):
    """maximum's (``prefer="gt"``) or minimum's gradient: to the winner, split evenly on a
    tie between two values (as ``torch.maximum``); a tie with a constant passes nothing, so
    ``maximum(x, 0)`` is ReLU with PyTorch's gradient, 0 at 0 (and ReLU6 at 0 and 6)."""
    def rule(node, g, inputs, out):
        a, b = inputs
        a_wins = cast(binary(prefer, a, b), g.dtype)
        if _is_constant(b._node):
            return [binary("mul", g, a_wins), None]
        if _is_constant(a._node):
            return [None, binary("mul", g, cast(binary(prefer, b, a), g.dtype))]
        tie = binary("mul", cast(binary("eq", a, b), g.dtype), 0.5)
        return [binary("mul", g, binary("add", a_wins, tie)),
                binary("mul", g, binary("sub", binary("sub", 1.0, a_wins), tie))]
    return rule


def _unary(derivative):
    return lambda node, g, inputs, out: [binary("mul", g, derivative(inputs[0], out))]


def _square(v):
    return binary("mul", v, v)


_SQRT_PI_2 = 2.0 / math.sqrt(math.pi)

_RULES = {  # Var-level rules: (node, grad, inputs, out) -> [Var or None per input]
    "neg": lambda n, g, i, o: [unary("neg", g)],
    "abs": _unary(lambda x, o: cast(binary("sub", cast(binary("gt", x, 0), x.dtype),
                                           cast(binary("lt", x, 0), x.dtype)), x.dtype)),
    "exp": _unary(lambda x, o: o),
    "log": lambda n, g, i, o: [binary("div", g, i[0])],
    "log1p": lambda n, g, i, o: [binary("div", g, binary("add", i[0], 1.0))],
    "expm1": _unary(lambda x, o: binary("add", o, 1.0)),
    "sqrt": lambda n, g, i, o: [binary("div", binary("mul", g, 0.5), o)],
    "sin": _unary(lambda x, o: unary("cos", x)),
    "cos": _unary(lambda x, o: unary("neg", unary("sin", x))),
    "tan": _unary(lambda x, o: binary("add", 1.0, _square(o))),
    "asin": lambda n, g, i, o: [binary("div", g, unary("sqrt", binary("sub", 1.0, _square(i[0]))))],
    "acos": lambda n, g, i, o: [unary("neg", binary(
        "div", g, unary("sqrt", binary("sub", 1.0, _square(i[0])))))],
    "atan": lambda n, g, i, o: [binary("div", g, binary("add", 1.0, _square(i[0])))],
    "sinh": _unary(lambda x, o: unary("cosh", x)),
    "cosh": _unary(lambda x, o: unary("sinh", x)),
    "tanh": _unary(lambda x, o: binary("sub", 1.0, _square(o))),
    "asinh": lambda n, g, i, o: [binary("div", g, unary("sqrt", binary("add", _square(i[0]), 1.0)))],
    "acosh": lambda n, g, i, o: [binary("div", g, unary("sqrt", binary("sub", _square(i[0]), 1.0)))],
    "atanh": lambda n, g, i, o: [binary("div", g, binary("sub", 1.0, _square(i[0])))],
    "sigmoid": _unary(lambda x, o: binary("mul", o, binary("sub", 1.0, o))),
    "erf": _unary(lambda x, o: binary("mul", unary("exp", unary("neg", _square(x))), _SQRT_PI_2)),
    "cast": lambda n, g, i, o: [cast(g, n.inputs[0].dtype) if dtypes.is_float(n.inputs[0].dtype) else None],
    "add": lambda n, g, i, o: [g, g],
    "sub": lambda n, g, i, o: [g, unary("neg", g)],
    "mul": lambda n, g, i, o: [binary("mul", g, i[1]), binary("mul", g, i[0])],
    "div": lambda n, g, i, o: [binary("div", g, i[1]), unary("neg", binary("div", binary("mul", g, o), i[1]))],
    "mod": lambda n, g, i, o: [g, unary("neg", binary("mul", g, binary("floor_div", i[0], i[1])))],
    "pow": _pow_rule,
    "maximum": _extreme_rule("gt"),
    "minimum": _extreme_rule("lt"),
    "select": lambda n, g, i, o: [None, where(i[0], g, 0.0), where(i[0], 0.0, g)],
    "broadcast_to": _broadcast_rule,
    "reduce": _reduce_rule,
    "reindex": _reindex_rule,
    "reindex_reduce": _reindex_reduce_rule,
}


def _register(op, rule):
    """Register a Var-level ``rule(node, grad, inputs, out) -> [Var or None]`` for ``op``
    with the node-level mechanism."""
    def node_rule(node, g):
        values = rule(node, wrap(g), [wrap(i) for i in node.inputs], wrap(node))
        return [None if value is None else value._node for value in values]
    autodiff.register_rule(op, node_rule)


for _op, _rule in _RULES.items():
    _register(_op, _rule)
del _op, _rule


def grad(loss, targets, retain_graph=True):
    """Gradients of ``loss`` with respect to ``targets`` (a Var or a list), as lazy Vars.

    A non-scalar ``loss`` is summed first (as in Jittor). Targets the loss does not
    depend on get zeros. The result can be differentiated again::

        dy = jt.grad(y, x)
        d2y = jt.grad(dy.sum(), x)

    ``retain_graph`` is accepted for Jittor compatibility: the graph is always kept
    while Vars refer to it and freed by reference counting.
    """
    single = isinstance(targets, Var)
    target_list = [targets] if single else list(targets)
    for target in target_list:
        if not isinstance(target, Var):
            raise MetajitValueError(f"grad targets must be Vars, got {type(target).__name__}")
    results = _gradients(_scalar_loss(loss), target_list)
    return results[0] if single else results


def _scalar_loss(loss):
    """``loss`` checked (a float Var) and summed to a scalar (Jittor's rule)."""
    if not isinstance(loss, Var):
        raise MetajitValueError(f"grad needs a Var loss, got {type(loss).__name__}")
    if not dtypes.is_float(loss.dtype):
        raise MetajitValueError(f"grad needs a float loss, got {loss.dtype}")
    from .reductions import sum as reduce_sum
    return reduce_sum(loss) if loss.ndim else loss


def _gradients(loss, targets, order=None):
    """Gradient Vars of the scalar ``loss`` for each target Var (zeros where it does not
    depend on one); ``order``: the loss's `autodiff.graph_order`, when the caller has it."""
    from .creation import ones, zeros
    nodes = autodiff.target_gradients(loss._node, ones((), dtype=loss.dtype)._node, [t._node for t in targets],
                                      order)
    return [wrap(node) if node is not None else
            zeros(target.shape, dtype=target.dtype if dtypes.is_float(target.dtype) else dtypes.DEFAULT_FLOAT)
            for target, node in zip(targets, nodes)]


_tracked_leaves = weakref.WeakValueDictionary()


def track_grad(var):
    """Make ``var`` a leaf whose ``.grad`` `backward` fills (module parameters, requires_grad_())."""
    _tracked_leaves[id(var)] = var


def takes_gradient(var):
    """Whether `backward` can reach ``var``: a computed Var that needs gradients, or a leaf
    whose ``.grad`` it fills (PyTorch's ``requires_grad``; a new float Var needs gradients
    in Jittor's sense but is no target of ``backward`` until ``requires_grad_()``)."""
    return var.requires_grad and (not is_leaf(var) or _tracked_leaves.get(id(var)) is var)


_retaining = weakref.WeakValueDictionary()  # non-leaf Vars whose .grad `backward` fills


def retain_grad(var):
    """PyTorch's ``y.retain_grad()``: `backward` also fills ``y.grad`` for this computed Var
    (a leaf's is filled anyway). Example::

        y = x * 2; y.retain_grad(); (y * y).sum().backward()   # y.grad == 2 * y
    """
    if not var.requires_grad:
        raise MetajitValueError("retain_grad() on a Var that does not require gradients: it is "
                                "a constant for autodiff (stop_grad, no_grad or not a float)")
    if not is_leaf(var):
        _retaining[id(var)] = var


def retains_grad(var):
    """Whether `retain_grad` was called on this computed Var."""
    return _retaining.get(id(var)) is var


def is_leaf(var):
    """PyTorch's ``is_leaf``: a Var that no gradient flows through to others — one made by
    the user (``jt.array``, a parameter), a detached one, or one that needs no gradient."""
    node = var._node
    return not node.needs_inputs_for_grad or not node.inputs


class HookHandle:
    """What `register_hook` returns: ``remove()`` takes the hook away (usable as a context
    manager, as PyTorch's ``RemovableHandle``)."""

    def __init__(self, remove):
        self.remove = remove

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.remove()


def register_hook(var, hook):
    """PyTorch's ``x.register_hook(hook)``: every backward pass (``backward``, `grad`)
    through ``x`` calls ``hook(gradient)`` with x's gradient (a Var, the sum over its
    uses); a Var it returns replaces that gradient from there on (in ``x.grad`` too, for a
    leaf), None keeps it. Returns a handle whose ``remove()`` takes the hook away::

        handle = h.register_hook(lambda g: g.clamp(-1, 1))
    """
    if not var.requires_grad:
        raise MetajitValueError("register_hook on a Var that does not require gradients: no "
                                "gradient flows into it (stop_grad, no_grad or not a float)")
    if not callable(hook):
        raise MetajitValueError(f"register_hook needs a function of the gradient, got {type(hook).__name__}")
    shape, dtype = var.shape, var.dtype

    def on_gradient(gradient_node):
        result = hook(wrap(gradient_node))
        if result is None:
            return gradient_node
        if not isinstance(result, Var) or tuple(result.shape) != tuple(shape):
            got = f"shape {tuple(result.shape)}" if isinstance(result, Var) else type(result).__name__
            raise MetajitValueError(f"the hook {getattr(hook, '__name__', hook)!r} returned {got} for a "
                                    f"gradient of shape {tuple(shape)}: return a Var of that shape or None")
        return (result if result.dtype == dtype else cast(result, dtype))._node
    return HookHandle(autodiff.add_gradient_hook(var._node, on_gradient))


def backward(loss, weight=None, create_graph=False):
    """Accumulate d(loss)/d(leaf) into ``.grad`` of the tracked leaves ``loss`` depends on
    (and of computed Vars given `retain_grad`), in one backward pass; see
    `metajit.Var.backward`."""
    if weight is not None:
        loss = binary("mul", loss, weight)
    elif loss.numel() != 1:
        raise MetajitValueError(
            f"backward() of a Var of shape {tuple(loss.shape)} needs its gradient: pass "
            f"`y.backward(weights)` with weights of that shape, or reduce it first "
            f"(`y.sum().backward()`, `y.mean().backward()`), as PyTorch requires")
    if not loss.requires_grad:
        raise MetajitValueError("backward() on a Var that does not require gradients: it does "
                                "not depend on any trainable Var (or was computed under no_grad)")
    loss = _scalar_loss(loss)
    order = autodiff.graph_order(loss._node)
    in_graph = {id(n) for n in order}
    kept = dict(list(_tracked_leaves.items()) + list(_retaining.items()))
    accumulate_grads(loss, [v for v in kept.values() if v.requires_grad and id(v._node) in in_graph],
                     create_graph, order)


def accumulate_grads(loss, leaves, create_graph=False, order=None):
    """Add d(loss)/d(leaf) to ``leaf.grad`` for every leaf, in one backward pass.

    Without ``create_graph`` (PyTorch's default) the new ``.grad`` values are not
    differentiable: once realised they keep no history, so the step's graph (activations,
    old parameters) is freed instead of staying reachable from ``.grad``. ``order``: the
    scalar loss's `autodiff.graph_order`, when the caller has it."""
    if not leaves:
        return
    loss = _scalar_loss(loss)
    if order is None:
        order = autodiff.graph_order(loss._node)
    in_graph = set() if create_graph else {id(n) for n in order}
    for leaf, value in zip(leaves, _gradients(loss, leaves, order)):
        total = value if leaf.grad is None else binary("add", leaf.grad, value)
        if not create_graph and id(total._node) not in in_graph and not total._node.is_realised:
            total._node.grad_boundary = True  # a node of the backward pass only: no forward node changes
        leaf.grad = total
    if _post_accumulate_hooks:
        for leaf in leaves:
            for hook in list(_post_accumulate_hooks.get(id(leaf), ())):
                hook(leaf)


_post_accumulate_hooks = {}  # id(leaf Var) -> [hook(leaf)], an entry dropped with its Var


def zero_grads(parameters, set_to_none=True):
    """``zero_grad`` of optimisers and modules: every ``.grad`` becomes None, or with
    ``set_to_none=False`` a gradient that exists becomes zeros (as PyTorch's: an optimiser
    then still steps a parameter the next loss does not reach, with its momentum and
    weight decay)."""
    from .creation import zeros
    for parameter in parameters:
        if set_to_none or parameter.grad is None:
            parameter.grad = None
        else:
            parameter.grad = zeros(parameter.grad.shape, dtype=parameter.grad.dtype)


def register_post_accumulate_grad_hook(var, hook):
    """PyTorch's ``p.register_post_accumulate_grad_hook(hook)``: ``hook(p)`` runs after each
    backward pass (``backward``, an optimiser's ``step(loss)``) has added to ``p.grad``, for
    a leaf Var such as a parameter. Returns a handle whose ``remove()`` takes it away::

        p.register_post_accumulate_grad_hook(lambda p: p.grad.clamp_(-1, 1))
    """
    if not is_leaf(var) or not var.requires_grad:
        raise MetajitValueError("register_post_accumulate_grad_hook needs a leaf Var that takes gradients "
                                "(a parameter, or a Var given requires_grad_())")
    key = id(var)
    if key not in _post_accumulate_hooks:
        _post_accumulate_hooks[key] = []
        weakref.finalize(var, _post_accumulate_hooks.pop, key, None)
    hooks = _post_accumulate_hooks[key]
    entry = lambda leaf: hook(leaf)  # noqa: E731  (its own identity: the same hook added twice is removed once)
    hooks.append(entry)
    return HookHandle(lambda: entry in hooks and hooks.remove(entry))


def vjp(function, primals, cotangents):
    """Vector-Jacobian product: ``(function(*primals), cotangents^T J)`` as lazy Vars.

    Example: ``out, (gx,) = jt.vjp(lambda x: x * x, [x], [ones])``.
    """
    primals = [p if isinstance(p, Var) else wrap(as_node(p)) for p in primals]
    inputs = [p.detach().requires_grad_() if dtypes.is_float(p.dtype) else p for p in primals]
    output = function(*inputs)
    outputs = output if isinstance(output, (list, tuple)) else [output]
    cotangents = cotangents if isinstance(cotangents, (list, tuple)) else [cotangents]
    total = None
    for out, cotangent in zip(outputs, cotangents):
        from .reductions import sum as reduce_sum
        term = reduce_sum(binary("mul", out, cotangent))
        total = term if total is None else binary("add", total, term)
    return output, grad(total, inputs)


def jvp(function, primals, tangents):
    """Jacobian-vector product ``(function(*primals), J tangents)`` via the transpose trick
    (the VJP is linear in its cotangent, so differentiating it again gives the JVP)."""
    primals = [p if isinstance(p, Var) else wrap(as_node(p)) for p in primals]
    inputs = [p.detach().requires_grad_() for p in primals]
    output = function(*inputs)
    from .creation import zeros
    dummy = zeros(output.shape, dtype=output.dtype).requires_grad_()
    from .reductions import sum as reduce_sum
    pulled = grad(reduce_sum(binary("mul", output, dummy)), inputs)
    total = None
    for pulled_i, tangent in zip(pulled, tangents):
        term = reduce_sum(binary("mul", pulled_i, tangent))
        total = term if total is None else binary("add", total, term)
    return output, grad(total, dummy)
