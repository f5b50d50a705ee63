"""Render a backend-neutral `Kernel` as CUDA C++ ``__global__`` functions (compiled by NVRTC).

`CudaRenderer` is a `metajit.toolkit.codegen.CStyleRenderer`: expressions, literals and op
spellings come from the toolkit and the shared prelude; this module adds the schedule.
One kernel becomes one or more entry points, launched in order (`launch_plan`):

* element-wise kernels: a grid-stride loop over the flattened domain;
* plain reductions, by the kernel analysis's kept and reduced axes: one block per output
  row (warp shuffles, then shared memory) for long rows, one thread per output for short
  rows, and for a few very long rows a split over several blocks per row whose partial
  results combine atomically into the identity-filled output;
* scatters (reindex_reduce): the output is filled with the identity, then every element
  combines atomically (native ``atomicAdd`` where the dtype has one, compare-and-swap
  loops otherwise: max/min/prod, float16 and the 1- and 2-byte types).

Float16 values are computed in float and rounded once when stored; float32 sums and
products accumulate in double, as on the cpu backend.
"""
import dataclasses
import math
import os

from metajit.ir import dtypes
from metajit.toolkit import analysis, codegen

BLOCK_THREADS = 256
ROW_PER_BLOCK_MIN = 128        # reduction rows at least this long get a block each
SPLIT_ROW_MIN = 1 << 16        # rows at least this long, when there are few, are split over blocks
SPLIT_OUTPUTS_MAX = 64         # "few" rows
SPLIT_CHUNK = 1 << 14          # elements of a row one block of a split reduction reduces
HELPERS_PATH = os.path.join(os.path.dirname(__file__), "cuda_helpers.h")
_ATOMIC_FUNCTORS = {"sum": "mj_op_sum", "prod": "mj_op_prod", "max": "mj_op_max", "min": "mj_op_min",
                    "any": "mj_op_any", "all": "mj_op_all"}


@dataclasses.dataclass(frozen=True)
class Launch:
    """One entry point of a rendered kernel and how to launch it: ``blocks`` (None: as
    many as ``work`` items need, capped by the device's resident blocks) of
    ``threads`` threads."""

    entry: str
    work: int
    threads: int = BLOCK_THREADS
    blocks: int = None


def helpers():
    """CUDA-only device helpers (atomic combines, functors) every unit includes after the prelude."""
    with open(HELPERS_PATH) as handle:
        return handle.read()


