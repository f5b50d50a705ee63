"""Render a backend-neutral `Kernel` as a C++17 function with OpenMP loops.

`CpuRenderer` is a `metajit.toolkit.codegen.CStyleRenderer`: expressions, literals and
op spellings come from the toolkit; this module adds only the loop structure
(see docs/architecture.md, "CPU backend"):

* element-wise kernels: the outer loops run in parallel (``collapse``), the innermost
  loop is ``omp simd``; when the outer loops are too short to feed every thread, the
  innermost loop is the parallel one instead;
* plain reductions: an innermost run of reduced axes accumulates in a register
  (``omp simd reduction`` where the operator allows it; float16/float32 sums and
  products accumulate in double, so results do not drift with length or threads); the parallel loop is a kept
  axis when one leads, otherwise every thread reduces into a private partial output
  that is combined at the end (parallel partial sums, no atomics); small windows after
  two kept axes (pooling) vectorise across output columns;
* scatters (reindex_reduce): loops whose iterations write disjoint positions (an output
  index that is one loop index: a pooling gradient's batch and channel) run in parallel
  without atomics; otherwise ``omp atomic`` for sums, serial for the other operators.
"""
import math

from metajit.ir import dtypes, indexexpr
from metajit.toolkit import codegen, select_cases

PARALLEL_ITERATIONS = 1024  # parallel-loop iterations that keep every thread busy
PARALLEL_MIN_ELEMENTS = 1 << 15
PARTIAL_OUTPUT_MAX_ELEMENTS = 1 << 16
ACCUMULATION_BLOCK = 1024
ACCUMULATION_LANES = 32  # independent float partial results per block: several SIMD registers in flight
WINDOW_COLUMNS_MIN, WINDOW_COLUMNS_MAX = 8, 1024  # output columns a window reduction vectorises across
WINDOW_VALUES_MIN = 8  # smaller windows (2x2 pooling) measured faster as plain per-output loops
SCATTER_PARALLEL_MIN_ITERATIONS = 16  # owned iterations (batch x channels) a scatter splits among threads


