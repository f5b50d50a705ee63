"""Inline user sources (``jt.code``): the macro language, the C++ entry wrapper, and
compiler messages mapped back to the user's Python lines.

A `CodeCall` is what a backend compiles for one ``jt.code`` operator: per language
(``"cpu"``, ``"cuda"``) the user's header and body as `UserSource` texts, the inputs' and
outputs' dtypes and ranks, the names of the ``data`` values (their values are launch
arguments, so new values never recompile) and extra compiler options. Shapes are launch
arguments too: one compiled operator serves every shape of the same ranks.

The macros (Jittor's): ``@in0(i, j)`` / ``@out0(i)`` / ``@out(i)`` element access,
``@alias(name, in0)``, ``@ARGS_DEF`` / ``@ARGS`` / ``@PRECALC`` (shape and pointer
parameters for helper functions and CUDA kernels). Plain names follow the same pattern:
``in0`` (a `Var`-like pointer: ``->shape[k]``, ``->num``, ``->ptr<T>()``,
``->set_shape({n})`` on outputs), ``in0_p``, ``in0_type``, ``in0_shape0``, ``in0_stride0``.
``data["name"]`` reads a data value as a double. Example::

    call = CodeCall(sources=(("cpu", UserSource(""), UserSource("@out(0) = @in0(0);")),),
                    inputs=(("float32", 1),), outputs=(("float32", 1),))
    text = render_host_entry(call, "cpu", "mj_code_entry")
"""
import ctypes
import dataclasses
import functools
import linecache
import os
import re
import sys
import threading

from metajit.errors import MetajitValueError

# Jittor's spellings of the dtypes, typedef'd for user code
TYPE_SPELLINGS = {"bool": "bool", "uint8": "uint8", "int8": "int8", "int16": "int16", "int32": "int32",
                  "int64": "int64", "float16": "float16", "float32": "float32", "float64": "float64"}


@dataclasses.dataclass(frozen=True)
class UserSource:
    """One user text and where it lives: ``origin`` (a file name, or a ``<description>``)
    and the ``first_line`` there that holds its first line; ``site`` (``file:line`` of the
    call that gave it, for messages) does not take part in comparisons."""

    text: str
    origin: str = "<jt.code>"
    first_line: int = 1
    site: str = dataclasses.field(default="", compare=False)

    def line_directive(self):
        """The ``#line`` directive that makes compilers report this text's own lines."""
        return f'#line {self.first_line} "{self.origin}"'


@dataclasses.dataclass(frozen=True)
class CodeCall:
    """One ``jt.code`` operator as a backend sees it (see the module docstring).

    ``sources``: ``((language, header UserSource, body UserSource), ...)``; ``inputs`` and
    ``outputs``: ``((dtype name, ndim), ...)``; ``aliases``: ``((name, target), ...)``
    in effect before the header (gradient operators name ``dout`` and ``pout`` so);
    ``data_names``: the ``data`` keys, in launch order; ``options``: extra compiler flags."""

    sources: tuple
    inputs: tuple
    outputs: tuple
    aliases: tuple = ()
    data_names: tuple = ()
    options: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "_hash", hash((self.sources, self.inputs, self.outputs, self.aliases,
                                                self.data_names, self.options)))

    def __hash__(self):  # programs are looked up by call at every run: hash the sources once
        return self._hash

    def __reduce__(self):  # string hashes differ between processes: rebuild, never copy ``_hash``
        return (CodeCall, (self.sources, self.inputs, self.outputs, self.aliases, self.data_names, self.options))

    def languages(self):
        """The languages this operator has a body for."""
        return tuple(language for language, _, body in self.sources if body.text.strip())

    def source(self, language):
        """``(header, body)`` for ``language``, or None when the user gave no body for it."""
        for name, header, body in self.sources:
            if name == language and body.text.strip():
                return header, body
        return None

    def variables(self):
        """``{name: ndim}`` of every input and output variable (``in0``..., ``out0``...)."""
        names = {f"in{k}": ndim for k, (_, ndim) in enumerate(self.inputs)}
        names.update({f"out{k}": ndim for k, (_, ndim) in enumerate(self.outputs)})
        return names


