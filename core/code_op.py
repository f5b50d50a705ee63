"""``jt.code``: operators written as inline C++ (or CUDA) inside Python, as in Jittor.

The operator is an opaque graph node (`metajit.passes.custom_ops`): its inputs are
computed first, the current device's backend compiles the source for its language
(``cpu_src`` on cpu, ``cuda_src`` on cuda) once per distinct source, dtypes and ranks
(shapes and ``data`` values are run-time arguments), and its outputs feed fused kernels.
Macros and names available in the source: see `metajit.toolkit.inline_source`.
"""
import shlex


from . import plugins
from .errors import MetajitDeviceError, MetajitShapeError, MetajitValueError
from .flags import flags
from .ir import dtypes, graph
from .passes import custom_ops, executor
from .toolkit.inline_source import CodeCall, UserSource, caller_source, calling_site
from .var import Var

LANGUAGES = ("cpu", "cuda")  # the source languages jt.code takes, by device kind


def code(shape, dtype=None, inputs=(), cpu_src="", cpu_grad_src=(), cpu_header="", cuda_src="", cuda_grad_src=(),
         cuda_header="", data=None, compile_options=None):
    """An operator computed by the inline C++/CUDA source for the current device.

    ``shape``/``dtype``: the output's shape and dtype, or lists of them for several
    outputs (a negative size is a maximum: the code calls ``out0->set_shape({n})``).
    Jittor's other form ``jt.code(inputs, outputs, ...)``, with Vars as the outputs'
    templates, is accepted too and updates those Vars. ``cpu_grad_src``/``cuda_grad_src``:
    one source per input computing its gradient into ``@out`` from ``@dout`` (the
    output's gradient), ``@pout`` (the output) and the inputs. ``data``: numbers the code
    reads as ``data["name"]``, changed without recompiling. ``compile_options``: extra
    compiler flags, as a list, a string, or Jittor's ``{"FLAGS: -DX=1 -I/path": 1}``
    (default: ``jt.flags.compile_options``).

    Example::

        a = jt.array([3.0, 1.0, 2.0])
        b = jt.code(a.shape, a.dtype, [a], cpu_header="#include <algorithm>",
                    cpu_src="for (int i=0; i<in0_shape0; i++) @out(i) = @in0(i);"
                            "std::sort(&@out(0), &@out(0) + out_shape0);")
    """
    templates = None
    if _is_var_list(dtype) and _is_var_list(shape):
        inputs, templates = list(shape), list(dtype)
        shape, dtype = [t.shape for t in templates], [t.dtype for t in templates]
    several = _several_shapes(shape)
    shapes = [tuple(int(s) for s in item) for item in shape] if several else [tuple(int(s) for s in shape)]
    dtype_list = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(dtype_list) != len(shapes):
        raise MetajitValueError(f"jt.code: {len(shapes)} output shapes but {len(dtype_list)} dtypes given")
    input_vars = [item if isinstance(item, Var) else Var(item) for item in inputs]
    output_dtypes = [dtypes.as_dtype(d if d is not None else (input_vars[0].dtype if input_vars else "float32"))
                     for d in dtype_list]
    for item in shapes:
        if any(s < 0 for s in item[1:]):
            raise MetajitShapeError(f"jt.code: output shape {item}: only the first dim may be negative "
                                    "(a varying size, at most its absolute value)")
    data = dict(data or {})
    signature = (tuple((str(v.dtype), v.ndim) for v in input_vars),
                 tuple((str(d), len(s)) for d, s in zip(output_dtypes, shapes)))
    call, grad_sources = _prepared_call(signature, (cpu_header, cpu_src, cuda_header, cuda_src),
                                        (_source_list(cpu_grad_src, "cpu_grad_src"),
                                         _source_list(cuda_grad_src, "cuda_grad_src")),
                                        tuple(data), parse_compile_options(
                                            flags.compile_options if compile_options is None else compile_options))
    runner = CodeRunner(call, tuple(_data_value(name, value) for name, value in data.items()), grad_sources,
                        [tuple(abs(s) for s in item) for item in shapes])
    nodes = custom_ops.opaque_outputs(runner, [v._node for v in input_vars],
                                      list(zip(runner.output_shapes, output_dtypes)), graph.derived_requires_grad)
    if runner.grad_sources_given():
        runner.keep_outputs(nodes)
    outputs = [Var.from_node(node) for node in nodes]
    if any(s < 0 for item in shapes for s in item):
        executor.realise(nodes)  # a varying size: the shape is known once the code ran
    if templates is not None:
        for template, output in zip(templates, outputs):
            template.assign(output)
        return templates
    return outputs if several else outputs[0]