class CpuRenderer(codegen.CStyleRenderer):
    """Turns one `Kernel` into the C++ source of ``extern "C" void <name>(...)``."""

    NAME = "cpu"
    # GCC does not vectorise loops holding `bool` locals next to wider types (relu's gradient
    # `(x > 0) * g` ran 5x slower than its forward); an int local holding 0/1 does.
    LOCAL_TYPE_NAMES = {**codegen.TYPE_NAMES, "bool": "int"}

    def render(self):
        kernel = self.kernel
        header = self.signature() + self.pointer_declarations()
        if len(kernel.stores) > 1 and all(codegen.is_plain_store(store, self.domain) for store in kernel.stores):
            body = self._elementwise(kernel.stores, math.prod(self.domain))  # one loop, shared values
        elif len(kernel.stores) > 1 and self._reduce_together(kernel.stores):
            body = [line for store in kernel.stores for line in self.fill_identity(store)]
            body += self._reduction(kernel.stores, kernel.stores[0].reduced_axes(
                self.domain, kernel.outputs[kernel.stores[0].slot][1]), math.prod(self.domain))
        else:
            body = []
            for store in kernel.stores:
                body.extend(self._render_store(store))
        return "\n".join(header + ["  " + line for line in body] + ["}"])

    def _render_store(self, store):
        out_shape = self.kernel.outputs[store.slot][1]
        total = math.prod(self.domain)
        lines = self.fill_identity(store, self._parallel_simd(math.prod(out_shape)))
        if total == 0:
            return lines
        if store.reduce_op is None:
            return lines + self._elementwise(store, total)
        axes = store.reduced_axes(self.domain, out_shape)
        if axes is None:
            return lines + self._scatter(store, total)
        return lines + self._reduction([store], axes, total)

    def _reduce_together(self, stores):
        """Whether one loop nest computes ``stores`` (the kernels of `fusion._siblings` and
        `fusion._sibling_reductions` over a reduction): plain reductions with the same
        operator, output dtype and index, an accumulator each (a float max or min alone:
        it keeps a nan flag), and element-wise stores over the domain, written as the
        loops pass; the first store reduces and the domain is not empty."""
        first = stores[0]
        out_dtype, out_shape = self.kernel.outputs[first.slot]
        reducing = _reducing(stores)
        nan_aware = first.reduce_op in ("max", "min") and dtypes.is_float(out_dtype)
        return (math.prod(self.domain) > 0 and first.reduce_op is not None
                and first.reduced_axes(self.domain, out_shape) is not None
                and (len(reducing) == 1 or not nan_aware)  # (one nan flag per kernel)
                and all(s.reduce_op == first.reduce_op and s.index == first.index
                        and s.condition == indexexpr.const(1) and self.kernel.outputs[s.slot] == (out_dtype, out_shape)
                        for s in reducing)
                and all(codegen.is_plain_store(s, self.domain) for s in stores if s.reduce_op is None))

    def _accumulating_body(self, stores, step):
        """The statements computing each of ``stores``' values (shared values once):
        ``step(k, value, target)`` for the k-th reducing store, a plain write for the others."""
        if len(stores) == 1:
            return self.body(stores[0], lambda value, target: step(0, value, target))
        self.lines, self.values = [], {}
        values = [self.value(store.value) for store in stores]
        reducing = 0
        for store, value in zip(stores, values):
            if store.reduce_op is None:
                self.lines.append(f"{self.target(store)} = {value};")
                continue
            self.lines.extend(step(reducing, value, self.target(store)).split("\n"))
            reducing += 1
        return self.lines

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

    @staticmethod
    def _parallel_simd(work):
        """The pragma of a loop that is both the parallel and the SIMD loop: ``parallel for
        simd`` when ``work`` elements keep the threads busy, else ``omp simd`` alone (GCC 12
        leaves a ``parallel for simd`` loop scalar when its ``if`` clause is a false constant)."""
        if work >= PARALLEL_MIN_ELEMENTS:
            return "#pragma omp parallel for simd num_threads(num_threads) schedule(static)"
        return "#pragma omp simd"

    def _elementwise(self, store, total):
        axes = self.loop_axes()
        if not axes:
            return self.nest(axes, self.fixed_axes() + self.body(store))
        outer = math.prod(self.domain[a] for a in axes[:-1])
        inner = self.domain[axes[-1]]
        if len(axes) == 1:
            pragmas = {0: self._parallel_simd(total)}
        elif outer >= 64 or (inner < PARALLEL_MIN_ELEMENTS <= total):
            pragmas = {0: f"#pragma omp parallel for collapse({self._collapse_depth(axes[:-1])}) "
                          f"{self._parallel_if(total)} schedule(static)",
                       len(axes) - 1: "#pragma omp simd"}
        else:
            pragmas = {len(axes) - 1: self._parallel_simd(inner)}
        stores = list(store) if isinstance(store, (list, tuple)) else [store]
        tree = select_cases.split_by_invariant_selects(stores, axes[-1]) if len(axes) > 1 else None
        if tree is None:
            return self.nest(axes, self.fixed_axes() + self.body(store), pragmas)
        # selects that choose by outer indices (a concat's pieces) are tested once per inner
        # run, each case's inner loop reading only the input it selects
        inner_loop = [pragmas.pop(len(axes) - 1), self.loop_header(axes[-1], self.domain[axes[-1]])]
        cases = self._cases(tree, inner_loop, isinstance(store, (list, tuple)))
        return self.nest(axes[:-1], self.fixed_axes() + cases, pragmas)

    def _cases(self, tree, inner_loop, several):
        """The lines of a `select_cases` decision tree: each `Branch` an if/else on its
        condition, each `Case` the inner loop over its resolved stores."""
        if isinstance(tree, select_cases.Case):
            body = self.body(list(tree.stores) if several else tree.stores[0])
            return inner_loop + ["  " + line for line in body] + ["}"]
        self.lines, self.values = [], {}
        condition = self.value(tree.condition)
        lines = self.lines + [f"if ({condition}) {{"]
        lines += ["  " + line for line in self._cases(tree.if_true, inner_loop, several)]
        lines += ["} else {"] + ["  " + line for line in self._cases(tree.if_false, inner_loop, several)] + ["}"]
        return lines

    def _scatter(self, store, total):
        axes = self.loop_axes()
        owned = _owned_axes(store, axes)
        if owned and math.prod(self.domain[a] for a in owned) >= SCATTER_PARALLEL_MIN_ITERATIONS:
            # iterations of the owned axes write disjoint positions: those loops run in
            # parallel and outermost, each iteration scattering its part without atomics
            rest = [a for a in axes if a not in owned]
            inner = self.fixed_axes() + self.body(store, self.accumulate_statement(store))
            pragma = f"#pragma omp parallel for collapse({len(owned)}) {self._parallel_if(total)} schedule(static)"
            return self.nest(owned + rest, inner, {0: pragma})
        atomic = store.reduce_op == "sum" and self.kernel.outputs[store.slot][0] not in (
            dtypes.float16, dtypes.bool_)
        if atomic:
            accumulate = lambda value, target: f"#pragma omp atomic\n{target} += {value};"
        else:
            accumulate = self.accumulate_statement(store)
        inner = self.fixed_axes() + self.body(store, accumulate)
        pragmas = {0: f"#pragma omp parallel for {self._parallel_if(total)}"} if atomic else {}
        return self.nest(axes, inner, pragmas)

    def _reduction(self, stores, reduced, total):
        """Lines of plain reductions: one store, or several computed together by one loop
        nest with an accumulator each (`_reduce_together`)."""
        store = stores[0]
        op = store.reduce_op
        out_dtype = self.kernel.outputs[store.slot][0]
        widened = op in ("sum", "prod") and out_dtype in (dtypes.float16, dtypes.float32)
        acc_type = "double" if widened else ("float" if out_dtype == dtypes.float16
                                             else self.type_name(out_dtype))
        out_type = self.type_name(out_dtype)
        combine = self.COMBINE[op]
        into_target = lambda k, value, target: f"{target} = {combine(target, value)};"
        axes = self.loop_axes()
        if not axes:
            return self.nest(axes, self.fixed_axes() + self._accumulating_body(stores, into_target))
        reduced = [a for a in reduced if a in axes]
        identity = self.identity(store)
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
        if len(stores) == 1 and self._vectorises_across_windows(op, out_dtype, suffix, loop_axes, reduced):
            return self._window_reduction(store, op, acc_type, out_type, identity, combine, suffix,
                                          loop_axes, total, nan_aware)
        reducing = _reducing(stores)
        accumulators = _names("acc", reducing)
        declare = [f"{acc_type} {acc} = ({acc_type}){identity};" for acc in accumulators]
        fold = [f"{target} = {combine(target, f'({out_type}){acc}')};"
                for target, acc in zip(map(self.target, reducing), accumulators)]
        if not suffix:
            inner = self.fixed_axes() + self._accumulating_body(stores, into_target)
        elif not loop_axes:
            # kept below the threading threshold too: GCC 12 with AVX-512 miscompiled the same
            # loops without the pragma (a masked cross-entropy sum lost values)
            parallel = (f"#pragma omp parallel for reduction({clause}:{', '.join(accumulators)}) "
                        f"{self._parallel_if(total)}")
            lines = declare + self._accumulate_suffix(stores, suffix, widened, acc_type, combine, clause,
                                                     identity, parallel)
            return ["{"] + ["  " + l for l in lines + self.fixed_axes() + fold] + ["}"]
        elif nan_aware:
            step, apply_nan = _nan_flagged(op, "acc", "nan_seen", acc_type)
            inner = (declare + ["int nan_seen = 0;"]
                     + self._accumulate_suffix(stores, suffix, widened, acc_type, combine, clause, identity,
                                               None, lambda k, value, target: step(value, target))
                     + self.fixed_axes() + [apply_nan] + fold)
        else:
            inner = (declare + self._accumulate_suffix(stores, suffix, widened, acc_type, combine, clause,
                                                       identity, None)
                     + self.fixed_axes() + fold)
        leading_kept = 0
        for axis in loop_axes:
            if axis in reduced:
                break
            leading_kept += 1
        if leading_kept:
            depth = self._collapse_depth(loop_axes[:leading_kept])
            pragma = (f"#pragma omp parallel for collapse({depth}) {self._parallel_if(total)} "
                      "schedule(static)")
            return self.nest(loop_axes, inner, {0: pragma})
        return self._partial_reduction(stores, inner, loop_axes, total, identity, combine)

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
        lines = self.fixed_axes() + [f"{acc_type} acc[{width}];", f"{each} {acc} = ({acc_type}){identity};"]
        fold = []
        if nan_aware:
            lines += [f"int nan_seen[{width}];", f"{each} nan_seen[i{column}] = 0;"]
            step, apply_nan = _nan_flagged(op, acc, f"nan_seen[i{column}]", acc_type)
            fold.append(apply_nan)
        else:
            step = lambda v, t: f"{acc} = {combine(acc, f'({acc_type}){v}')};"
        lines += self.nest(suffix + [column], self.body(store, step), {len(suffix): "#pragma omp simd"})
        target = self.target(store)
        lines += self.nest([column], fold + [f"{target} = {combine(target, f'({out_type}){acc}')};"], {})
        depth = self._collapse_depth(loop_axes[:-1])
        pragma = f"#pragma omp parallel for collapse({depth}) {self._parallel_if(total)} schedule(static)"
        return self.nest(loop_axes[:-1], lines, {0: pragma})

    def _accumulate_suffix(self, stores, suffix, widened, acc_type, combine, clause, identity,
                           parallel, step=None):
        """Lines reducing each store's value over the innermost ``suffix`` axes into its
        accumulator (``acc``, ``acc1``, ...).

        Widened (double) sums and products run the innermost axis in blocks of
        `ACCUMULATION_BLOCK` accumulated in float, in `ACCUMULATION_LANES` interleaved
        partial results (so several SIMD adds are in flight, not one dependent chain),
        folding each block into the accumulator: float speed, double accuracy. An
        innermost axis shorter than the lanes (a 2x2 pooling window) adds straight into it.
        ``parallel`` is an optional ``parallel for reduction`` pragma for the outermost loop;
        ``step`` (k, value, target) -> statement replaces the plain ``acc = combine(acc, value)``.
        """
        short = self.domain[suffix[-1]] < ACCUMULATION_LANES
        if widened and len(suffix) > 1 and not parallel and self.domain[suffix[-1]] <= ACCUMULATION_BLOCK \
                and (short or self.domain[suffix[-1]] % ACCUMULATION_LANES):
            return self._row_lanes(stores, suffix, combine, clause, identity)
        reducing = _reducing(stores)
        accumulators = _names("acc", reducing)
        if widened and not short:
            last, outer = suffix[-1], suffix[:-1]
            size = self.domain[last]
            lanes, blocks = _names("lanes", reducing), _names("block", reducing)
            lane_body = self.fixed_axes() + self._accumulating_body(
                stores, lambda k, v, t: f"{lanes[k]}[l] = {combine(f'{lanes[k]}[l]', f'(float){v}')};")
            rest_body = self.fixed_axes() + self._accumulating_body(
                stores, lambda k, v, t: f"{blocks[k]} = {combine(blocks[k], f'(float){v}')};")
            lines = [f"for (mj_i64 b{last} = 0; b{last} < {size}LL; b{last} += {ACCUMULATION_BLOCK}LL) {{",
                     f"  const mj_i64 e{last} = mj_imin(b{last} + {ACCUMULATION_BLOCK}LL, {size}LL);"]
            for lane in lanes:
                lines += [f"  float {lane}[{ACCUMULATION_LANES}];",
                          f"  for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) {lane}[l] = (float){identity};"]
            lines += [f"  mj_i64 r{last} = b{last};",
                      f"  for (; r{last} + {ACCUMULATION_LANES} <= e{last}; r{last} += {ACCUMULATION_LANES}) {{",
                      "    #pragma omp simd",
                      f"    for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) {{",
                      f"      const mj_i64 i{last} = r{last} + l;"]
            lines += ["      " + l for l in lane_body]
            lines += ["    }", "  }"]
            lines += [f"  float {block} = (float){identity};" for block in blocks]
            lines += [f"  for (mj_i64 i{last} = r{last}; i{last} < e{last}; ++i{last}) {{"]
            lines += ["    " + l for l in rest_body]
            lines += ["  }"]
            for lane, block, acc in zip(lanes, blocks, accumulators):
                lines += [f"  #pragma omp simd reduction({clause}:{block})",
                          f"  for (mj_i64 l = 0; l < {ACCUMULATION_LANES}; ++l) {block} = {combine(block, f'{lane}[l]')};",
                          f"  {acc} = {combine(acc, block)};"]
            lines += ["}"]
            if not outer:
                return ([parallel] if parallel else []) + lines
            return self.nest(outer, lines, {0: parallel} if parallel else {})
        body = self.fixed_axes() + self._accumulating_body(
            stores, step or (lambda k, v, t: f"{accumulators[k]} = {combine(accumulators[k], f'({acc_type}){v}')};"))
        pragmas = {0: parallel} if parallel else {}
        if clause and not short:  # GCC makes a mess of SIMD reductions over a few iterations
            innermost = len(suffix) - 1
            simd = f"#pragma omp simd reduction({clause}:{', '.join(accumulators)})"
            pragmas[innermost] = (parallel.replace("parallel for", "parallel for simd")
                                  if innermost == 0 and parallel else simd)
        return self.nest(suffix, body, pragmas)

    def _row_lanes(self, stores, suffix, combine, clause, identity):
        """`_accumulate_suffix` for a widened reduction over several axes whose rows are
        short or not a whole number of lanes (a 56x56 or 7x7 feature map): one float lane
        per row position, accumulated row after row in a SIMD loop, folded into the double
        accumulator every `ACCUMULATION_BLOCK` / `ACCUMULATION_LANES` rows (so each float
        sums as few values as in the blocked lanes). Lanes only across 32 positions left
        each row's remainder to one dependent chain: a BatchNorm's statistics over 56x56
        maps ran at 13 GB/s."""
        last, outer = suffix[-1], suffix[:-1]
        width = self.domain[last]
        rows_per_fold = ACCUMULATION_BLOCK // ACCUMULATION_LANES
        each = f"for (mj_i64 l = 0; l < {width}LL; ++l)"
        reducing = _reducing(stores)
        lanes = _names("lanes", reducing)
        fold, reset = [], []
        for lane, acc in zip(lanes, _names("acc", reducing)):
            fold += [f"#pragma omp simd reduction({clause}:{acc})",
                     f"{each} {acc} = {combine(acc, f'(double){lane}[l]')};"]
            reset.append(f"{each} {lane}[l] = (float){identity};")
        row = self.nest([last], self.fixed_axes() + self._accumulating_body(
            stores, lambda k, v, t: f"{lanes[k]}[i{last}] = {combine(f'{lanes[k]}[i{last}]', f'(float){v}')};"),
            {0: "#pragma omp simd"})
        row += [f"if (++rows == {rows_per_fold}) {{"] + ["  " + line for line in fold + reset] + ["  rows = 0;", "}"]
        lines = [f"float {lane}[{width}];" for lane in lanes] + reset + ["int rows = 0;"]
        lines += self.nest(outer, row, {})
        return lines + fold

    def _partial_reduction(self, stores, inner, loop_axes, total, identity, combine):
        """Threads split the outermost (reduced) loop, each reducing into private partial
        outputs, folded into the real outputs at the end. Large outputs run serially."""
        stores = _reducing(stores)  # element-wise stores write in place
        out_dtype, out_shape = self.kernel.outputs[stores[0].slot]
        count = math.prod(out_shape)
        if count > PARTIAL_OUTPUT_MAX_ELEMENTS:
            return self.nest(loop_axes, inner, {})
        out_type = self.type_name(out_dtype)
        partials = _names("partial", stores)
        private = inner
        for store, partial in zip(stores, partials):
            private = [line.replace(f"out{store.slot}[", f"{partial}[") for line in private]
        lines = [f"#pragma omp parallel {self._parallel_if(total)}", "{"]
        for partial in partials:
            lines += [f"  {out_type}* {partial} = new {out_type}[{count}];",
                      f"  for (mj_i64 j = 0; j < {count}LL; ++j) {partial}[j] = {identity};"]
        lines += ["  #pragma omp for schedule(static)"] + ["  " + l for l in self.nest(loop_axes, private, {})]
        lines += ["  #pragma omp critical", "  {"]
        for store, partial in zip(stores, partials):
            target = f"out{store.slot}[j]"
            lines.append(f"    for (mj_i64 j = 0; j < {count}LL; ++j) {target} = {combine(target, f'{partial}[j]')};")
        return lines + ["  }"] + [f"  delete[] {partial};" for partial in partials] + ["}"]