def calling_site():
    """``(file name, line)`` of the innermost calling frame outside metajit, or None."""
    frame = sys._getframe(1)
    while frame is not None and _in_metajit(frame.f_code.co_filename):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def caller_source(text, description, site=None):
    """A `UserSource` for ``text``, located in the user's Python file when the text
    appears there verbatim near the calling line (a triple-quoted literal), else named
    ``<description>`` with its own line numbers. ``site``: `calling_site`'s answer, when
    the caller already has it."""
    if not text.strip():
        return UserSource(text, f"<{description}>")
    site = site or calling_site()
    if site is None:
        return UserSource(text, f"<{description}>")
    key = (text, description) + site
    found = _located.get(key)
    if found is None:
        filename, call_line = site
        where = f"{filename}:{call_line}"
        line = _find_in_file(text, filename, call_line)
        found = UserSource(text, filename, line, where) if line else UserSource(text, f"<{description}>", 1, where)
        if len(_located) > 4096:
            _located.clear()
        _located[key] = found
    return found


_located = {}  # (text, description, file, line) -> UserSource: a call in a loop is located once
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


@functools.lru_cache(maxsize=1024)
def _in_metajit(filename):
    return filename.startswith("<frozen") or os.path.abspath(filename).startswith(_PACKAGE)


def _find_in_file(text, filename, call_line):
    lines = text.split("\n")
    file_lines = [line.rstrip("\n") for line in linecache.getlines(filename)]
    if not file_lines or not text.strip():
        return None
    candidates = []
    for start in range(len(file_lines) - len(lines) + 1):
        if not file_lines[start].endswith(lines[0]):
            continue
        middle = all(file_lines[start + k] == lines[k] for k in range(1, len(lines) - 1))
        if middle and (len(lines) == 1 or file_lines[start + len(lines) - 1].startswith(lines[-1])):
            candidates.append(start + 1)
    if not candidates:
        return None
    return min(candidates, key=lambda line: abs(line - call_line))