def _prepared_call(signature, texts, grad_texts, data_names, options):
    """``(CodeCall, {language: grad UserSources})`` for one call's sources, located in the
    user's file; a call site in a loop reuses the first call's answer."""
    site = calling_site()
    key = (site, signature, texts, tuple(map(tuple, grad_texts)), data_names, options)
    prepared = _prepared.get(key)
    if prepared is None:
        cpu_header, cpu_src, cuda_header, cuda_src = texts
        if not (cpu_src.strip() or cuda_src.strip()):
            raise MetajitValueError("jt.code: no source given; pass cpu_src (and/or cuda_src)")
        sources = tuple((language, caller_source(header, f"{language}_header", site),
                         caller_source(body, f"{language}_src", site))
                        for language, header, body in (("cpu", cpu_header, cpu_src), ("cuda", cuda_header, cuda_src)))
        grad_sources = {language: tuple(caller_source(s, f"{language}_grad_src", site) for s in items)
                        for language, items in zip(LANGUAGES, grad_texts)}
        prepared = (CodeCall(sources, *signature, data_names=data_names, options=options), grad_sources)
        if len(_prepared) > 1024:
            _prepared.clear()
        _prepared[key] = prepared
    return prepared


_prepared = {}  # call site and sources -> (CodeCall, grad sources): a call in a loop is prepared once


def _is_var_list(value):
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, Var) for v in value)


def _several_shapes(shape):
    return isinstance(shape, (list, tuple)) and bool(shape) and all(
        isinstance(item, (list, tuple)) or (hasattr(item, "__len__") and not isinstance(item, str)) for item in shape)


def _source_list(sources, name):
    if isinstance(sources, str):
        raise MetajitValueError(f"jt.code: {name} is a list with one source per input, got a string; "
                                f"write {name}=[...]")
    return list(sources or ())