class CudaRenderer(codegen.CStyleRenderer):
    """Turns one `Kernel` into CUDA entry points named ``<name>_<k>`` (see `launch_plan`)."""

    NAME = "cuda"
    RESTRICT = "__restrict__"
    LOCAL_TYPE_NAMES = {**codegen.TYPE_NAMES, "float16": "float"}

    def __init__(self, kernel, name="kernel"):
        super().__init__(kernel, name)
        self.launches = []
        self.entries = []
        if narrow_indexing(kernel):  # 32-bit index arithmetic: half the registers, faster division
            self.INDEX_TYPE, self.INDEX_SUFFIX = "int", ""

    # ---- spellings ---------------------------------------------------------------
    def literal(self, value, dtype):
        """Float16 literals are floats holding the half-rounded value (locals are floats)."""
        text = super().literal(value, dtype)
        return f"((float){text})" if dtype == dtypes.float16 else text

    def value_text(self, expr):
        """Every float16 result is rounded to half and held in a float, as numpy's float16
        arithmetic rounds each operation."""
        text = super().value_text(expr)
        if expr.dtype == dtypes.float16 and expr.op not in ("load", "const", "param"):
            return f"((float)(mj_f16)({text}))"
        return text

    def parameter_read(self, slot, dtype):
        """Parameters arrive as kernel arguments ``param<slot>`` (double for floats, long long otherwise)."""
        if dtype == dtypes.bool_:
            return f"(param{slot} != 0)"
        return f"({self.type_name(dtype)})param{slot}"

    def _signature(self, entry):
        arguments = [f"const {self.type_name(d)}* {self.RESTRICT} {self.input_name(s)}"
                     for s, (d, _) in enumerate(self.kernel.inputs)]
        arguments += [f"{self.type_name(d)}* {self.RESTRICT} {self.output_name(s)}"
                      for s, (d, _) in enumerate(self.kernel.outputs)]
        arguments += [f"{'double' if dtypes.is_float(d) else 'long long'} param{s}"
                      for s, d in enumerate(self.kernel.parameters)]
        lines = [f'extern "C" __global__ void __launch_bounds__({BLOCK_THREADS}) {entry}({", ".join(arguments)}) {{']
        lines += [f"  const {self.LOCAL_TYPE_NAMES[str(d)]} p{s} = {self.parameter_read(s, d)};"
                  for s, d in enumerate(self.kernel.parameters)]
        return lines

    def _entry(self, lines, work, blocks=None):
        entry = f"{self.name}_{len(self.launches)}"
        self.launches.append(Launch(entry, work, BLOCK_THREADS, blocks))
        self.entries.append("\n".join(self._signature(entry) + ["  " + line for line in lines] + ["}"]))

    def _decompose(self, variable, axes):
        """Declarations of the loop indices of ``axes`` from the flat index ``variable``."""
        if not axes:
            return []
        index, suffix = self.INDEX_TYPE, self.INDEX_SUFFIX
        lines = [f"{index} rest_{variable} = {variable};"]
        for position, axis in enumerate(reversed(axes)):
            size = self.domain[axis]
            if position == len(axes) - 1:
                lines.append(f"const {index} i{axis} = rest_{variable};")
            else:
                lines.append(f"const {index} i{axis} = rest_{variable} % {size}{suffix}; "
                             f"rest_{variable} /= {size}{suffix};")
        return lines

    def _grid_stride(self, variable, count, inner):
        index = self.INDEX_TYPE
        return ([f"for ({index} {variable} = ({index})blockIdx.x * blockDim.x + threadIdx.x; "
                 f"{variable} < {count}{self.INDEX_SUFFIX}; {variable} += ({index})gridDim.x * blockDim.x) {{"]
                + ["  " + line for line in inner] + ["}"])

    # ---- schedule ---------------------------------------------------------------------
    def render(self):
        kernel = self.kernel
        total = math.prod(self.domain)
        stores = list(kernel.stores)
        if len(stores) > 1 and all(codegen.is_plain_store(s, self.domain) for s in stores):
            self._elementwise(stores, total)
        else:
            for store in stores:
                self._render_store(store, total)
        return "\n\n".join(self.entries)

    def launch_plan(self):
        """The entry points to launch, in order (call after `render`)."""
        return tuple(self.launches)

    def _render_store(self, store, total):
        out_dtype, out_shape = self.kernel.outputs[store.slot]
        count = math.prod(out_shape)
        if store.reduce_op is None:
            if total:
                self._elementwise(store, total)
            return
        axes = store.reduced_axes(self.domain, out_shape)
        length = math.prod(self.domain[a] for a in axes) if axes is not None else 0
        row_kernels = axes is not None and total and not (count <= SPLIT_OUTPUTS_MAX and length >= SPLIT_ROW_MIN)
        if not row_kernels and count:
            self._fill_identity(store, count)
        if not total:
            return
        if axes is None:
            self._scatter(store, total)
        elif not row_kernels:
            self._split_reduction(store, axes, count, length)
        elif length >= ROW_PER_BLOCK_MIN:
            self._block_per_row(store, axes, count, length)
        else:
            self._thread_per_row(store, axes, count)

    def _elementwise(self, store, total):
        axes = self.loop_axes()
        inner = self._decompose("linear", axes) + self.fixed_axes() + self.body(store)
        self._entry(self._grid_stride("linear", total, inner), total)

    def _fill_identity(self, store, count):
        target = self.output_name(store.slot)
        self._entry(self._grid_stride("j", count, [f"{target}[j] = {self.identity(store)};"]), count)

    def _scatter(self, store, total):
        out_dtype = self.kernel.outputs[store.slot][0]
        functor = _ATOMIC_FUNCTORS[store.reduce_op]

        def accumulate(value, target):
            return f"mj_atomic_combine<{functor}>(&{target}, ({self.type_name(out_dtype)}){value});"
        inner = self._decompose("linear", self.loop_axes()) + self.fixed_axes() + self.body(store, accumulate)
        self._entry(self._grid_stride("linear", total, inner), total)

    def _accumulator_type(self, store):
        out_dtype = self.kernel.outputs[store.slot][0]
        if out_dtype == dtypes.float32 and store.reduce_op in ("sum", "prod"):
            return "double"
        if out_dtype == dtypes.float16:
            return "float"
        if out_dtype.itemsize < 4 or out_dtype == dtypes.bool_:
            return "int"
        return self.type_name(out_dtype)

    def _accumulate(self, store, acc_type):
        combine = self.COMBINE[store.reduce_op]
        return lambda value, target: f"acc = {combine('acc', f'({acc_type}){value}')};"

    def _row_axes(self, reduced):
        kept = [a for a in self.loop_axes() if a not in reduced]
        return kept, [a for a in self.loop_axes() if a in reduced]

    def _thread_per_row(self, store, reduced, count):
        """Each thread reduces one output's short row serially."""
        acc_type = self._accumulator_type(store)
        kept, inner_axes = self._row_axes(reduced)
        out_type = self.type_name(self.kernel.outputs[store.slot][0])
        body = self.nest(inner_axes, self.fixed_axes() + self.body(store, self._accumulate(store, acc_type)))
        lines = (self._decompose("row", kept) + [f"{acc_type} acc = ({acc_type}){self.identity(store)};"]
                 + body + self.fixed_axes() + [f"{self.target(store)} = ({out_type})acc;"])
        self._entry(self._grid_stride("row", count, lines), count)

    def _block_reduce(self, store, acc_type, finish):
        """Lines combining every thread's ``acc`` of a block (warp shuffles, then one warp
        over shared memory), then ``finish`` lines run by thread 0 with the block's value
        in ``acc``."""
        combine = self.COMBINE[store.reduce_op]
        shuffle = "for (int offset = 16; offset > 0; offset >>= 1) acc = " + combine(
            "acc", f"({acc_type})__shfl_down_sync(0xffffffffu, acc, offset)") + ";"
        return ([shuffle,
                 "if ((threadIdx.x & 31) == 0) mj_partials[threadIdx.x >> 5] = acc;",
                 "__syncthreads();",
                 "if (threadIdx.x < 32) {",
                 f"  acc = threadIdx.x < (blockDim.x >> 5) ? mj_partials[threadIdx.x] "
                 f": ({acc_type}){self.identity(store)};",
                 "  " + shuffle,
                 "  if (threadIdx.x == 0) {"] + ["    " + line for line in finish] + ["  }", "}",
                 "__syncthreads();"])

    def _block_per_row(self, store, reduced, count, length):
        """One block per output row; its threads stride over the row."""
        acc_type = self._accumulator_type(store)
        kept, inner_axes = self._row_axes(reduced)
        out_type = self.type_name(self.kernel.outputs[store.slot][0])
        element = (self._decompose("r", inner_axes) + self.fixed_axes()
                   + self.body(store, self._accumulate(store, acc_type)))
        lines = ([f"__shared__ {acc_type} mj_partials[32];",
                  f"for ({self.INDEX_TYPE} row = blockIdx.x; row < {count}{self.INDEX_SUFFIX}; row += gridDim.x) {{"]
                 + ["  " + line for line in self._decompose("row", kept)]
                 + [f"  {acc_type} acc = ({acc_type}){self.identity(store)};",
                    f"  for ({self.INDEX_TYPE} r = threadIdx.x; r < {length}{self.INDEX_SUFFIX}; r += blockDim.x) {{"]
                 + ["    " + line for line in element] + ["  }"]
                 + ["  " + line for line in self._block_reduce(
                     store, acc_type, self.fixed_axes() + [f"{self.target(store)} = ({out_type})acc;"])]
                 + ["}"])
        self._entry(lines, count, blocks=min(count, 1 << 20))

    def _split_reduction(self, store, reduced, count, length):
        """A few very long rows: each block reduces one chunk of one row, and the chunks'
        results combine atomically into the output (filled with the identity first)."""
        acc_type = self._accumulator_type(store)
        kept, inner_axes = self._row_axes(reduced)
        out_dtype = self.kernel.outputs[store.slot][0]
        chunks = -(-length // SPLIT_CHUNK)
        element = (self._decompose("r", inner_axes) + self.fixed_axes()
                   + self.body(store, self._accumulate(store, acc_type)))
        functor = _ATOMIC_FUNCTORS[store.reduce_op]
        finish = self.fixed_axes() + [
            f"mj_atomic_combine<{functor}>(&{self.target(store)}, ({self.type_name(out_dtype)})acc);"]
        lines = ([f"__shared__ {acc_type} mj_partials[32];",
                  f"const mj_i64 row = blockIdx.x / {chunks}LL;",
                  f"const mj_i64 first = (blockIdx.x % {chunks}LL) * {SPLIT_CHUNK}LL;",
                  f"const mj_i64 last = mj_imin(first + {SPLIT_CHUNK}LL, {length}LL);"]
                 + self._decompose("row", kept)
                 + [f"{acc_type} acc = ({acc_type}){self.identity(store)};",
                    "for (mj_i64 r = first + threadIdx.x; r < last; r += blockDim.x) {"]
                 + ["  " + line for line in element] + ["}"]
                 + self._block_reduce(store, acc_type, finish))
        self._entry(lines, count * chunks, blocks=count * chunks)


NARROW_LIMIT = 1 << 30  # 32-bit indexing below this many elements: a grid-stride step cannot overflow


def narrow_indexing(kernel):
    """Whether ``kernel`` indexes with 32-bit ints: every size and index value fits
    (`analysis.fits_int32`) with room for a grid-stride step past the end."""
    sizes = [math.prod(kernel.domain)] + [math.prod(shape) for _, shape in kernel.inputs + kernel.outputs]
    return max(sizes) < NARROW_LIMIT and analysis.fits_int32(kernel)


def render(kernel, name):
    """``(source, launch plan)`` of ``kernel`` with entry points ``<name>_<k>``."""
    renderer = CudaRenderer(kernel, name)
    renderer.check_supported()
    source = renderer.render()
    return source, renderer.launch_plan()