_TOKENS = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|@(\w+)|[A-Za-z_]\w*""",
                     re.S)
_ALIASED_NAME = re.compile(r"(?P<name>[A-Za-z_]\w*?)(?P<suffix>_p|_type|_dim|_shape\d+|_stride\d+)?")


class MacroExpander:
    """Expands the macros of one operator's texts, header first: aliases made in the
    header hold in the body (as Jittor's ``#define``-based aliases do). Expansions never
    add or remove lines, so compiler line numbers stay the user's."""

    def __init__(self, call):
        self.variables = call.variables()
        self.aliases = {"out": "out0"}
        for name, target in call.aliases:
            self.aliases[name] = target

    def expand(self, source):
        """The text of `UserSource` ``source`` with every macro and alias expanded."""
        return self._expand(source.text, source, 0)

    def _error(self, message, source, position):
        line = source.first_line + source.text.count("\n", 0, position)
        raise MetajitValueError(f"jt.code: {message} ({source.origin}, line {line})")

    def _resolve(self, name):
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name

    def _rename(self, identifier):
        match = _ALIASED_NAME.fullmatch(identifier)
        name, suffix = match.group("name"), match.group("suffix") or ""
        if name in self.aliases:
            return self._resolve(name) + suffix
        if suffix and identifier in self.aliases:
            return self._resolve(identifier)
        return identifier

    def _expand(self, text, source, offset):
        pieces, position = [], 0
        while True:
            match = _TOKENS.search(text, position)
            if match is None:
                break
            start, token = match.start(), match.group(0)
            pieces.append(text[position:start])
            position = match.end()
            if token.startswith(("//", "/*", '"', "'")):
                pieces.append(token)
            elif match.group(1) is None:
                pieces.append(self._rename(token))
            else:
                expansion, position = self._macro(match.group(1), text, position, source, offset + start)
                pieces.append(expansion)
        pieces.append(text[position:])
        return "".join(pieces)

    def _macro(self, name, text, position, source, where):
        if name in ("ARGS_DEF", "ARGS", "PRECALC"):
            return getattr(self, "_" + name.lower())(), position
        arguments, end = call_arguments(text, position)
        if arguments is None:
            self._error(f"@{name} must be followed by '(' (e.g. @{name}(i))", source, where)
        skipped_lines = "\n" * text.count("\n", position, end)
        if name == "alias":
            if len(arguments) != 2 or not all(re.fullmatch(r"\s*[A-Za-z_]\w*\s*", a) for a in arguments):
                self._error("@alias takes a new name and a variable, e.g. @alias(points, in0)", source, where)
            alias, target = (a.strip() for a in arguments)
            if self._resolve(target) not in self.variables:
                self._error(f"@alias({alias}, {target}): {target} is not an input or output "
                            f"(there are {', '.join(self.variables)})", source, where)
            self.aliases[alias] = target
            return skipped_lines, end
        variable = self._resolve(name)
        if variable not in self.variables:
            self._error(f"unknown macro @{name}; the variables are {', '.join(self.variables)} "
                        "(and @alias names), the other macros @alias, @ARGS_DEF, @ARGS, @PRECALC",
                        source, where)
        ndim = self.variables[variable]
        indices = [] if arguments == [""] else arguments
        if len(indices) != ndim:
            self._error(f"@{name}({', '.join(a.strip() for a in indices)}) gives {len(indices)} indices "
                        f"but {variable} has {ndim} dims", source, where)
        expanded = [self._expand(index, source, where).replace("\n", " ").strip() for index in indices]
        offset_terms = "+".join(f"({index})*{variable}_stride{axis}" for axis, index in enumerate(expanded))
        return f"{variable}_p[{offset_terms or 0}]" + skipped_lines, end

    def _args_def(self):
        parameters = []
        for variable, ndim in self.variables.items():
            parameters.append(f"{variable}_type* __restrict__ {variable}_p")
            parameters += [f"index_t {variable}_shape{axis}" for axis in range(ndim)]
        return ", ".join(parameters + ["int mj_unused"])

    def _args(self):
        arguments = []
        for variable, ndim in self.variables.items():
            arguments.append(f"{variable}_p")
            arguments += [f"{variable}_shape{axis}" for axis in range(ndim)]
        return ", ".join(arguments + ["0"])

    def _precalc(self):
        return " ".join(stride_declarations(variable, ndim) for variable, ndim in self.variables.items())


def stride_declarations(variable, ndim):
    """C declarations of ``variable``'s element strides (row-major, from its shape names)."""
    declarations = []
    for axis in reversed(range(ndim)):
        value = "1" if axis == ndim - 1 else f"{variable}_stride{axis + 1}*{variable}_shape{axis + 1}"
        declarations.append(f"const index_t {variable}_stride{axis} = {value}; (void){variable}_stride{axis};")
    return " ".join(declarations)


def call_arguments(text, position):
    """``(arguments, end)`` of a parenthesised, comma-separated list starting at
    ``text[position:]`` (after spaces), or ``(None, position)`` when none starts there."""
    start = position
    while start < len(text) and text[start] in " \t":
        start += 1
    if start >= len(text) or text[start] != "(":
        return None, position
    depth, arguments, current, k = 0, [], [], start
    while k < len(text):
        char = text[k]
        if char in "\"'":
            literal = re.compile(r'"(?:\\.|[^"\\\n])*"' if char == '"' else r"'(?:\\.|[^'\\\n])*'").match(text, k)
            if literal is not None:
                current.append(literal.group(0))
                k = literal.end()
                continue
        if char in "([{":
            depth += 1
            if depth == 1:
                k += 1
                continue
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                arguments.append("".join(current))
                return arguments, k + 1
        elif char == "," and depth == 1:
            arguments.append("".join(current))
            current = []
            k += 1
            continue
        current.append(char)
        k += 1
    return None, position


_PRELUDE_PATH = os.path.join(os.path.dirname(__file__), "inline_source.h")


@functools.lru_cache(maxsize=1)
def host_prelude():
    """The C++ every operator's host translation unit starts with: the dtype names
    (``float32``...), ``index_t``, the variable type (``in0->shape``, ``set_shape``) and
    ``data``'s type."""
    with open(_PRELUDE_PATH) as handle:
        return handle.read()




def type_declarations(call):
    """``typedef`` lines naming every variable's element type (``in0_type``...)."""
    lines = [f"typedef {TYPE_SPELLINGS[dtype]} in{k}_type;" for k, (dtype, _) in enumerate(call.inputs)]
    lines += [f"typedef {TYPE_SPELLINGS[dtype]} out{k}_type;" for k, (dtype, _) in enumerate(call.outputs)]
    return "\n".join(lines)


def variable_declarations(call):
    """C++ statements declaring every variable of ``call`` inside the entry function
    (from its arguments ``mj_in``, ``mj_in_shapes``, ``mj_out``, ``mj_out_shapes``, ``mj_data``)."""
    lines = []
    for kind, specs, pointers, shapes in (("in", call.inputs, "mj_in", "mj_in_shapes"),
                                          ("out", call.outputs, "mj_out", "mj_out_shapes")):
        offset = 0
        for k, (_, ndim) in enumerate(specs):
            name = f"{kind}{k}"
            resized = f"{shapes} + {offset}" if kind == "out" else "nullptr"
            lines.append(f"mj_code_var mj_{name}({pointers}[{k}], {ndim}, {shapes} + {offset}, {resized}); "
                         f"mj_code_var* const {name} = &mj_{name};")
            lines.append(f"{name}_type* __restrict__ {name}_p = static_cast<{name}_type*>({pointers}[{k}]);")
            lines += [f"const index_t {name}_shape{axis} = {shapes}[{offset + axis}];" for axis in range(ndim)]
            lines.append(stride_declarations(name, ndim))
            offset += ndim
    names = ", ".join(f'"{name}"' for name in call.data_names) or "nullptr"
    lines.append(f"static const char* const mj_data_names[] = {{{names}}};")
    lines.append(f"const mj_code_data data{{{len(call.data_names)}, mj_data_names, mj_data}};")
    return "\n".join(lines)


ENTRY_PARAMETERS = ("void* const* mj_in, const index_t* mj_in_shapes, void* const* mj_out, "
                    "index_t* mj_out_shapes, const double* mj_data, char* mj_error, index_t mj_error_size")


def render_host_entry(call, language, symbol):
    """The C++ translation unit of ``call``'s ``language`` source with an ``extern "C"``
    entry ``int symbol(ENTRY_PARAMETERS)``: it returns 0, or 1 with the message of a C++
    exception thrown by the user's code in ``mj_error``. Output shapes arrive as the
    maxima in ``mj_out_shapes`` and leave as set by ``set_shape``."""
    header, body = call.source(language)
    expander = MacroExpander(call)
    header_text = header.line_directive() + "\n" + expander.expand(header)
    return host_entry(call, symbol, header_text, body.line_directive() + "\n" + expander.expand(body))


def host_entry(call, symbol, header_text, body_text, extra_parameter="", setup=""):
    """`render_host_entry` from expanded texts (each starting with its ``#line``): the
    ``header_text`` at file scope, the ``body_text`` as the entry's body; a backend may add
    one ``extra_parameter`` to the entry and ``setup`` statements before the body."""
    parameters = ENTRY_PARAMETERS + (", " + extra_parameter if extra_parameter else "")
    return "\n".join([
        host_prelude(), type_declarations(call), header_text,
        '#line 1 "<jt.code entry>"',
        f'extern "C" int {symbol}({parameters}) {{',
        setup, "try {", variable_declarations(call), "{", body_text,
        '#line 1 "<jt.code entry end>"',
        "}",
        "} catch (const std::exception& error) {",
        "    std::snprintf(mj_error, mj_error_size, \"%s\", error.what()); return 1;",
        "} catch (...) {",
        "    std::snprintf(mj_error, mj_error_size, \"a C++ exception of unknown type\"); return 1;",
        "}",
        "return 0;",
        "}",
    ]) + "\n"


_DIAGNOSTIC = re.compile(r"^(?P<file>[^:(\n]+)(?::(?P<line>\d+):(?:(?P<column>\d+):)?|\((?P<nvrtc_line>\d+)\):)"
                         r"\s*(?P<kind>fatal error|error|warning|note)?")


def compile_error_message(call, language, compiler_output, kept_source, compiler_name):
    """A `MetajitCompileError` message for ``call`` that failed to compile: the
    compiler's diagnostics on the user's lines, each followed by that line of the user's
    text, then the kept generated source. Diagnostics on the generated wrapper only
    (a dtype the code does not accept) are shown as they are."""
    header, body = call.source(language)
    texts = {(source.origin, source.first_line + k): line
             for source in (header, body) for k, line in enumerate(source.text.split("\n"))}
    origins = {header.origin, body.origin}
    shown, user_lines = [], 0
    for line in compiler_output.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match is None:
            continue
        if match.group("file") in origins:
            user_lines += 1
            shown.append("  " + line.strip())
            line_number = int(match.group("line") or match.group("nvrtc_line"))
            text = texts.get((match.group("file"), line_number))
            if text is not None and match.group("kind") in ("error", "fatal error"):
                shown.append(f"  {line_number:>5} | {text.strip()}")
        elif match.group("kind") in ("error", "fatal error") and "<jt.code entry" not in match.group("file"):
            shown.append("  " + line.strip())
    if not user_lines:
        shown = ["  " + line for line in compiler_output.strip().splitlines()[:30]]
    site = f" given at {body.site}" if body.site else ""
    return (f"jt.code: the {language}_src{site} does not compile ({compiler_name}):\n" + "\n".join(shown[:40])
            + f"\ngenerated source: {kept_source}")


ERROR_BUFFER_BYTES = 2048
_error_buffers = threading.local()  # one per thread, reused: the C++ writes it only when it throws


def run_entry(entry, input_addresses, input_shapes, output_addresses, output_shapes, data, *extra, origin=""):
    """Call a loaded entry point of `host_entry` (a ctypes function) and return the
    outputs' shapes; a C++ exception in the user's code raises `MetajitValueError` with
    its message. ``extra``: the backend's ``extra_parameter`` value, if any."""
    inputs = (ctypes.c_void_p * max(len(input_addresses), 1))(*input_addresses)
    outputs = (ctypes.c_void_p * max(len(output_addresses), 1))(*output_addresses)
    input_sizes = [s for shape in input_shapes for s in shape] or [0]
    output_sizes = [s for shape in output_shapes for s in shape] or [0]
    flat_inputs = (ctypes.c_int64 * len(input_sizes))(*input_sizes)
    flat_outputs = (ctypes.c_int64 * len(output_sizes))(*output_sizes)
    values = (ctypes.c_double * max(len(data), 1))(*data)
    error = getattr(_error_buffers, "buffer", None)
    if error is None:
        error = _error_buffers.buffer = ctypes.create_string_buffer(ERROR_BUFFER_BYTES)
    if entry(inputs, flat_inputs, outputs, flat_outputs, values, error, ERROR_BUFFER_BYTES, *extra):
        raise MetajitValueError(f"jt.code: the operator's C++ threw: {error.value.decode(errors='replace')}"
                                + (f" (source given at {origin})" if origin else ""))
    shapes, offset = [], 0
    for shape in output_shapes:
        shapes.append(tuple(flat_outputs[offset:offset + len(shape)]))
        offset += len(shape)
    return shapes


ENTRY_ARGUMENT_TYPES = (ctypes.c_void_p,) * 5 + (ctypes.c_char_p, ctypes.c_longlong)
