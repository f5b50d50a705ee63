"""Render a backend-neutral `Kernel` as a C++17 function with OpenMP loops.

Loop strategy (see docs/architecture.md, "CPU backend"):

* element-wise kernels: the outer loops run in parallel (``collapse``), the innermost
  loop is ``omp simd``; when the outer loops are too short to feed every thread, the
  innermost loop is the parallel one instead;
* plain reductions: an innermost run of reduced axes accumulates in a register
  (``omp simd reduction`` where the operator allows it; float16/float32 sums and
  products accumulate in double, so results do not drift with length or threads); the parallel loop is a kept
  axis when one leads, otherwise every thread reduces into a private partial output
  that is combined at the end (parallel partial sums, no atomics);
* scatters (reindex_reduce): ``omp atomic`` for sums, serial otherwise.

Reads that the index bounds cannot prove in range are clamped, so evaluating both
sides of a ``select`` never reads outside a buffer.
"""
import math
import os

from metajit import dtypes, indexexpr
from metajit.opset import reduce_identity

C_TYPES = {"bool": "bool", "uint8": "mj_u8", "int8": "mj_i8", "int16": "mj_i16",
           "int32": "mj_i32", "int64": "mj_i64", "float16": "mj_f16", "float32": "float",
           "float64": "double"}
# GCC does not vectorise loops holding `bool` locals next to wider types (relu's gradient
# `(x > 0) * g` ran 5x slower than its forward); an int local holding 0/1 does.
LOCAL_TYPES = {**C_TYPES, "bool": "int"}
PARALLEL_ITERATIONS = 1024  # parallel-loop iterations that keep every thread busy
PARALLEL_MIN_ELEMENTS = 1 << 15
PARTIAL_OUTPUT_MAX_ELEMENTS = 1 << 16
ACCUMULATION_BLOCK = 1024
ACCUMULATION_LANES = 32  # independent float partial results per block: several SIMD registers in flight
WINDOW_COLUMNS_MIN, WINDOW_COLUMNS_MAX = 8, 1024  # output columns a window reduction vectorises across
WINDOW_VALUES_MIN = 8  # smaller windows (2x2 pooling) measured faster as plain per-output loops

_PRELUDE_PATH = os.path.join(os.path.dirname(__file__), "prelude.h")


def prelude():
    """The helper definitions every generated translation unit starts with."""
    with open(_PRELUDE_PATH) as handle:
        return handle.read()


def _literal(value, dtype):
    c_type = C_TYPES[str(dtype)]
    if dtype == dtypes.bool_:
        return "true" if value else "false"
    if dtypes.is_float(dtype):
        value = float(value)
        if math.isnan(value):
            text = "__builtin_nan(\"\")"
        elif math.isinf(value):
            text = "__builtin_inf()" if value > 0 else "(-__builtin_inf())"
        else:
            text = repr(value)
        return f"(({c_type}){text})"
    return f"(({c_type}){int(value)}LL)"


def _parameter_read(slot, dtype):
    """Parameters arrive as 8-byte slots: double for floats, long long otherwise."""
    if dtypes.is_float(dtype):
        return f"({C_TYPES[str(dtype)]})((const double*)parameters)[{slot}]"
    if dtype == dtypes.bool_:
        return f"(((const long long*)parameters)[{slot}] != 0)"
    return f"({C_TYPES[str(dtype)]})((const long long*)parameters)[{slot}]"


_BINARY_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "bitwise_and": "&",
                 "bitwise_or": "|", "bitwise_xor": "^", "left_shift": "<<", "right_shift": ">>"}
_COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_INDEX_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
                "eq": "==", "ne": "!=", "and": "&&", "or": "||"}