def _reducing(stores):
    """The stores with a reduction operator (the others of a `_reduce_together` kernel are
    element-wise)."""
    return [store for store in stores if store.reduce_op is not None]


def _names(base, stores):
    """One C name per store: ``base`` for the first, then ``base1``, ``base2``, ..."""
    return [base if k == 0 else f"{base}{k}" for k in range(len(stores))]


def _nan_flagged(op, acc, flag, acc_type):
    """(step, final statement) accumulating a float max/min into ``acc`` with a plain
    compare-select and recording nans in ``flag``, then turning ``acc`` into nan: both are
    reductions GCC vectorises, the nan-propagating ``mj_maximum`` is not (ResNet's 3x3
    max-pool: 40 -> 27 ms)."""
    compare = ">" if op == "max" else "<"

    def step(value, target):
        return f"{acc} = ({value} {compare} {acc}) ? {value} : {acc}; {flag} |= ({value} != {value});"
    return step, f"if ({flag}) {acc} = ({acc_type})MJ_NAN;"


_SIMD_REDUCTION = {"sum": "+", "prod": "*", "max": "max", "min": "min", "any": "||", "all": "&&"}


def _owned_axes(store, axes):
    """The loop ``axes`` that alone decide one output index of ``store`` (``c*i + k``):
    iterations differing in them write disjoint positions, whatever the other loops do."""
    owned = []
    for expr in store.index:
        form = indexexpr.linear_form(expr)
        if form is not None and len(form[0]) == 1:
            ((axis, _),) = form[0].items()
            if axis in axes and axis not in owned:
                owned.append(axis)
    return sorted(owned)
