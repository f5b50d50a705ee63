"""Render a `Kernel` as a BANG-style ``__mlu_entry__`` function plus its host launch stub.

The schedule, for a scratchpad machine whose compute reads only on-chip NRAM:

* **Row and tiles**: one loop axis is the *row* (`row_axis`: the innermost axis of at
  least `ROW_MIN` positions, else the longest). A tile is a run of up to ``T`` row
  positions at one position of the other axes; ``T`` is the largest that fits every
  NRAM buffer of the phase (twice for the loads when they are double-buffered).
* **Phases**: the element-wise stores run as one phase (their shared values computed
  once); each reducing store is its own phase. Tasks take *items* round-robin (``taskId``
  step ``taskDim``); an item is one tile of an element-wise phase or a scatter, or one
  tile of outputs of a reduction, which then steps serially through the reduced
  positions into an accumulator (a vector in NRAM when the row is kept, a register when
  the row is reduced), so each output is written by one task.
* **Loads**: each load is DMA'd into NRAM per tile: one contiguous or strided
  ``__memcpy_async`` when its index is affine and in bounds along the row, one element
  copy per position otherwise (gathers, clamped windows); a load that does not depend
  on the row is one element, used as a scalar. With room for two copies, the loads of
  step ``s + 1`` are issued before step ``s`` computes (double buffering).
* **Compute**: each value node is a vector intrinsic (`BINARY_INTRINSICS`, ...) when
  its op has one for its dtype, else a scalar loop over NRAM; results leave by DMA.
* **Scatters** fill their output with the identity, wait for every task
  (``__sync_all``) and accumulate with ``__bang_atomic_reduce_*``.

A vendor changes the intrinsic tables (and what their dtypes allow), `NRAM_CAPACITY`
and `TASK_DIM`; the rest is target-neutral.
"""
import dataclasses
import math

from metajit.errors import MetajitCodegenError
from metajit.ir import dtypes, indexexpr
from metajit.ir.opset import reduce_identity
from metajit.toolkit import analysis, codegen

ALIGN = 64        # bytes: NRAM buffers (vector operands) start on this boundary
SLOT_BYTES = 64   # a fixed NRAM slot: one element read from GDRAM, one reduced value
ROW_MIN = 32      # an axis this long is a good row
SPLIT_MIN = 4096  # reduced positions per output that make a reduction worth splitting across tasks
NRAM_CAPACITY = 512 * 1024
TASK_DIM = 4

# Device helpers every unit carries after the prelude (BANG-style code, not emulation).
KERNEL_HELPERS = """
template <class T> __mlu_func__ inline T mj_dma_read(const T* gdram, void* nram_slot) {
  __memcpy(nram_slot, gdram, sizeof(T), GDRAM2NRAM);
  return *(const T*)nram_slot;
}
"""


@dataclasses.dataclass
class Buffer:
    """An NRAM buffer of a phase: ``row`` buffers hold ``T`` elements, others one;
    ``double`` ones have a copy per pipeline parity."""

    name: str
    dtype: object
    row: bool = True
    double: bool = False
    offsets: tuple = ()


@dataclasses.dataclass
class Phase:
    """Stores run together: ``kind`` is ``map``, ``reduce``, ``scatter`` or ``fill``;
    ``parallel``/``serial`` list the axes tasks split / step through (the row axis
    stands for its tiles); ``buffers`` is the NRAM layout, ``tile`` its row length;
    ``split`` > 1 cuts a reduction's serial steps into that many blocks, each task
    combining its partial result into the output atomically."""

    kind: str
    stores: list
    parallel: list
    serial: list
    buffers: dict = dataclasses.field(default_factory=dict)
    tile: int = 1
    double: bool = False
    split: int = 1  # a reduction with few outputs: tasks reduce blocks of the serial steps
    plan: tuple = ()  # (forms, order, loads) from `AccelRenderer.plan_values`


def itemsize(dtype):
    """Bytes per element of ``dtype``."""
    return dtypes.as_dtype(dtype).itemsize