class KernelRenderer:
    """Turns one `Kernel` into the C++ source of ``extern "C" void <name>(...)``."""

    def __init__(self, kernel, name):
        self.kernel = kernel
        self.name = name
        self.domain = kernel.domain
        self.lines = []
        self.values = {}
        self.counter = 0

    # ---- index expressions -------------------------------------------------
    def index(self, expr):
        op = expr.op
        if op == "loop":
            return f"i{expr.args[0]}"
        if op == "const":
            return f"{expr.args[0]}LL"
        if op == "extra":
            slot = expr.args[0]
            dtype, shape = self.kernel.inputs[slot]
            return f"((mj_i64)in{slot}[{self.offset(expr.args[1:], shape)}])"
        if op == "not":
            return f"((mj_i64)!({self.index(expr.args[0])}))"
        left, right = (self.index(a) for a in expr.args)
        if op in ("min", "max"):
            return f"mj_i{op}({left}, {right})"
        if op in ("floordiv", "mod"):
            low, _ = indexexpr.bounds(expr.args[0], self.domain)
            divisor = expr.args[1]
            if divisor.is_const and divisor.args[0] > 0 and low >= 0:
                return f"({left} {'/' if op == 'floordiv' else '%'} {right})"
            return f"mj_i{'div' if op == 'floordiv' else 'mod'}<mj_i64>({left}, {right})"
        text = f"({left} {_INDEX_INFIX[op]} {right})"
        return f"((mj_i64){text})" if op in indexexpr.COMPARISONS else text

    def offset(self, exprs, shape):
        """Row-major element offset, clamping any coordinate not provably in range."""
        terms, stride = [], 1
        for expr, size in reversed(list(zip(exprs, shape))):
            if size != 1:
                low, high = indexexpr.bounds(expr, self.domain)
                text = self.index(expr)
                if low < 0 or high >= size:
                    text = f"mj_clamp({text}, 0, {size - 1})"
                terms.append(text if stride == 1 else f"{text} * {stride}LL")
            stride *= size
        return " + ".join(reversed(terms)) or "0"

    # ---- value expressions (emitted as locals, shared subtrees once) -------
    def value(self, expr):
        name = self.values.get(expr)
        if name is not None:
            return name
        text = self._value_text(expr)
        if expr.op in ("const", "param"):
            return text
        name = f"v{self.counter}"
        self.counter += 1
        self.lines.append(f"const {LOCAL_TYPES[str(expr.dtype)]} {name} = {text};")
        self.values[expr] = name
        return name

    def _value_text(self, expr):
        op, dtype = expr.op, expr.dtype
        c_type = C_TYPES[str(dtype)]
        if op == "load":
            slot, index = expr.args
            return f"in{slot}[{self.offset(index, self.kernel.inputs[slot][1])}]"
        if op == "const":
            return _literal(expr.args[0], dtype)
        if op == "param":
            return f"p{expr.args[0]}"
        if op == "index":
            return f"(({c_type})({self.index(expr.args[0])}))"
        args = [self.value(a) for a in expr.args]
        operand_dtype = expr.args[-1].dtype
        is_float = dtypes.is_float(operand_dtype)
        if op == "cast":
            if dtype == dtypes.bool_:
                return f"({args[0]} != 0)"
            if operand_dtype == dtypes.float16 and not dtypes.is_float(dtype):
                return f"(({c_type})(float){args[0]})"
            return f"(({c_type}){args[0]})"
        if op == "select":
            return f"({args[0]} ? {args[1]} : {args[2]})"
        if op in _COMPARISONS:
            return f"({args[0]} {_COMPARISONS[op]} {args[1]})"
        if op in _BINARY_INFIX:
            return f"(({c_type})({args[0]} {_BINARY_INFIX[op]} {args[1]}))"
        if op == "floor_div":
            return f"mj_ffloordiv({args[0]}, {args[1]})" if is_float else f"mj_idiv<{c_type}>({args[0]}, {args[1]})"
        if op == "mod":
            return f"mj_fmod({args[0]}, {args[1]})" if is_float else f"mj_imod<{c_type}>({args[0]}, {args[1]})"
        if op == "pow":
            return f"mj_pow({args[0]}, {args[1]})"
        if op in ("maximum", "minimum"):
            return f"mj_{op}<{c_type}>({args[0]}, {args[1]})"
        if op == "logical_and":
            return f"(({args[0]} != 0) && ({args[1]} != 0))"
        if op == "logical_or":
            return f"(({args[0]} != 0) || ({args[1]} != 0))"
        if op == "logical_xor":
            return f"(({args[0]} != 0) != ({args[1]} != 0))"
        if op == "logical_not":
            return f"(!({args[0]}))"
        if op == "bitwise_not":
            return f"(!{args[0]})" if dtype == dtypes.bool_ else f"(({c_type})~{args[0]})"
        if op == "neg":
            return f"(({c_type})-{args[0]})"
        if op == "abs":
            return f"mj_abs({args[0]})" if is_float else f"(({c_type})({args[0]} < 0 ? -{args[0]} : {args[0]}))"
        return f"mj_{op}({args[0]})"

    # ---- loops ---------------------------------------------------------------
    def render(self):
        kernel = self.kernel
        header = [f'extern "C" void {self.name}(void* const* inputs, void* const* outputs, '
                  "const void* parameters, long long num_threads) {"]
        for slot, dtype in enumerate(kernel.parameters):
            header.append(f"  const {C_TYPES[str(dtype)]} p{slot} = {_parameter_read(slot, dtype)};")
        for slot, (dtype, _) in enumerate(kernel.inputs):
            header.append(f"  const {C_TYPES[str(dtype)]}* __restrict in{slot} = "
                          f"(const {C_TYPES[str(dtype)]}*)inputs[{slot}];")
        for slot, (dtype, _) in enumerate(kernel.outputs):
            header.append(f"  {C_TYPES[str(dtype)]}* __restrict out{slot} = "
                          f"({C_TYPES[str(dtype)]}*)outputs[{slot}];")
        body = []
        if len(kernel.stores) > 1 and all(self._is_plain_store(store) for store in kernel.stores):
            body = self._elementwise(kernel.stores, math.prod(self.domain))  # one loop, shared values
        else:
            for store in kernel.stores:
                body.extend(self._render_store(store))
        return "\n".join(header + ["  " + line for line in body] + ["}"])

    def _is_plain_store(self, store):
        """An element-wise store writing every loop position once, in loop order."""
        return (store.reduce_op is None and store.condition == indexexpr.const(1)
                and store.index == tuple(indexexpr.loop(a) for a in range(len(self.domain))))

    def _loop_axes(self):
        return [a for a, size in enumerate(self.domain) if size != 1]

    def _fixed_axes(self):
        return [f"const mj_i64 i{a} = 0;" for a, size in enumerate(self.domain) if size == 1]

    def _body(self, store, accumulate=None):
        """The statements computing ``store.value`` and writing or accumulating it; given
        several element-wise stores, the statements writing all of them, each shared
        value computed once."""
        self.lines, self.values = [], {}
        if isinstance(store, (list, tuple)):
            for each in store:
                value = self.value(each.value)
                self.lines.append(f"{self._target(each)} = {value};")
            return self.lines
        value = self.value(store.value)
        target = self._target(store)
        lines = self.lines
        if accumulate is not None:
            lines.extend(accumulate(value, target).split("\n"))
        else:
            lines.append(f"{target} = {value};")
        if store.condition != indexexpr.const(1):
            lines = [f"if ({self.index(store.condition)}) {{"] + ["  " + l for l in lines] + ["}"]
        return lines

    def _target(self, store):
        """The C lvalue ``store`` writes at the current loop position."""
        return f"out{store.slot}[{self.offset(store.index, self.kernel.outputs[store.slot][1])}]"

    def _render_store(self, store):
        out_dtype, out_shape = self.kernel.outputs[store.slot]
        total = math.prod(self.domain)
        lines = []
        if store.reduce_op:
            lines += self._fill(store.slot, reduce_identity(store.reduce_op, out_dtype), out_dtype,
                                math.prod(out_shape))
        if total == 0:
            return lines
        axes = store.reduced_axes(self.domain, out_shape) if store.reduce_op else None
        if store.reduce_op is None:
            return lines + self._elementwise(store, total)
        if axes is None:
            return lines + self._scatter(store, total)
        return lines + self._reduction(store, axes, total)

    def _fill(self, slot, value, dtype, count):
        return [f"#pragma omp parallel for simd num_threads(num_threads) if({count} >= {PARALLEL_MIN_ELEMENTS})",
                f"for (mj_i64 j = 0; j < {count}LL; ++j) out{slot}[j] = {_literal(value, dtype)};"]

    @staticmethod
    def _for(axis, size):
        return f"for (mj_i64 i{axis} = 0; i{axis} < {size}LL; ++i{axis}) {{"

    def _nest(self, axes, inner, pragmas):
        """Nested loops over ``axes`` (outermost first) around ``inner`` lines.

        ``pragmas`` maps a position in ``axes`` to the pragma placed before that loop.
        """
        lines = []
        for depth, axis in enumerate(axes):
            if depth in pragmas:
                lines.append("  " * depth + pragmas[depth])
            lines.append("  " * depth + self._for(axis, self.domain[axis]))
        lines += ["  " * len(axes) + l for l in inner]
        lines += ["  " * (len(axes) - 1 - d) + "}" for d in range(len(axes))]
        return lines

    def _collapse_depth(self, axes):
        """How many of the leading ``axes`` to collapse into the parallel loop: just enough
        for `PARALLEL_ITERATIONS` iterations (each collapsed iteration recomputes its
        indices with divisions, which dominates when the loop body is small)."""
        iterations = 1
        for depth, axis in enumerate(axes, 1):
            iterations *= self.domain[axis]
            if iterations >= PARALLEL_ITERATIONS:
                return depth
        return max(len(axes), 1)

    def _parallel_if(self, work):
        return f"num_threads(num_threads) if({work} >= {PARALLEL_MIN_ELEMENTS})"

    def _elementwise(self, store, total):
        axes = self._loop_axes()
        inner = self._fixed_axes() + self._body(store)
        if not axes:
            return ["{"] + ["  " + l for l in inner] + ["}"]
        outer = math.prod(self.domain[a] for a in axes[:-1])
        if len(axes) == 1:
            pragmas = {0: f"#pragma omp parallel for simd {self._parallel_if(total)} schedule(static)"}
        elif outer >= 64:
            pragmas = {0: f"#pragma omp parallel for collapse({self._collapse_depth(axes[:-1])}) "
                          f"{self._parallel_if(total)} schedule(static)",
                       len(axes) - 1: "#pragma omp simd"}
        else:
            pragmas = {len(axes) - 1: f"#pragma omp parallel for simd "
                                      f"{self._parallel_if(self.domain[axes[-1]])} schedule(static)"}
        return self._nest(axes, inner, pragmas)

    def _scatter(self, store, total):
        axes = self._loop_axes()
        atomic = store.reduce_op == "sum" and self.kernel.outputs[store.slot][0] not in (
            dtypes.float16, dtypes.bool_)
        combine = _COMBINE[store.reduce_op]
        if atomic:
            accumulate = lambda value, target: f"#pragma omp atomic\n{target} += {value};"
        else:
            accumulate = lambda value, target: f"{target} = {combine(target, value)};"
        inner = self._fixed_axes() + self._body(store, accumulate)
        if not axes:
            return ["{"] + ["  " + l for l in inner] + ["}"]
        pragmas = {0: f"#pragma omp parallel for {self._parallel_if(total)}"} if atomic else {}
        return self._nest(axes, inner, pragmas)

    def _reduction(self, store, reduced, total):
        op = store.reduce_op
        out_dtype = self.kernel.outputs[store.slot][0]
        widened = op in ("sum", "prod") and out_dtype in (dtypes.float16, dtypes.float32)
        acc_type = "double" if widened else ("float" if out_dtype == dtypes.float16
                                             else C_TYPES[str(out_dtype)])
        out_type = C_TYPES[str(out_dtype)]
        combine = _COMBINE[op]
        axes = self._loop_axes()
        if not axes:
            return ["{"] + ["  " + l for l in self._fixed_axes() + self._body(
                store, lambda v, t: f"{t} = {combine(t, v)};")] + ["}"]
        reduced = [a for a in reduced if a in axes]
        target = self._target(store)
        identity = _literal(reduce_identity(op, out_dtype), out_dtype)
        nan_aware = op in ("max", "min") and dtypes.is_float(out_dtype)
        clause = None if nan_aware else _SIMD_REDUCTION[op]
        suffix = []
        for axis in reversed(axes):
            if axis not in reduced:
                break
            suffix.insert(0, axis)
        loop_axes = axes[:len(axes) - len(suffix)]
        if suffix and not loop_axes and clause is None:
            loop_axes, suffix = suffix[:1], suffix[1:]
        if widened and suffix and math.prod(self.domain[a] for a in suffix) <= ACCUMULATION_LANES:
            # a few values per output (a pooling window): a float sum is exact enough
            widened, acc_type = False, "float"
        if self._vectorises_across_windows(op, out_dtype, suffix, loop_axes, reduced):
            return self._window_reduction(store, op, acc_type, out_type, identity, combine, suffix,
                                          loop_axes, total, nan_aware)
        declare = f"{acc_type} acc = ({acc_type}){identity};"
        fold = f"{target} = {combine(target, f'({out_type})acc')};"
        if not suffix:
            inner = self._fixed_axes() + self._body(store, lambda v, t: f"{t} = {combine(t, v)};")
        elif not loop_axes:
            parallel = f"#pragma omp parallel for reduction({clause}:acc) {self._parallel_if(total)}"
            lines = [declare] + self._accumulate_suffix(store, suffix, widened, acc_type, combine, clause,
                                                       identity, parallel)
            return ["{"] + ["  " + l for l in lines + self._fixed_axes() + [fold]] + ["}"]
        elif nan_aware:
            step, apply_nan = _nan_flagged(op, "acc", "nan_seen", acc_type)
            inner = ([declare, "int nan_seen = 0;"]
                     + self._accumulate_suffix(store, suffix, widened, acc_type, combine, clause, identity,
                                               None, step)
                     + self._fixed_axes() + [apply_nan, fold])
        else:
            inner = ([declare] + self._accumulate_suffix(store, suffix, widened, acc_type, combine, clause,
                                                         identity, None)
                     + self._fixed_axes() + [fold])
        leading_kept = 0
        for axis in loop_axes:
            if axis in reduced:
                break
            leading_kept += 1
        if leading_kept:
            depth = self._collapse_depth(loop_axes[:leading_kept])
            pragma = (f"#pragma omp parallel for collapse({depth}) {self._parallel_if(total)} "
                      "schedule(static)")
            return self._nest(loop_axes, inner, {0: pragma})
        return self._partial_reduction(store, inner, loop_axes, total, identity, combine)

    def _vectorises_across_windows(self, op, out_dtype, suffix, loop_axes, reduced):
        """Whether a reduction over small windows (pooling) runs with one accumulator per
        output column, vectorised across the columns (`_window_reduction`); such windows
        are never widened (a few values add plainly in float)."""
        return (bool(suffix) and op in ("sum", "max", "min")
                and out_dtype in (dtypes.float32, dtypes.float64)
                and WINDOW_VALUES_MIN <= math.prod(self.domain[a] for a in suffix) <= ACCUMULATION_LANES
                and len(loop_axes) >= 2 and not any(a in reduced for a in loop_axes)
                and WINDOW_COLUMNS_MIN <= self.domain[loop_axes[-1]] <= WINDOW_COLUMNS_MAX)

    def _window_reduction(self, store, op, acc_type, out_type, identity, combine, suffix, loop_axes,
                          total, nan_aware):
        """Each output row keeps an array of accumulators, one per column; the window loops
        run outside a SIMD loop over the columns, so every window position is one vector step
        (a 3x3 loop per output cannot vectorise)."""
        column = loop_axes[-1]
        width = self.domain[column]
        each = f"for (mj_i64 i{column} = 0; i{column} < {width}LL; ++i{column})"
        acc = f"acc[i{column}]"
        lines = self._fixed_axes() + [f"{acc_type} acc[{width}];", f"{each} {acc} = ({acc_type}){identity};"]
        fold = []
        if nan_aware:
            lines += [f"int nan_seen[{width}];", f"{each} nan_seen[i{column}] = 0;"]
            step, apply_nan = _nan_flagged(op, acc, f"nan_seen[i{column}]", acc_type)
            fold.append(apply_nan)
        else:
            step = lambda v, t: f"{acc} = {combine(acc, f'({acc_type}){v}')};"
        lines += self._nest(suffix + [column], self._body(store, step), {len(suffix): "#pragma omp simd"})
        target = self._target(store)
        lines += self._nest([column], fold + [f"{target} = {combine(target, f'({out_type}){acc}')};"], {})
        depth = self._collapse_depth(loop_axes[:-1])
        pragma = f"#pragma omp parallel for collapse({depth}) {self._parallel_if(total)} schedule(static)"
        return self._nest(loop_axes[:-1], lines, {0: pragma})

    def _accumulate_suffix(self, store, suffix, widened, acc_type, combine, clause, identity,
                           parallel, step=None):
        """Lines reducing the value over the innermost ``suffix`` axes into ``acc``.

        Widened (double) sums and products run the innermost axis in blocks of
        `ACCUMULATION_BLOCK` accumulated in float, in `ACCUMULATION_LANES` interleaved
        partial results (so several SIMD adds are in flight, not one dependent chain),
        folding each block into ``acc``: float speed, double accuracy. An innermost axis
        shorter than the lanes (a 2x2 pooling window) adds straight into ``acc``.
        ``parallel`` is an optional ``parallel for reduction`` pragma for the outermost loop;
        ``step`` (value, target) -> statement replaces the plain ``acc = combine(acc, value)``.
        """
        short = self.domain[suffix[-1]] < ACCUMULATION_LANES
        if widened and not short:
            last, outer = suffix[-1], suffix[:-1]
            size = self.domain[last]
            lane_body = self._fixed_axes() + self._body(
                store, lambda v, t: f"lanes[l] = {combine('lanes[l]', f'(float){v}')};")
            rest_body = self._fixed_axes() + self._body(
                store, lambda v, t: f"block = {combine('block', f'(float){v}')};")
            lines = [f"for (mj_i64 b{last} = 0; b{last} < {size}LL; b{last} += {ACCUMULATION_BLOCK}LL) {{",
                     f"  const mj_i64 e{last} = mj_imin(b{last} + {ACCUMULATION_BLOCK}LL, {size}LL);",
                     f"  float lanes[{ACCUMULATION_LANES}];",
                     f"  for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) lanes[l] = (float){identity};",
                     f"  mj_i64 r{last} = b{last};",
                     f"  for (; r{last} + {ACCUMULATION_LANES} <= e{last}; r{last} += {ACCUMULATION_LANES}) {{",
                     "    #pragma omp simd",
                     f"    for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) {{",
                     f"      const mj_i64 i{last} = r{last} + l;"]
            lines += ["      " + l for l in lane_body]
            lines += ["    }", "  }",
                      f"  float block = (float){identity};",
                      f"  for (mj_i64 i{last} = r{last}; i{last} < e{last}; ++i{last}) {{"]
            lines += ["    " + l for l in rest_body]
            lines += ["  }",
                      f"  #pragma omp simd reduction({clause}:block)",
                      f"  for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) block = {combine('block', 'lanes[l]')};",
                      f"  acc = {combine('acc', 'block')};", "}"]
            if not outer:
                return ([parallel] if parallel else []) + lines
            return self._nest(outer, lines, {0: parallel} if parallel else {})
        body = self._fixed_axes() + self._body(
            store, step or (lambda v, t: f"acc = {combine('acc', f'({acc_type}){v}')};"))
        pragmas = {0: parallel} if parallel else {}
        if clause and not short:  # GCC makes a mess of SIMD reductions over a few iterations
            innermost = len(suffix) - 1
            simd = f"#pragma omp simd reduction({clause}:acc)"
            pragmas[innermost] = (parallel.replace("parallel for", "parallel for simd")
                                  if innermost == 0 and parallel else simd)
        return self._nest(suffix, body, pragmas)

    def _partial_reduction(self, store, inner, loop_axes, total, identity, combine):
        """Threads split the outermost (reduced) loop, each reducing into a private partial
        output, folded into the real output at the end. Large outputs run serially."""
        out_dtype, out_shape = self.kernel.outputs[store.slot]
        count = math.prod(out_shape)
        if count > PARTIAL_OUTPUT_MAX_ELEMENTS:
            return self._nest(loop_axes, inner, {})
        slot = store.slot
        private = [line.replace(f"out{slot}[", "partial[") for line in inner]
        return ([f"#pragma omp parallel {self._parallel_if(total)}", "{",
                 f"  {C_TYPES[str(out_dtype)]}* partial = new {C_TYPES[str(out_dtype)]}[{count}];",
                 f"  for (mj_i64 j = 0; j < {count}LL; ++j) partial[j] = {identity};",
                 "  #pragma omp for schedule(static)"]
                + ["  " + l for l in self._nest(loop_axes, private, {})]
                + ["  #pragma omp critical",
                   f"  for (mj_i64 j = 0; j < {count}LL; ++j) out{slot}[j] = "
                   f"{combine(f'out{slot}[j]', 'partial[j]')};", "  delete[] partial;", "}"])