def _data_value(name, value):
    if not isinstance(name, str):
        raise MetajitValueError(f"jt.code: data keys are strings, got {name!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MetajitValueError(f"jt.code: data[{name!r}] must be a number, got {value!r}") from None


def parse_compile_options(options):
    """Extra compiler flags from a list, a string, or Jittor's ``{"FLAGS: ...": 1}`` dict."""
    if not options:
        return ()
    if isinstance(options, dict):
        flags = []
        for key, enabled in options.items():
            if enabled:
                flags += shlex.split(key.split(":", 1)[1] if key.strip().startswith("FLAGS:") else key)
        return tuple(flags)
    return tuple(shlex.split(options) if isinstance(options, str) else options)


class CodeRunner:
    """Runs one ``jt.code`` call's compiled program on the device (see `custom_ops`)."""

    def __init__(self, call, data_values, grad_sources, output_shapes):
        self.call = call
        self.data_values = data_values
        self.grad_source_lists = grad_sources
        self.output_shapes = output_shapes  # the maxima where a size varies
        self.output_bytes = [graph.numel(shape) * dtypes.as_dtype(dtype).itemsize
                             for (dtype, _), shape in zip(call.outputs, output_shapes)]
        self.outputs = ()  # strong references when gradient sources may need every output

    @property
    def structure(self):
        """What identifies the operator in graph-structure keys."""
        return self.call

    def grad_sources_given(self):
        """Whether any gradient source was given."""
        return any(self.grad_source_lists.values())

    def keep_outputs(self, nodes):
        """Keep every output alive with any one of them: gradient sources read them all."""
        self.outputs = tuple(nodes)

    def set_options(self, options):
        """Replace the compiler options (Jittor's ``var.compile_options = {...}``)."""
        self.call = CodeCall(self.call.sources, self.call.inputs, self.call.outputs, self.call.aliases,
                             self.call.data_names, parse_compile_options(options))

    def run(self, input_nodes, output_nodes):
        """Compile (once) and run on the inputs' values; set the live outputs' buffers and shapes."""
        handle, program = _program_for(self.call)
        for node in input_nodes:
            executor.migrate(handle, node)
        buffers = [executor.DeviceBuffer(handle, size) for size in self.output_bytes]
        shapes = program.run([n.buffer.raw for n in input_nodes], [n.shape for n in input_nodes],
                             [b.raw for b in buffers], self.output_shapes, self.data_values)
        for node, buffer, shape in zip(output_nodes, buffers, shapes):
            if node is not None:
                node.buffer, node.shape = buffer, tuple(shape)

    def gradients(self, node, k, grad_node):
        """Per input, a new operator running its gradient source (None without one)."""
        inputs = list(node.inputs)
        if not self.outputs:
            return [None] * len(inputs)
        extra = [grad_node] + [output for output in self.outputs]
        aliases = (("dout", f"in{len(inputs)}"),) + tuple(
            (f"pout{j}", f"in{len(inputs) + 1 + j}") for j in range(len(self.outputs))) + (
            ("pout", f"in{len(inputs) + 1 + k}"),)
        grads = []
        for index, source in enumerate(inputs):
            bodies = {language: items[index] if index < len(items) else UserSource("")
                      for language, items in self.grad_source_lists.items()}
            if not any(body.text.strip() for body in bodies.values()):
                grads.append(None)
                continue
            call = CodeCall(tuple((language, header, bodies[language]) for language, header, _ in self.call.sources),
                            tuple((str(n.dtype), len(n.shape)) for n in inputs + extra),
                            ((str(source.dtype), len(source.shape)),), aliases, self.call.data_names, self.call.options)
            runner = CodeRunner(call, self.data_values, {}, [source.shape])
            (gradient,) = custom_ops.opaque_outputs(runner, inputs + extra, [(source.shape, source.dtype)],
                                                    graph.derived_requires_grad)
            grads.append(gradient)
        return grads


def _program_for(call):
    """``(handle, program)``: the current device's compiled program for ``call``, or the cpu
    backend's when the device has no program for it and the call has a cpu source."""
    handle = plugins.current()
    program = _compiled(handle, call)
    if program is not None:
        return handle, program
    kind = handle.description.device_kind
    given = ", ".join(f"{language}_src" for language in call.languages())
    if "cpu" in call.languages() and handle.name != "cpu":
        cpu = plugins.registry().handle("cpu")
        program = _compiled(cpu, call)
        if program is not None:
            return cpu, program
    wanted = f"{kind}_src" if kind in LANGUAGES else "cpu_src (it runs jt.code on the cpu backend)"
    raise MetajitDeviceError(f"jt.code: device {handle.name!r} needs {wanted}, but this operator has only {given}; "
                             "add that source or choose another device (jt.set_device)")


def _compiled(handle, call):
    programs = handle.programs
    program = programs.get(call)
    if program is None and handle.compile_code is not None:
        program = handle.compile_code(call)
        if program is not None:
            programs[call] = program
    return program


def _runner_of(var):
    node = var._node
    if node.op != custom_ops.OPAQUE or not isinstance(node.attrs[0].runner, CodeRunner):
        raise MetajitValueError("compile_options belongs to jt.code outputs; this Var is not one")
    return node.attrs[0].runner


def _get_compile_options(var):
    """Jittor's ``var.compile_options``: the extra compiler flags of the jt.code that made ``var``."""
    options = _runner_of(var).call.options
    return {"FLAGS: " + " ".join(shlex.quote(o) for o in options): 1} if options else {}


def _set_compile_options(var, options):
    if var._node.is_realised:
        raise MetajitValueError("compile_options must be set before the jt.code output is computed")
    _runner_of(var).set_options(options)


Var.compile_options = property(_get_compile_options, _set_compile_options)
