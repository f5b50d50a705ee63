"""C-style code generation shared by every C-family backend (host C++, CUDA, BANG-style).

`CStyleRenderer` turns the parts of a `Kernel` every backend renders the same way into
C text: index expressions, element offsets, the value tree (one local per shared
subtree), literals, casts, parameter reads and the element-wise meta-ops with the
semantics of `metajit.ir.opset.SEMANTICS` (the helpers live in the common `prelude`). A
backend subclasses it, overrides spellings where its dialect differs (class-level
tables and small methods) and writes only its loop structure in `render`.

Example, a serial host renderer (see ``sdk/templates/serial_backend.py``)::

    class SerialRenderer(CStyleRenderer):
        def render(self):
            lines = self.signature("kernel") + self.pointer_declarations()
            for store in self.kernel.stores:
                lines += self.fill_identity(store) + self.nest(self.loop_axes(),
                    self.fixed_axes() + self.body(store, self.accumulate_statement(store)))
            return "\\n".join(lines + ["}"])

An element-wise op a renderer has no spelling for fails in `check_supported` (called by
`render_kernel`) with a `MetajitCodegenError` naming the op and the renderer, before any
compiler runs.
"""
import abc
import math
import os
import struct

from metajit.ir import dtypes, indexexpr, opset
from metajit.errors import MetajitCodegenError
from metajit.ir.opset import reduce_identity

TYPE_NAMES = {"bool": "bool", "uint8": "mj_u8", "int8": "mj_i8", "int16": "mj_i16",
              "int32": "mj_i32", "int64": "mj_i64", "float16": "mj_f16", "float32": "float",
              "float64": "double"}

LEAF_OPS = frozenset(("load", "const", "param", "index"))  # value-tree leaves, not element-wise ops
_PRELUDE_PATH = os.path.join(os.path.dirname(__file__), "prelude.h")
_prelude_text = None


def prelude():
    """The common prelude (types and semantic helpers) every generated unit starts with.

    It compiles as host C++, as CUDA device code and as a BANG-style dialect; see the
    comment at its top for the macros (``MJ_INLINE``, ``MJ_MATH``, ``MJ_F16_TYPE``).
    """
    global _prelude_text
    if _prelude_text is None:
        with open(_PRELUDE_PATH) as handle:
            _prelude_text = handle.read()
    return _prelude_text


def is_plain_store(store, domain):
    """Whether ``store`` writes every loop position once, in loop order (element-wise)."""
    return (store.reduce_op is None and store.condition == indexexpr.const(1)
            and store.index == tuple(indexexpr.loop(a) for a in range(len(domain))))


def value_ops(kernel):
    """The set of value-tree ops (``load``, ``const``, element-wise op names...) in ``kernel``."""
    found, seen = set(), set()
    stack = [store.value for store in kernel.stores]
    while stack:
        expr = stack.pop()
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        found.add(expr.op)
        if expr.op not in LEAF_OPS:
            stack.extend(expr.args)
    return found


# ---- element-wise spellings: (renderer, operand texts, dtype, operand dtype) -> C text ----
def _comparison(op):
    return lambda self, args, dtype, _: f"({args[0]} {self.COMPARISONS[op]} {args[1]})"


def _infix(op):
    return lambda self, args, dtype, _: f"(({self.type_name(dtype)})({args[0]} {self.INFIX[op]} {args[1]}))"


def _helper(name):
    return lambda self, args, dtype, _: f"mj_{name}({', '.join(args)})"


def _float_or_integer(float_helper, integer_helper):
    def spell(self, args, dtype, operand_dtype):
        if dtypes.is_float(operand_dtype):
            return f"{float_helper}({args[0]}, {args[1]})"
        return f"{integer_helper}<{self.type_name(dtype)}>({args[0]}, {args[1]})"
    return spell


def _extremum(name):
    return lambda self, args, dtype, _: f"mj_{name}<{self.type_name(dtype)}>({args[0]}, {args[1]})"


def _logical(symbol):
    return lambda self, args, dtype, _: f"(({args[0]} != 0) {symbol} ({args[1]} != 0))"


def _abs(self, args, dtype, operand_dtype):
    if dtypes.is_float(operand_dtype):
        return f"mj_abs({args[0]})"
    return f"(({self.type_name(dtype)})({args[0]} < 0 ? -{args[0]} : {args[0]}))"