class AccelRenderer(codegen.CStyleRenderer):
    """One `Kernel` as ``__mlu_entry__ void <name>_mlu(...)`` and ``extern "C" <name>(...)``."""

    NAME = "template_accel"
    NRAM_CAPACITY = NRAM_CAPACITY
    VECTOR_DTYPES = frozenset({"float32"})  # dtypes the intrinsics below take
    BINARY_INTRINSICS = {"add": "__bang_add", "sub": "__bang_sub", "mul": "__bang_mul", "div": "__bang_div",
                         "maximum": "__bang_maxequal", "minimum": "__bang_minequal"}
    SCALAR_INTRINSICS = {"add": "__bang_add_scalar", "mul": "__bang_mul_scalar",  # vector op scalar
                         "maximum": "__bang_maxequal_scalar", "minimum": "__bang_minequal_scalar"}
    COMMUTATIVE = frozenset({"add", "mul"})  # also scalar op vector (IEEE results do not depend on order)
    UNARY_INTRINSICS = {"exp": "__bang_active_exp", "log": "__bang_active_log", "sqrt": "__bang_active_sqrt",
                        "tanh": "__bang_active_tanh", "sigmoid": "__bang_active_sigmoid",
                        "abs": "__bang_active_abs"}
    RELU_INTRINSIC = "__bang_active_relu"  # maximum(x, 0)
    COMBINE_INTRINSICS = {"sum": "__bang_add", "prod": "__bang_mul", "max": "__bang_maxequal",
                          "min": "__bang_minequal"}
    REDUCE_INTRINSICS = {"sum": "__bang_reduce_sum", "max": "__bang_reduce_max", "min": "__bang_reduce_min"}
    ATOMICS = {"sum": "add", "prod": "mul", "max": "max", "min": "min", "any": "or", "all": "and"}

    def __init__(self, kernel, name="kernel"):
        super().__init__(kernel, name)
        self.row = row_axis(kernel.domain)
        self.row_length = kernel.domain[self.row] if self.row is not None else 1

    # ---- entry point and launch stub --------------------------------------------
    def render(self):
        phases = self.phases()
        for phase in phases:
            self.layout(phase)
        nram = max([SLOT_BYTES] + [self.phase_bytes(p, p.tile, p.double) for p in phases])
        lines = [f"__mlu_entry__ void {self.name}_mlu({', '.join(self.entry_parameters())}) {{",
                 f"  __nram__ char nram_buffer[{nram}];", "  void* const mj_slot = nram_buffer;"]
        for phase in phases:
            lines += ["  " + line for line in self.render_phase(phase)]
        return "\n".join(lines + ["}", ""] + self.launch_stub())

    def entry_parameters(self):
        """The entry's typed GDRAM pointers and scalar parameters."""
        return ([f"const {self.type_name(d)}* {self.input_name(s)}" for s, (d, _) in enumerate(self.kernel.inputs)]
                + [f"{self.type_name(d)}* {self.output_name(s)}" for s, (d, _) in enumerate(self.kernel.outputs)]
                + [f"{self.type_name(d)} p{s}" for s, d in enumerate(self.kernel.parameters)])

    def launch_stub(self):
        """``extern "C" const char* <name>(inputs, outputs, parameters, task_dim)``: unpacks
        the host's arrays and launches ``task_dim`` tasks (``MJ_LAUNCH``); returns a fault
        message or nullptr."""
        buffers = self.kernel.inputs + self.kernel.outputs
        addresses = [f"inputs[{s}]" for s in range(len(self.kernel.inputs))] + [
            f"outputs[{s}]" for s in range(len(self.kernel.outputs))]
        arguments = [f"({'const ' if k < len(self.kernel.inputs) else ''}{self.type_name(d)}*){a}"
                     for k, ((d, _), a) in enumerate(zip(buffers, addresses))]
        arguments += [self.parameter_read(s, d) for s, d in enumerate(self.kernel.parameters)]
        sizes = [str(math.prod(shape) * itemsize(d)) for d, shape in buffers]
        return [f'extern "C" const char* {self.name}(void* const* inputs, void* const* outputs, '
                "const void* parameters, long long task_dim) {",
                f"  const void* const buffers[] = {{{', '.join(addresses)}}};",
                f"  const long long sizes[] = {{{', '.join(sizes)}}};",
                f"  MJ_LAUNCH({self.name}_mlu, task_dim, buffers, sizes, {len(buffers)}, {', '.join(arguments)});",
                "}"]

    # ---- phases and NRAM layout ---------------------------------------------------
    def phases(self):
        """The kernel's `Phase` s in order (element-wise stores first, together)."""
        domain = self.domain
        active = [a for a, size in enumerate(domain) if size > 1]
        plain = [s for s in self.kernel.stores if s.reduce_op is None]
        result = [Phase("map", plain, list(active), [])] if plain and math.prod(domain) else []
        for store in self.kernel.stores:
            if store.reduce_op is None:
                continue
            reduced = store.reduced_axes(domain, self.kernel.outputs[store.slot][1])
            if reduced is None:
                result.append(Phase("scatter" if math.prod(domain) else "fill", [store], list(active), []))
            elif math.prod(domain[a] for a in reduced) == 0:
                result.append(Phase("fill", [store], [], []))
            elif math.prod(domain):
                kept = [a for a in active if a not in reduced]
                split = TASK_DIM if (math.prod(domain[a] for a in kept) < TASK_DIM
                                     and math.prod(domain[a] for a in reduced) >= SPLIT_MIN) else 1
                result.append(Phase("reduce", [store], kept, [a for a in active if a in reduced], split=split))
        return result

    def layout(self, phase):
        """Plan ``phase``'s values and NRAM buffers and choose its tile. Raises `MetajitCodegenError` when one row element per
        buffer does not fit."""
        self.plan_values(phase)
        for double in (True, False):
            copies = [2 if buffer.double and double else 1 for buffer in phase.buffers.values()]
            per_element = sum(itemsize(buffer.dtype) * count for buffer, count
                              in zip(phase.buffers.values(), copies) if buffer.row)
            room = self.NRAM_CAPACITY - self.phase_bytes(phase, 0, double) - ALIGN * sum(copies)
            tile = min(self.row_length, room // per_element) if per_element else self.row_length
            if phase.split > 1 and self.row in phase.serial:  # enough serial steps for every block
                others = math.prod(self.domain[a] for a in phase.serial if a != self.row)
                tile = min(tile, -(-self.row_length // -(-phase.split // others)))
            if tile >= 1:
                phase.tile, phase.double = tile, double
                self.assign_offsets(phase)
                return
        need = self.phase_bytes(phase, 1, False)
        raise MetajitCodegenError(
            f"the {self.NAME} renderer needs {need} bytes of NRAM for the smallest tile of this kernel "
            f"(one row element in each of its {len(phase.buffers)} buffers), more than the "
            f"{self.NRAM_CAPACITY}-byte NRAM; split the computation (e.g. with .sync()) or raise the "
            f"capacity:\n{self.kernel}")

    def phase_bytes(self, phase, tile, double):
        """NRAM bytes ``phase`` uses with row tile ``tile``, after the fixed slot."""
        total = SLOT_BYTES
        for buffer in phase.buffers.values():
            size = -(-(tile if buffer.row else 1) * itemsize(buffer.dtype) // ALIGN) * ALIGN
            total += size * (2 if buffer.double and double else 1)
        return total

    def assign_offsets(self, phase):
        """Give every buffer of ``phase`` its NRAM offsets (one per parity)."""
        offset = SLOT_BYTES
        for buffer in phase.buffers.values():
            size = -(-(phase.tile if buffer.row else 1) * itemsize(buffer.dtype) // ALIGN) * ALIGN
            copies = 2 if buffer.double and phase.double else 1
            buffer.offsets = tuple(offset + size * k for k in range(copies))
            offset += size * copies

    def add_buffer(self, phase, key, name, dtype, row=True, double=False):
        """Register an NRAM buffer for ``key`` in ``phase``; returns its name."""
        if key not in phase.buffers:
            phase.buffers[key] = Buffer(name, dtype, row, double)
        return phase.buffers[key].name

    def depends_on_row(self, exprs):
        """Whether any IndexExpr in ``exprs`` reads the row axis."""
        return self.row is not None and any(self.row in indexexpr.loop_axes(e) for e in exprs)

    def plan_values(self, phase):
        """Order the value nodes of ``phase`` (post-order), mark each ``vector`` (varies
        along the row: an NRAM buffer) or ``scalar`` (a local), and add their buffers; the
        result is kept in ``phase.plan`` for rendering."""
        self.forms, self.order, self.loads = {}, [], {}

        def visit(expr):
            if expr in self.forms:
                return
            if expr.op in ("const", "param"):
                self.forms[expr] = "scalar"
                return
            if expr.op == "load":
                vector = self.depends_on_row(expr.args[1])
                k = len(self.loads)
                self.loads[expr] = self.add_buffer(phase, expr, f"ld{k}", expr.dtype, vector, double=True)
            elif expr.op == "index":
                vector = self.depends_on_row([expr.args[0]])
            else:
                for arg in expr.args:
                    visit(arg)
                vector = any(self.forms[arg] == "vector" for arg in expr.args)
            self.forms[expr] = "vector" if vector else "scalar"
            self.order.append(expr)
            if vector and expr.op != "load":
                self.add_buffer(phase, expr, f"v{len(self.order)}", expr.dtype)

        for store in phase.stores:
            visit(store.value)
        for k, store in enumerate(phase.stores):
            out_dtype = self.kernel.outputs[store.slot][0]
            if phase.kind in ("map", "scatter") and self.forms[store.value] == "scalar":
                self.add_buffer(phase, ("value", k), f"sv{k}", out_dtype)
            if phase.kind == "reduce" and self.row in phase.parallel:
                self.add_buffer(phase, ("acc", k), f"acc{k}", self.accumulator_dtype(store))
                if self.accumulator_dtype(store) != out_dtype:
                    self.add_buffer(phase, ("cast", k), f"cast{k}", out_dtype)
            if phase.kind == "reduce" and self.row not in phase.parallel:
                self.add_buffer(phase, ("result", k), f"res{k}", out_dtype, row=False)
            if phase.kind in ("scatter", "fill") or phase.split > 1:
                self.add_buffer(phase, ("fill", k), f"fill{k}", out_dtype)
        phase.plan = (self.forms, self.order, self.loads)

    def accumulator_dtype(self, store):
        """The dtype a reduction accumulates in (float16 in float32)."""
        dtype = self.kernel.outputs[store.slot][0]
        return dtypes.float32 if dtype == dtypes.float16 else dtype

    # ---- one phase ------------------------------------------------------------------
    def render_phase(self, phase):
        """The block running ``phase`` (its loop over this task's steps)."""
        self.forms, self.order, self.loads = phase.plan
        lines = [f"{{  // {phase.kind}"]
        for buffer in phase.buffers.values():
            c_type = self.type_name(buffer.dtype)
            pointers = [f"({c_type}*)(nram_buffer + {offset})" for offset in buffer.offsets]
            lines.append(f"  {c_type}* const {buffer.name}[2] = {{{pointers[0]}, {pointers[-1]}}};")
        if phase.kind in ("scatter", "fill") or phase.split > 1:
            lines += ["  " + line for line in self.fill_outputs(phase)]
            if phase.kind == "fill":
                return lines + ["}"]
            lines.append("  __sync_all();")
        items = math.prod(self.count(axis, phase) for axis in phase.parallel) * phase.split
        total = math.prod(self.count(axis, phase) for axis in phase.serial)
        lines += [f"  const mj_i64 items = {items}LL, total = {total}LL, serial = {-(-total // phase.split)}LL;",
                  "  const mj_i64 steps = (taskId < items ? (items - 1 - taskId) / taskDim + 1 : 0) * serial;"]
        lines += ["  " + line for line in self.accumulator_declarations(phase)]
        stage, compute = self.stage(phase), self.compute(phase)
        if phase.split > 1:
            stage = ["if (valid) {"] + self.indent(stage, 2) + ["}"]
        if phase.double:
            lines += ["  for (mj_i64 s = 0; s <= steps; ++s) {",
                      "    if (s < steps) {"] + self.indent(self.decode(phase, "s", "s & 1") + stage, 6) + [
                      "    }", "    if (s > 0) {"] + self.indent(self.decode(phase, "s - 1", "(s - 1) & 1") + compute, 6) + [
                      "    }", "    __sync_io();", "  }"]
        else:
            lines += ["  for (mj_i64 s = 0; s < steps; ++s) {"] + self.indent(
                self.decode(phase, "s", "0") + stage + ["__sync_io();"] + compute, 4) + ["  }"]
        return lines + ["}"]

    @staticmethod
    def indent(lines, width):
        return [" " * width + line for line in lines]

    def count(self, axis, phase):
        """How many positions (tiles, for the row) ``axis`` has."""
        return -(-self.domain[axis] // phase.tile) if axis == self.row else self.domain[axis]

    def decode(self, phase, step, parity):
        """Declarations of the loop indices, the row tile (``r0``, ``n``), the item's
        ``inner`` step and the buffer parity ``p`` of step ``step``."""
        lines = [f"const int p = {parity};", f"const mj_i64 step = {step};",
                 "mj_i64 rest = taskId + (step / serial) * taskDim;",
                 f"const mj_i64 block = rest % {phase.split}LL;", f"rest /= {phase.split}LL;"]
        lines += self.fixed_axes() + ["const mj_i64 r0 = 0, n = 1;"] * (self.row is None)
        for axes, source in ((phase.parallel, None), (phase.serial, "inner")):
            if source:  # the serial position: this block's inner-th step
                lines += ["const mj_i64 inner = step % serial;",
                          "const bool valid = block * serial + inner < total;", "rest = block * serial + inner;"]
            for axis in reversed(axes):
                count = self.count(axis, phase)
                if axis == self.row:
                    lines += [f"const mj_i64 r0 = (rest % {count}LL) * {phase.tile}LL;",
                              f"const mj_i64 n = mj_imin({phase.tile}LL, {self.row_length}LL - r0);"]
                else:
                    lines.append(f"const mj_i64 i{axis} = rest % {count}LL;")
                lines.append(f"rest /= {count}LL;")
        if self.row is not None:
            lines.append(f"const mj_i64 i{self.row} = r0;")
        return lines + ["(void)rest; (void)n; (void)p; (void)valid;"]

    def buffer(self, phase, key):
        """The current-parity pointer of ``key``'s buffer."""
        return f"{phase.buffers[key].name}[p]"

    def at_row(self, lines):
        """``lines`` inside a loop over the tile's ``j``, with the row index ``i<row> = r0 + j``."""
        row = [f"const mj_i64 i{self.row} = r0 + j;"] if self.row is not None else []
        return ["for (mj_i64 j = 0; j < n; ++j) {"] + self.indent(row + lines, 2) + ["}"]

    # ---- loads (DMA in) ------------------------------------------------------------
    def stage(self, phase):
        """DMA every load of ``phase`` into its NRAM buffer for this step."""
        lines = []
        for load, name in self.loads.items():
            slot, index = load.args
            dtype, shape = self.kernel.inputs[slot]
            size = itemsize(dtype)
            source = f"{self.input_name(slot)} + {self.offset(index, shape)}"
            target = self.buffer(phase, load)
            if self.forms[load] == "scalar":
                lines.append(f"__memcpy_async({target}, {source}, {size}, GDRAM2NRAM);")
                continue
            access = analysis.load_access(self.kernel, load)
            stride = access.strides[self.row] if access.strides is not None else None
            if stride == 1 and access.in_bounds:
                lines.append(f"__memcpy_async({target}, {source}, n * {size}, GDRAM2NRAM);")
            elif stride is not None and stride > 1 and access.in_bounds:
                lines.append(f"__memcpy_async({target}, {source}, {size}, GDRAM2NRAM, {size}, "
                             f"{stride * size}, n - 1);")
            else:  # gathers, clamped windows, reversed rows: element by element
                lines += self.at_row([f"__memcpy({target} + j, {source}, {size}, GDRAM2NRAM);"])
        return lines

    def index(self, expr):
        """Index text; an index read from a buffer (a gather) comes through NRAM by DMA."""
        if expr.op == "extra":
            slot = expr.args[0]
            shape = self.kernel.inputs[slot][1]
            return (f"(({self.INDEX_TYPE})mj_dma_read({self.input_name(slot)} + "
                    f"{self.offset(expr.args[1:], shape)}, mj_slot))")
        return super().index(expr)

    # ---- values ----------------------------------------------------------------------
    def operand(self, phase, expr, element):
        """Text of ``expr``: its local or literal when scalar, else its NRAM buffer
        (indexed by ``j`` when ``element``)."""
        if expr.op in ("const", "param"):
            return self.value_text(expr)
        if self.forms[expr] == "scalar":
            return self.locals[expr]
        return self.buffer(phase, expr) + ("[j]" if element else "")

    def node_text(self, phase, expr, element):
        """C text computing ``expr`` from its operands (at element ``j`` when ``element``)."""
        if expr.op == "load":
            return f"{self.buffer(phase, expr)}[{'j' if element else '0'}]"
        if expr.op == "index":
            return self.value_text(expr)
        args = [self.operand(phase, a, element) for a in expr.args]
        return self.elementwise(expr.op, args, expr.dtype, expr.args[-1].dtype)

    def intrinsic(self, phase, expr):
        """The vector-intrinsic call computing ``expr`` into its buffer, or None."""
        if str(expr.dtype) not in self.VECTOR_DTYPES or expr.op in ("load", "index") or any(
                str(a.dtype) not in self.VECTOR_DTYPES for a in expr.args):
            return None
        target = self.buffer(phase, expr)
        vectors = [a for a in expr.args if self.forms[a] == "vector"]
        names = [self.operand(phase, a, False) for a in expr.args]
        if len(expr.args) == 1 and expr.op in self.UNARY_INTRINSICS:
            return f"{self.UNARY_INTRINSICS[expr.op]}({target}, {names[0]}, n);"
        if len(expr.args) != 2:
            return None
        if len(vectors) == 2 and expr.op in self.BINARY_INTRINSICS:
            return f"{self.BINARY_INTRINSICS[expr.op]}({target}, {names[0]}, {names[1]}, n);"
        right = expr.args[1]
        if (expr.op == "maximum" and right.op == "const" and right.args[0] == 0
                and math.copysign(1.0, right.args[0]) > 0 and self.forms[expr.args[0]] == "vector"):
            return f"{self.RELU_INTRINSIC}({target}, {names[0]}, n);"
        vector_first = self.forms[expr.args[0]] == "vector"
        if len(vectors) == 1 and expr.op in self.SCALAR_INTRINSICS and (vector_first or expr.op in self.COMMUTATIVE):
            vector, scalar = names if vector_first else reversed(names)
            return f"{self.SCALAR_INTRINSICS[expr.op]}({target}, {vector}, {scalar}, n);"
        return None

    def compute(self, phase):
        """The statements computing this step's values and storing or accumulating them."""
        lines, self.locals = [], {}
        for expr in self.order:
            if self.forms[expr] == "scalar":
                name = f"s{len(self.locals)}"
                self.locals[expr] = name
                lines.append(f"const {self.type_name(expr.dtype)} {name} = {self.node_text(phase, expr, False)};")
            elif expr.op != "load":
                call = self.intrinsic(phase, expr)
                lines += [call] if call else self.at_row(
                    [f"{self.buffer(phase, expr)}[j] = {self.node_text(phase, expr, True)};"])
        if phase.kind != "reduce":
            for k, store in enumerate(phase.stores):
                lines += getattr(self, f"finish_{phase.kind}")(phase, k, store)
            return lines
        parts = [self.finish_reduce(phase, k, store) for k, store in enumerate(phase.stores)]
        body = lines + [line for _, combine, _ in parts for line in combine]
        if phase.split > 1:
            body = ["if (valid) {"] + self.indent(body, 2) + ["}"]
        return [line for start, _, _ in parts for line in start] + body + [
            line for _, _, finish in parts for line in finish]

    def value_vector(self, phase, k, store):
        """Lines and the NRAM vector holding ``store``'s value for this tile."""
        if self.forms[store.value] == "vector":
            return [], self.buffer(phase, store.value)
        target = self.buffer(phase, ("value", k))
        return [f"__bang_write_value({target}, n, {self.operand(phase, store.value, False)});"], target

    def row_stride(self, index, shape):
        """Elements a store's offset moves per row step, or None when not affine."""
        if self.row is None:
            return 1
        stride = 0
        for expr, step in zip(index, analysis.row_major_strides(shape)):
            form = analysis.affine_form(expr)
            if form is None:
                return None
            stride += form[0].get(self.row, 0) * step
        return stride

    def dma_out(self, store, vector, row_in_index=True, atomic=False):
        """Copy ``vector`` (this tile's values of ``store``) to the store's output, or
        combine it into the output with the store's atomic when ``atomic``."""
        dtype, shape = self.kernel.outputs[store.slot]
        size = itemsize(dtype)
        target = f"{self.output_name(store.slot)} + {self.offset(store.index, shape)}"
        stride = self.row_stride(store.index, shape) if row_in_index else 0
        if atomic:
            call = f"__bang_atomic_reduce_{self.ATOMICS[store.reduce_op]}"
            if stride == 1 or not row_in_index:
                return [f"{call}({target}, {vector}, {'n' if row_in_index else '1'});"]
            return self.at_row([f"{call}({target}, {vector} + j, 1);"])
        if stride == 1 or not row_in_index:
            return [f"__memcpy({target}, {vector}, {'n * ' if row_in_index else ''}{size}, NRAM2GDRAM);"]
        if stride is not None and stride > 1:
            return [f"__memcpy({target}, {vector}, {size}, NRAM2GDRAM, {stride * size}, {size}, n - 1);"]
        return self.at_row([f"__memcpy({target}, {vector} + j, {size}, NRAM2GDRAM);"])

    def finish_map(self, phase, k, store):
        """An element-wise store: DMA the tile out (element by element when guarded)."""
        lines, vector = self.value_vector(phase, k, store)
        if codegen.is_plain_store(store, self.domain):
            return lines + self.dma_out(store, vector)
        dtype, shape = self.kernel.outputs[store.slot]
        copy = (f"__memcpy({self.output_name(store.slot)} + {self.offset(store.index, shape)}, {vector} + j, "
                f"{itemsize(dtype)}, NRAM2GDRAM);")
        return lines + self.at_row([f"if ({self.index(store.condition)}) {copy}"])

    def finish_scatter(self, phase, k, store):
        """A scatter: accumulate each element into GDRAM atomically."""
        lines, vector = self.value_vector(phase, k, store)
        shape = self.kernel.outputs[store.slot][1]
        call = (f"__bang_atomic_reduce_{self.ATOMICS[store.reduce_op]}({self.output_name(store.slot)} + "
                f"{self.offset(store.index, shape)}, {vector} + j, 1);")
        return lines + self.at_row([f"if ({self.index(store.condition)}) {call}"])

    def identity_of(self, store, dtype=None):
        """The reduction identity of ``store`` as a literal of ``dtype`` (default: output)."""
        dtype = dtype or self.kernel.outputs[store.slot][0]
        return self.literal(reduce_identity(store.reduce_op, dtype), dtype)

    def fill_outputs(self, phase):
        """Every task fills its share of each store's output with the identity."""
        lines = []
        for k, store in enumerate(phase.stores):
            dtype, shape = self.kernel.outputs[store.slot]
            count, tile = math.prod(shape), phase.tile
            if not count:
                continue
            fill = f"fill{k}[0]"
            lines += [f"__bang_write_value({fill}, {min(tile, count)}, {self.identity_of(store)});",
                      f"for (mj_i64 c = taskId; c < {-(-count // tile)}LL; c += taskDim)",
                      f"  __memcpy({self.output_name(store.slot)} + c * {tile}LL, {fill}, "
                      f"mj_imin({tile}LL, {count}LL - c * {tile}LL) * {itemsize(dtype)}, NRAM2GDRAM);"]
        return lines

    def accumulator_declarations(self, phase):
        """Register accumulators of a reduction whose row is reduced."""
        if phase.kind != "reduce" or self.row in phase.parallel:
            return []
        lines = []
        for k, store in enumerate(phase.stores):
            dtype = self.register_dtype(store)
            lines.append(f"{self.type_name(dtype)} acc{k} = {self.identity_of(store, dtype)};")
        return lines

    def register_dtype(self, store):
        """Float sums and products accumulate in a double register; others in their dtype."""
        dtype = self.kernel.outputs[store.slot][0]
        return dtypes.float64 if dtypes.is_float(dtype) and store.reduce_op in ("sum", "prod") else dtype

    def finish_reduce(self, phase, k, store):
        """``(start, combine, finish)`` lines: reset the accumulator at an item's first
        step, fold this tile into it, write (or, split, atomically combine) the output at
        the item's last step."""
        atomic = phase.split > 1
        combine = self.COMBINE[store.reduce_op]
        op, value = store.reduce_op, store.value
        vector = self.forms[value] == "vector"
        out_dtype = self.kernel.outputs[store.slot][0]
        if self.row not in phase.parallel:  # row reduced: fold the tile into acc<k>
            start = [f"if (inner == 0) acc{k} = {self.identity_of(store, self.register_dtype(store))};"]
            result = self.buffer(phase, ("result", k))
            if vector and str(value.dtype) in self.VECTOR_DTYPES and op in self.REDUCE_INTRINSICS:
                lines = [f"{self.REDUCE_INTRINSICS[op]}({result}, {self.operand(phase, value, False)}, n);",
                         f"acc{k} = {combine(f'acc{k}', f'{result}[0]')};"]
            else:
                lines = self.at_row([f"acc{k} = {combine(f'acc{k}', self.operand(phase, value, True))};"])
            return start, lines, ["if (inner == serial - 1) {",
                                  f"  {result}[0] = ({self.type_name(out_dtype)})acc{k};"] + self.indent(
                self.dma_out(store, result, row_in_index=False, atomic=atomic), 2) + ["}"]
        acc, acc_dtype = self.buffer(phase, ("acc", k)), self.accumulator_dtype(store)
        start = [f"if (inner == 0) __bang_write_value({acc}, n, {self.identity_of(store, acc_dtype)});"]
        lines = []
        if (vector and str(acc_dtype) in self.VECTOR_DTYPES and value.dtype == acc_dtype
                and op in self.COMBINE_INTRINSICS):
            lines.append(f"{self.COMBINE_INTRINSICS[op]}({acc}, {acc}, {self.operand(phase, value, False)}, n);")
        else:
            lines += self.at_row([f"{acc}[j] = {combine(f'{acc}[j]', self.operand(phase, value, True))};"])
        result = acc
        finish = []
        if acc_dtype != out_dtype:
            result = self.buffer(phase, ("cast", k))
            finish = self.at_row([f"{result}[j] = ({self.type_name(out_dtype)}){acc}[j];"])
        return start, lines, ["if (inner == serial - 1) {"] + self.indent(
            finish + self.dma_out(store, result, atomic=atomic), 2) + ["}"]


def row_axis(domain):
    """The loop axis tiles run along: the innermost of at least `ROW_MIN` positions, else
    the longest (innermost on ties); None when every axis has one position."""
    active = [a for a, size in enumerate(domain) if size > 1]
    if not active:
        return None
    for axis in reversed(active):
        if domain[axis] >= ROW_MIN:
            return axis
    return max(reversed(active), key=lambda a: domain[a])