def _nan_flagged(op, acc, flag, acc_type):
    """(step, final statement) accumulating a float max/min into ``acc`` with a plain
    compare-select and recording nans in ``flag``, then turning ``acc`` into nan: both are
    reductions GCC vectorises, the nan-propagating ``mj_maximum`` is not (ResNet's 3x3
    max-pool: 40 -> 27 ms)."""
    compare = ">" if op == "max" else "<"

    def step(value, target):
        return f"{acc} = ({value} {compare} {acc}) ? {value} : {acc}; {flag} |= ({value} != {value});"
    return step, f"if ({flag}) {acc} = ({acc_type})__builtin_nan(\"\");"


_COMBINE = {
    "sum": lambda a, b: f"{a} + {b}", "prod": lambda a, b: f"{a} * {b}",
    "max": lambda a, b: f"mj_maximum({a}, {b})", "min": lambda a, b: f"mj_minimum({a}, {b})",
    "any": lambda a, b: f"({a} || {b})", "all": lambda a, b: f"({a} && {b})",
}
_SIMD_REDUCTION = {"sum": "+", "prod": "*", "max": "max", "min": "min", "any": "||", "all": "&&"}


def render_kernel(kernel, name):
    """C++ source of ``extern "C" void name(void* const* inputs, void* const* outputs,
    const void* parameters, long long num_threads)``."""
    return KernelRenderer(kernel, name).render()