def _bitwise_not(self, args, dtype, _):
    return f"(!{args[0]})" if dtype == dtypes.bool_ else f"(({self.type_name(dtype)})~{args[0]})"


class CStyleRenderer(abc.ABC):
    """Renders one `Kernel`'s expressions as C-family text; subclasses add the loops.

    Overridable parts: `TYPE_NAMES` (dtype -> type), `LOCAL_TYPE_NAMES` (types of
    locals), `INFIX`, `COMPARISONS`, `INDEX_INFIX`, `COMBINE` (reduction combiners),
    `INDEX_TYPE` and `INDEX_SUFFIX`, `RESTRICT`, and the methods `literal`, `parameter_read`, `cast`,
    `elementwise`. `SPELLINGS` maps every element-wise op to the method rendering it:
    remove an entry (or add to `UNSUPPORTED_OPS`) and kernels using the op are refused
    at render time.
    """

    NAME = "c"
    TYPE_NAMES = TYPE_NAMES
    LOCAL_TYPE_NAMES = TYPE_NAMES
    INDEX_TYPE = "mj_i64"
    INDEX_SUFFIX = "LL"  # of integer literals in index arithmetic ("" with a 32-bit INDEX_TYPE)
    RESTRICT = "__restrict"
    UNSUPPORTED_OPS = frozenset()
    INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "bitwise_and": "&",
             "bitwise_or": "|", "bitwise_xor": "^", "left_shift": "<<", "right_shift": ">>"}
    COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    INDEX_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
                   "eq": "==", "ne": "!=", "and": "&&", "or": "||"}
    COMBINE = {
        "sum": lambda a, b: f"{a} + {b}", "prod": lambda a, b: f"{a} * {b}",
        "max": lambda a, b: f"mj_maximum({a}, {b})", "min": lambda a, b: f"mj_minimum({a}, {b})",
        "any": lambda a, b: f"({a} || {b})", "all": lambda a, b: f"({a} && {b})",
    }

    def __init__(self, kernel, name="kernel"):
        self.kernel = kernel
        self.name = name
        self.domain = kernel.domain
        self.lines = []
        self.values = {}
        self.counter = 0

    # ---- checks ----------------------------------------------------------------
    @classmethod
    def supported_ops(cls):
        """The element-wise ops this renderer can spell."""
        return frozenset(op for op in cls.SPELLINGS if op not in cls.UNSUPPORTED_OPS)

    def check_supported(self):
        """Raise `MetajitCodegenError` if the kernel uses an element-wise op without a spelling."""
        missing = sorted(value_ops(self.kernel) - LEAF_OPS - self.supported_ops())
        if missing:
            raise MetajitCodegenError(
                f"the {self.NAME} renderer cannot generate element-wise op(s) {', '.join(missing)} "
                f"used by kernel\n{self.kernel}\nadd a spelling to {type(self).__name__}.SPELLINGS "
                "(or run on a device that has one)")

    # ---- spellings -------------------------------------------------------------
    def type_name(self, dtype):
        """The C type of ``dtype`` in buffers."""
        return self.TYPE_NAMES[str(dtype)]

    def literal(self, value, dtype):
        """A C literal of ``value`` as ``dtype`` (nan and infinities through the prelude's macros)."""
        c_type = self.type_name(dtype)
        if dtype == dtypes.bool_:
            return "true" if value else "false"
        if dtypes.is_float(dtype):
            value = float(value)
            if math.isnan(value):
                text = "MJ_NAN"
            elif math.isinf(value):
                text = "MJ_INF" if value > 0 else "(-MJ_INF)"
            else:
                text = repr(value)
            return f"(({c_type}){text})"
        return f"(({c_type}){int(value)}LL)"

    def parameter_read(self, slot, dtype):
        """Read scalar parameter ``slot``; parameters arrive as 8-byte slots at ``parameters``:
        double for floats, long long otherwise."""
        if dtypes.is_float(dtype):
            return f"({self.type_name(dtype)})((const double*)parameters)[{slot}]"
        if dtype == dtypes.bool_:
            return f"(((const long long*)parameters)[{slot}] != 0)"
        return f"({self.type_name(dtype)})((const long long*)parameters)[{slot}]"

    def input_name(self, slot):
        """The C name of input buffer ``slot``."""
        return f"in{slot}"

    def output_name(self, slot):
        """The C name of output buffer ``slot``."""
        return f"out{slot}"

    # ---- index expressions -------------------------------------------------------
    def index(self, expr):
        """C text of the integer `IndexExpr` ``expr`` (floor semantics for ``//`` and ``%``)."""
        op = expr.op
        if op == "loop":
            return f"i{expr.args[0]}"
        if op == "const":
            return f"{expr.args[0]}{self.INDEX_SUFFIX}"
        if op == "extra":
            slot = expr.args[0]
            _, shape = self.kernel.inputs[slot]
            return f"(({self.INDEX_TYPE}){self.input_name(slot)}[{self.offset(expr.args[1:], shape)}])"
        if op == "not":
            return f"(({self.INDEX_TYPE})!({self.index(expr.args[0])}))"
        left, right = (self.index(a) for a in expr.args)
        if op in ("min", "max"):
            return f"mj_i{op}({left}, {right})"
        if op in ("floordiv", "mod"):
            low, _ = indexexpr.bounds(expr.args[0], self.domain)
            divisor = expr.args[1]
            if divisor.is_const and divisor.args[0] > 0 and low >= 0:
                return f"({left} {'/' if op == 'floordiv' else '%'} {right})"
            return f"mj_i{'div' if op == 'floordiv' else 'mod'}<{self.INDEX_TYPE}>({left}, {right})"
        text = f"({left} {self.INDEX_INFIX[op]} {right})"
        return f"(({self.INDEX_TYPE}){text})" if op in indexexpr.COMPARISONS else text

    def offset(self, exprs, shape):
        """Row-major element offset, clamping any coordinate not provably in range (so both
        sides of a ``select`` are safe to evaluate)."""
        terms, stride = [], 1
        for expr, size in reversed(list(zip(exprs, shape))):
            if size != 1:
                low, high = indexexpr.bounds(expr, self.domain)
                text = self.index(expr)
                if low < 0 or high >= size:
                    text = f"mj_clamp({text}, 0, {size - 1})"
                terms.append(text if stride == 1 else f"{text} * {stride}{self.INDEX_SUFFIX}")
            stride *= size
        return " + ".join(reversed(terms)) or "0"

    # ---- value expressions (emitted as locals, shared subtrees once) -------------
    def value(self, expr):
        """The C expression of ``expr``: a literal, a parameter, or a local holding its value
        (appended to ``self.lines`` the first time)."""
        name = self.values.get(expr)
        if name is not None:
            return name
        text = self.value_text(expr)
        if expr.op in ("const", "param"):
            return text
        name = f"v{self.counter}"
        self.counter += 1
        self.lines.append(f"const {self.LOCAL_TYPE_NAMES[str(expr.dtype)]} {name} = {text};")
        self.values[expr] = name
        return name

    def value_text(self, expr):
        """The C text computing one value-tree node from its operands' locals."""
        op, dtype = expr.op, expr.dtype
        if op == "load":
            slot, index = expr.args
            return f"{self.input_name(slot)}[{self.offset(index, self.kernel.inputs[slot][1])}]"
        if op == "const":
            return self.literal(expr.args[0], dtype)
        if op == "param":
            return f"p{expr.args[0]}"
        if op == "index":
            return f"(({self.type_name(dtype)})({self.index(expr.args[0])}))"
        return self.elementwise(op, [self.value(a) for a in expr.args], dtype, expr.args[-1].dtype)

    def elementwise(self, op, args, dtype, operand_dtype):
        """C text of element-wise ``op`` on operand texts ``args`` (result ``dtype``)."""
        spell = self.SPELLINGS.get(op) if op not in self.UNSUPPORTED_OPS else None
        if spell is None:
            raise MetajitCodegenError(f"the {self.NAME} renderer cannot generate element-wise op {op!r}")
        return spell(self, args, dtype, operand_dtype)

    def cast(self, args, dtype, operand_dtype):
        """``cast`` to ``dtype``: nonzero test for bool; float16 goes through float to integers."""
        c_type = self.type_name(dtype)
        if dtype == dtypes.bool_:
            return f"({args[0]} != 0)"
        if operand_dtype == dtypes.float16 and not dtypes.is_float(dtype):
            return f"(({c_type})(float){args[0]})"
        return f"(({c_type}){args[0]})"

    SPELLINGS = {
        **{op: _helper(op) for op in opset.FLOAT_UNARY},
        **{op: _infix(op) for op in ("add", "sub", "mul", "div", "bitwise_and", "bitwise_or",
                                     "bitwise_xor", "left_shift", "right_shift")},
        **{op: _comparison(op) for op in opset.COMPARISON_BINARY},
        "floor_div": _float_or_integer("mj_ffloordiv", "mj_idiv"),
        "mod": _float_or_integer("mj_fmod", "mj_imod"),
        "pow": _helper("pow"),
        "maximum": _extremum("maximum"),
        "minimum": _extremum("minimum"),
        "logical_and": _logical("&&"),
        "logical_or": _logical("||"),
        "logical_xor": _logical("!="),
        "logical_not": lambda self, args, dtype, _: f"(!({args[0]}))",
        "bitwise_not": _bitwise_not,
        "neg": lambda self, args, dtype, _: f"(({self.type_name(dtype)})-{args[0]})",
        "abs": _abs,
        "cast": lambda self, args, dtype, operand_dtype: self.cast(args, dtype, operand_dtype),
        "select": lambda self, args, dtype, _: f"({args[0]} ? {args[1]} : {args[2]})",
    }

    # ---- statements shared by loop structures --------------------------------------
    def signature(self, name=None):
        """The opening line of the host entry point ``extern "C" void name(inputs, outputs,
        parameters, num_threads) {`` followed by one local per scalar parameter."""
        lines = [f'extern "C" void {name or self.name}(void* const* inputs, void* const* outputs, '
                 "const void* parameters, long long num_threads) {"]
        for slot, dtype in enumerate(self.kernel.parameters):
            lines.append(f"  const {self.type_name(dtype)} p{slot} = {self.parameter_read(slot, dtype)};")
        return lines

    def pointer_declarations(self):
        """Typed ``inN``/``outN`` pointers over the ``inputs``/``outputs`` address arrays."""
        lines = []
        for slot, (dtype, _) in enumerate(self.kernel.inputs):
            c_type = self.type_name(dtype)
            lines.append(f"  const {c_type}* {self.RESTRICT} {self.input_name(slot)} = "
                         f"(const {c_type}*)inputs[{slot}];")
        for slot, (dtype, _) in enumerate(self.kernel.outputs):
            c_type = self.type_name(dtype)
            lines.append(f"  {c_type}* {self.RESTRICT} {self.output_name(slot)} = ({c_type}*)outputs[{slot}];")
        return lines

    def loop_axes(self):
        """The loop axes of size other than 1 (size-1 axes are fixed at 0)."""
        return [a for a, size in enumerate(self.domain) if size != 1]

    def fixed_axes(self):
        """Declarations of the size-1 loop indices as constant 0."""
        return [f"const {self.INDEX_TYPE} i{a} = 0;" for a, size in enumerate(self.domain) if size == 1]

    def loop_header(self, axis, size):
        """The opening of the loop over ``axis``."""
        return f"for ({self.INDEX_TYPE} i{axis} = 0; i{axis} < {size}{self.INDEX_SUFFIX}; ++i{axis}) {{"

    def nest(self, axes, inner, pragmas=None):
        """Nested loops over ``axes`` (outermost first) around the ``inner`` lines;
        ``pragmas`` maps a position in ``axes`` to a line placed before that loop."""
        pragmas = pragmas or {}
        if not axes:
            return ["{"] + ["  " + line for line in inner] + ["}"]
        lines = []
        for depth, axis in enumerate(axes):
            if depth in pragmas:
                lines.append("  " * depth + pragmas[depth])
            lines.append("  " * depth + self.loop_header(axis, self.domain[axis]))
        lines += ["  " * len(axes) + line for line in inner]
        lines += ["  " * (len(axes) - 1 - depth) + "}" for depth in range(len(axes))]
        return lines

    def target(self, store):
        """The C lvalue ``store`` writes at the current loop position."""
        return f"{self.output_name(store.slot)}[{self.offset(store.index, self.kernel.outputs[store.slot][1])}]"

    def accumulate_statement(self, store):
        """``(value, target) -> statement`` combining a value into its target with the
        store's reduction (plain assignment without one)."""
        if store.reduce_op is None:
            return lambda value, target: f"{target} = {value};"
        combine = self.COMBINE[store.reduce_op]
        return lambda value, target: f"{target} = {combine(target, value)};"

    def body(self, store, accumulate=None):
        """The statements computing ``store.value`` and writing it (or ``accumulate(value,
        target)``), under the store's condition. ``store`` may also be a list of plain
        element-wise stores (`is_plain_store`): the statements writing all of them, each
        shared value computed once (``accumulate`` is then not used)."""
        self.lines, self.values = [], {}
        if isinstance(store, (list, tuple)):
            # every value before the first write: an output may share an input's buffer
            # (an in-place update reading it at the same position)
            values = [self.value(each.value) for each in store]
            for each, value in zip(store, values):
                self.lines.append(f"{self.target(each)} = {value};")
            return self.lines
        value = self.value(store.value)
        target = self.target(store)
        lines = self.lines
        if accumulate is not None:
            lines.extend(accumulate(value, target).split("\n"))
        else:
            lines.append(f"{target} = {value};")
        if store.condition != indexexpr.const(1):
            lines = [f"if ({self.index(store.condition)}) {{"] + ["  " + line for line in lines] + ["}"]
        return lines

    def identity(self, store):
        """The literal a reducing store's output starts from."""
        dtype = self.kernel.outputs[store.slot][0]
        return self.literal(reduce_identity(store.reduce_op, dtype), dtype)

    def fill_identity(self, store, pragma=None):
        """Lines setting a reducing store's whole output to the reduction's identity (none
        for a plain store); ``pragma`` goes before the loop."""
        if store.reduce_op is None:
            return []
        count = math.prod(self.kernel.outputs[store.slot][1])
        return ([pragma] if pragma else []) + [
            f"for ({self.INDEX_TYPE} j = 0; j < {count}{self.INDEX_SUFFIX}; ++j) "
            f"{self.output_name(store.slot)}[j] = {self.identity(store)};"]

    @abc.abstractmethod
    def render(self):
        """The complete source of the kernel's entry point (subclasses define the loops)."""


class HostArguments:
    """Packs a launch's arguments for the host entry point `CStyleRenderer.signature`
    declares: ``inputs`` and ``outputs`` as arrays of buffer addresses, ``parameters`` as
    8-byte slots (double for floats, long long otherwise). ``inputs``, ``outputs`` and
    ``parameters`` are the packing functions (bytes for ctypes ``c_void_p`` arguments). Example::

        arguments = HostArguments(kernel)
        function(*arguments.pack(input_addresses, output_addresses, parameter_values), num_threads)
    """

    __slots__ = ("inputs", "outputs", "parameters")

    def __init__(self, kernel):
        self.inputs = struct.Struct(f"{max(len(kernel.inputs), 1)}P").pack
        self.outputs = struct.Struct(f"{len(kernel.outputs)}P").pack
        layout = "".join("d" if dtypes.is_float(d) else "q" for d in kernel.parameters) or "q"
        self.parameters = struct.Struct("=" + layout).pack

    def pack(self, inputs, outputs, parameters):
        """The three packed arguments (a kernel without inputs or parameters gets one dummy slot)."""
        return self.inputs(*inputs or [0]), self.outputs(*outputs), self.parameters(*parameters or [0])


def render_kernel(renderer_class, kernel, name):
    """Check ``kernel`` against ``renderer_class``'s spellings, then render it as ``name``."""
    renderer = renderer_class(kernel, name)
    renderer.check_supported()
    return renderer.render()


NAME_PLACEHOLDER = "MJ_KERNEL_NAME"


def render_named(renderer_class, kernel, cache_key, prefix):
    """``(source, entry name)`` of ``kernel``, its entry point named ``prefix`` + the
    ``cache_key`` of the prefix and source (so equal sources share a name and a cache
    entry, and a renamed prefix never finds an artefact exporting the old name). Example::

        text, symbol = render_named(MyRenderer, kernel, toolchain.cache_key, "mj_kernel_")
    """
    return name_source(render_kernel(renderer_class, kernel, NAME_PLACEHOLDER), cache_key, prefix)


def name_source(template, cache_key, prefix):
    """``(source, entry name)`` of a ``template`` that spells its entry point
    `NAME_PLACEHOLDER` (hand-written kernels too): the name is ``prefix`` + the
    ``cache_key`` of the prefix and template."""
    symbol = prefix + cache_key(prefix + "\n" + template)  # the key covers the name the artefact exports
    return template.replace(NAME_PLACEHOLDER, symbol), symbol
