"""The `ast` pass that rewrites PyTorch code as metajit code.

Names are resolved through the file's imports (``import torch.nn as nn`` makes ``nn.Conv2d``
the PyTorch name ``torch.nn.Conv2d``), then converted by the table (`mapping.pjmap`), by
the special rules in `mapping`, or to the same name in metajit. Whatever has no metajit
counterpart is replaced by a stand-in from `shims` that raises where the code reaches it,
and recorded as an `Unconverted` (line, construct, reason).
"""
import ast
import collections
import copy
import inspect

import metajit

from . import mapping
from .arguments import ArgumentError, has_unpacking, parse_signature, translate
from .shims import TORCHVISION

Unconverted = collections.namedtuple("Unconverted", ["line", "construct", "reason"])

# names a snippet without imports means (Jittor's converter takes bare model code)
DEFAULT_ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional"}
DTYPE_NAMES = {"float32", "float", "float64", "double", "float16", "half", "bfloat16", "int8", "int16", "int32",
               "int", "int64", "long", "uint8", "bool"}
# keywords that only place data (metajit keeps everything on the selected device)
PLACEMENT_KEYWORDS = {"device", "pin_memory", "non_blocking", "memory_format"}
_LONGEST_CONSTRUCT = 100
INDEX_REDUCTIONS = mapping.INDEX_FIRST | set(mapping.VALUE_AND_INDEX)
_AMBIGUOUS_EXTREME = "cannot tell a dimension from a tensor here: write dim=... (or torch.maximum for two tensors)"


def expression(text):
    """The ast expression for source ``text``."""
    return ast.parse(text, mode="eval").body


def metajit_object(spelling):
    """The metajit object that ``spelling`` (``"nn.Linear"``, ``"jt.optim.SGD"``) names, or None."""
    found = {"jt": metajit, "nn": metajit.nn, "init": metajit.init}.get(spelling.split(".")[0])
    for part in spelling.split(".")[1:]:
        found = getattr(found, part, None)
    return found


def _absolute(module, level, package):
    if not level:
        return module
    if package is None:
        return None
    anchor = package.split(".")
    return ".".join(anchor[:len(anchor) - level + 1] + ([module] if module else []))


def _is_pytorch(name):
    return name is not None and name.split(".")[0] in ("torch", "torchvision")


def _bound_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _strip_data(receiver):
    """``x.data`` -> ``x``: PyTorch's untracked view of a tensor, before a method metajit
    spells on the Var itself."""
    if isinstance(receiver, ast.Attribute) and receiver.attr == "data":
        return receiver.value
    return receiver


def _as_store(node):
    target = copy.deepcopy(node)
    target.ctx = ast.Store()
    return target


def _is_int_literal(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _renamed(function, name):
    """``x.max`` or ``jt.max`` with its last name replaced."""
    return ast.Attribute(function.value, name, ast.Load())


def _final_name(node):
    while isinstance(node, ast.Call):
        node = node.func
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


class Converter(ast.NodeTransformer):
    """Rewrites one module's tree; afterwards `unconverted` lists what it could not
    convert and `shim_names` maps local names to the torchvision helpers they stand for."""

    def __init__(self, package=None):
        self.package = package
        self.aliases = {}      # local name -> PyTorch qualified name, converted where used
        self.shim_names = {}   # local name -> (torchvision name, shim definition name)
        self.unconverted = []

    # -- imports ---------------------------------------------------------------------

    def _record_imports(self, tree):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_pytorch(alias.name):
                        local = alias.asname or alias.name.split(".")[0]
                        self.aliases[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node.module, node.level, self.package)
                for alias in node.names if _is_pytorch(module) else ():
                    name = f"{module}.{alias.name}"
                    local = alias.asname or alias.name
                    if name in TORCHVISION:
                        self.shim_names[local] = (name, TORCHVISION[name])
                    else:
                        self.aliases[local] = name
        unbound = _bound_names(tree)
        self.aliases.update((k, v) for k, v in DEFAULT_ALIASES.items() if k not in unbound)

    def visit_Module(self, node):
        self._record_imports(node)
        return self.generic_visit(node)

    def visit_Import(self, node):
        node.names = [a for a in node.names if not _is_pytorch(a.name)]
        return node if node.names else None

    def visit_ImportFrom(self, node):
        return None if _is_pytorch(_absolute(node.module, node.level, self.package)) else node

    # -- reporting -------------------------------------------------------------------

    def _report(self, node, construct, reason):
        if len(construct) > _LONGEST_CONSTRUCT:
            construct = construct[:_LONGEST_CONSTRUCT - 3] + "..."
        self.unconverted.append(Unconverted(getattr(node, "lineno", 0), construct, reason))

    def _stand_in(self, node, construct, reason):
        """``_unconverted(construct, reason)``, reported: raises where the code reaches it."""
        self._report(node, construct, reason)
        return ast.Call(ast.Name("_unconverted", ast.Load()), [ast.Constant(construct), ast.Constant(reason)], [])

    # -- names -----------------------------------------------------------------------

    def _qualified(self, node):
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _counterpart(self, name):
        """(spelling, metajit object) of PyTorch's ``name`` in metajit, or (None, reason)."""
        if name in mapping.RENAMES:
            return mapping.RENAMES[name], metajit_object(mapping.RENAMES[name])
        if name in mapping.MODULES:
            return mapping.MODULES[name][0], None
        if name in mapping.REASONS:
            return None, mapping.REASONS[name]
        module = max((m for m in mapping.MODULES if name.startswith(m + ".")), key=len, default=None)
        if module is None and name.startswith("torchvision."):
            return None, f"{name} is torchvision code: convert its file as well and import it from there"
        if module is None:
            return None, f"metajit has no counterpart of {name}"
        rest = name[len(module) + 1:]
        for place in mapping.MODULES[module]:
            found = metajit_object(f"{place}.{rest}")
            if found is not None:
                return f"{place}.{rest}", found
        return None, f"metajit has no {mapping.MODULES[module][0]}.{rest}"

    def _reference(self, node, name):
        spelling, found = self._counterpart(name)
        if spelling is None:
            return self._stand_in(node, ast.unparse(node), found)
        return ast.copy_location(expression(spelling), node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.aliases:
            return self._reference(node, self.aliases[node.id])
        return node

    def visit_Attribute(self, node):
        name = self._qualified(node)
        if name is not None and isinstance(node.ctx, ast.Load):
            return self._reference(node, name)
        return self.generic_visit(node)

    # -- definitions and statements --------------------------------------------------

    def _annotation(self, node):
        """The converted annotation, or None where it names something without a metajit
        counterpart (annotations do not change what code does)."""
        if node is None:
            return None
        count = len(self.unconverted)
        converted = self.visit(node)
        if len(self.unconverted) > count:
            del self.unconverted[count:]
            return None
        return converted

    def _decorator_name(self, decorator):
        return self._qualified(decorator.func if isinstance(decorator, ast.Call) else decorator)

    def visit_FunctionDef(self, node):
        names = [self._decorator_name(d) for d in node.decorator_list]
        if any(n in mapping.STUB_DECORATORS for n in names):
            return None
        node.decorator_list = [d for d, n in zip(node.decorator_list, names) if n not in mapping.DROPPED_DECORATORS]
        arguments = node.args
        every_argument = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [
            a for a in (arguments.vararg, arguments.kwarg) if a]
        annotations = [self._annotation(a.annotation) for a in every_argument]
        returns = self._annotation(node.returns)
        for argument in every_argument:
            argument.annotation = None
        node.returns = None
        self.generic_visit(node)
        for argument, annotation in zip(every_argument, annotations):
            argument.annotation = annotation
        node.returns = returns
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for statement in node.body:
            if not isinstance(statement, ast.FunctionDef):
                continue
            if statement.name == "forward":  # Jittor's name for the computation
                statement.name = "execute"
            elif statement.name in mapping.MODULE_INTERNALS and not hasattr(metajit.nn.Module, statement.name):
                self._report(statement, f"def {statement.name}", "overrides a torch.nn.Module internal that "
                             "metajit's Module never calls: it has no effect")
        return self.generic_visit(node)

    def visit_AnnAssign(self, node):
        annotation = self._annotation(node.annotation)
        node.annotation = ast.Constant(None)
        node = self.generic_visit(node)
        if annotation is not None:
            node.annotation = annotation
            return node
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign([node.target], node.value), node)

    def visit_Assign(self, node):
        if any(self._qualified(t) for t in node.targets):  # e.g. torch.backends.cudnn.benchmark = True
            self._report(node, ast.unparse(node), "a PyTorch setting with no metajit counterpart: removed")
            return None
        return self.generic_visit(node)

    def visit_Expr(self, node):
        value = node.value
        if isinstance(value, ast.Call):
            if self._is_dropped_statement(value.func):
                return None
            augmented = self._in_place_statement(value)
            if augmented is not None:
                return ast.copy_location(augmented, node)
        node = self.generic_visit(node)
        if isinstance(value, ast.Call) and isinstance(node.value, (ast.Name, ast.Attribute)):
            return None  # a call that became its receiver, e.g. model.cuda()
        return node

    def _is_dropped_statement(self, function):
        name = self._qualified(function)
        if isinstance(function, ast.Name) and function.id in self.shim_names:
            name = self.shim_names[function.id][0]
        return name in mapping.DROPPED_STATEMENTS

    def _in_place_statement(self, call):
        """``x.add_(y)`` as a statement: ``x += y`` (``x.data.add_(y)``: ``x.assign(x + y)``)."""
        function = call.func
        if (not isinstance(function, ast.Attribute) or function.attr not in mapping.IN_PLACE_ARITHMETIC
                or not isinstance(function.value, (ast.Name, ast.Attribute, ast.Subscript))
                or self._qualified(function.value) or len(call.args) != 1
                or any(k.arg != "alpha" for k in call.keywords)):
            return None
        operator = getattr(ast, mapping.IN_PLACE_ARITHMETIC[function.attr])()
        receiver = self.visit(function.value)
        other = self.visit(call.args[0])
        for keyword in call.keywords:
            other = ast.BinOp(self.visit(keyword.value), ast.Mult(), other)
        target = _strip_data(receiver)
        if target is not receiver:
            update = ast.BinOp(copy.deepcopy(target), operator, other)
            return ast.Expr(ast.Call(ast.Attribute(target, "assign", ast.Load()), [update], []))
        return ast.AugAssign(_as_store(receiver), operator, other)

    # -- calls -----------------------------------------------------------------------

    def visit_Call(self, node):
        original = ast.unparse(node)
        name = self._qualified(node.func)
        if name is not None:
            return self._pytorch_call(node, name, original)
        if isinstance(node.func, ast.Attribute):
            return self._method_call(node, original)
        return self.generic_visit(node)

    def _visit_arguments(self, node, keep=lambda keyword: True):
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords if keep(k)]

    def _pytorch_call(self, node, name, original):
        if name in mapping.CALL_RESULTS:
            return ast.copy_location(expression(mapping.CALL_RESULTS[name]), node)
        if name in mapping.FIRST_ARGUMENT and node.args:
            return self.visit(node.args[0])
        if name == mapping.ANNOTATE and len(node.args) == 2:
            return self.visit(node.args[1])
        if name == mapping.CHECKPOINT and node.args:
            self._visit_arguments(node, keep=lambda k: k.arg not in mapping.CHECKPOINT_OPTIONS)
            return ast.copy_location(ast.Call(node.args[0], node.args[1:], node.keywords), node)
        self._visit_arguments(node)
        parent, _, short = name.rpartition(".")
        if parent == "torch" and short in INDEX_REDUCTIONS:
            node.func = ast.copy_location(expression(f"jt.{short}"), node.func)
            converted = self._index_reduction(node, short, node.args[1:])
            if converted is not None:
                return converted
            node.func = self._stand_in(node, original, _AMBIGUOUS_EXTREME)
            return node
        entry = self._table_entry(name)
        if entry is not None:
            return self._apply_entry(node, entry, original)
        spelling, found = self._counterpart(name)
        problem = found if spelling is None else self._fit_call(found, node, spelling)
        if problem:
            node.func = self._stand_in(node, original, problem)
            return node
        node.func = ast.copy_location(expression(spelling), node.func)
        return node

    @staticmethod
    def _table_entry(name):
        entry = mapping.pjmap.get(name)
        if entry is not None:
            return entry
        parent, _, short = name.rpartition(".")
        entry = mapping.pjmap.get(short)
        if entry is None:
            return None
        prefixes = entry["pytorch"].get("prefix")
        if prefixes is None:
            return entry if name.startswith("torch.") else None
        return entry if parent in prefixes else None

    @staticmethod
    def _fit_call(found, call, spelling):
        """None when ``found`` accepts the call's arguments (placement keywords it lacks are
        dropped), else the reason."""
        try:
            signature = inspect.signature(found)
        except (TypeError, ValueError):
            return None
        call.keywords = [k for k in call.keywords
                         if k.arg not in PLACEMENT_KEYWORDS or k.arg in signature.parameters]
        if has_unpacking(call):
            return None
        try:
            signature.bind(*call.args, **{k.arg: k.value for k in call.keywords})
        except TypeError as error:
            return f"metajit's {spelling} does not take these arguments ({error})"
        return None

    def _apply_entry(self, node, entry, original, receiver=None):
        """The call rebuilt by a table entry (a method call when ``receiver`` is given)."""
        pytorch, jittor = entry["pytorch"], entry["jittor"]
        function_form = receiver is None and "prefix" in pytorch
        form = "args_prefix" if function_form else "args"
        extras = {k: expression(v) for k, v in entry.get("extras", {}).items()}
        if receiver is not None and jittor.get("receiver"):
            extras[jittor["receiver"]] = receiver
        try:
            positional, keywords = translate(node, parse_signature(pytorch[form]),
                                             parse_signature(jittor.get(form, jittor["args"])),
                                             entry.get("links", {}), extras, entry.get("delete", []))
        except ArgumentError as error:
            callee = ast.unparse(node.func) if receiver is None else f"Tensor.{node.func.attr}"
            node.func = self._stand_in(node, original, f"{callee} {error}")
            return node
        if receiver is not None and not jittor.get("receiver"):
            function = ast.Attribute(receiver, jittor["name"], ast.Load())
        else:
            place = jittor.get("prefix") if function_form else jittor.get("module")
            function = expression(f"{place}.{jittor['name']}" if place else jittor["name"])
        return ast.copy_location(ast.Call(function, positional, keywords), node)

    def _method_call(self, node, original):
        method = node.func.attr
        receiver = self.visit(node.func.value)
        self._visit_arguments(node)
        if method in mapping.SHAPE_METHODS:
            dims = node.args or [k.value for k in node.keywords if k.arg == "dim"]
            shape = ast.Attribute(receiver, mapping.SHAPE_METHODS[method], ast.Load())
            return ast.copy_location(ast.Subscript(shape, dims[0], ast.Load()) if dims else shape, node)
        if method in mapping.REMOVED_METHODS:
            return receiver
        if method == "to":
            return self._to_call(node, receiver, original)
        if method == "forward" and (getattr(receiver, "id", None) == "self" or _final_name(receiver) == "super"):
            method = node.func.attr = "execute"
        if method in INDEX_REDUCTIONS:
            node.func.value = receiver
            converted = self._index_reduction(node, method, node.args)
            if converted is not None:
                return converted
            return self._unconverted_method(node, receiver, original, _AMBIGUOUS_EXTREME)
        entry = mapping.pjmap.get(method)
        if entry is not None and "prefix" in entry["pytorch"]:
            return self._apply_entry(node, entry, original, _strip_data(receiver))
        if method == "numpy":
            receiver = _strip_data(receiver)
        if method in mapping.TENSOR_METHODS and not hasattr(metajit.Var, method):
            return self._unconverted_method(node, receiver, original, f"metajit's Var has no {method}()")
        node.func.value = receiver
        return node

    def _index_reduction(self, node, name, dims):
        """torch's argmax/argmin (the indices) or max/min over a dim (values, indices) from
        metajit's argmax/argmin, which give (indices, values); max/min of all elements stays.
        None when ``dims[0]`` may be a tensor (``torch.max(a, b)``)."""
        by_dim = any(k.arg == "dim" for k in node.keywords) or bool(dims) and _is_int_literal(dims[0])
        if name in mapping.VALUE_AND_INDEX:
            if not dims and not node.keywords:
                return node
            if not by_dim:
                return None
            node.func = _renamed(node.func, mapping.VALUE_AND_INDEX[name])
            pick = ast.Slice(step=ast.Constant(-1))
        else:
            node.func = _renamed(node.func, name)
            pick = ast.Constant(0)
        return ast.copy_location(ast.Subscript(node, pick, ast.Load()), node)

    def _unconverted_method(self, node, receiver, original, reason):
        self._report(node, original, reason + " (marked: raises if the receiver is a Var)")
        function = ast.Call(ast.Name("_unconverted_method", ast.Load()),
                            [receiver, ast.Constant(node.func.attr), ast.Constant(reason)], [])
        return ast.copy_location(ast.Call(function, node.args, node.keywords), node)

    def _is_dtype(self, node):
        name = self._qualified(node) or ""
        return name.startswith("torch.") and name.rpartition(".")[2] in DTYPE_NAMES

    def _is_placement(self, node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
            return True
        if isinstance(node, ast.Call):
            return self._qualified(node.func) == "torch.device"
        return "dev" in _final_name(node).lower() or _final_name(node) in ("cuda", "cpu")

    def _to_call(self, node, receiver, original):
        """``x.to(device)`` is ``x`` (one device at a time), ``x.to(torch.float16)`` a cast."""
        call = ast.parse(original, mode="eval").body
        dtype = [k.value for k, c in zip(node.keywords, call.keywords) if c.arg == "dtype"] + [
            a for a, c in zip(node.args, call.args) if self._is_dtype(c)]
        if dtype:
            return ast.copy_location(ast.Call(ast.Attribute(receiver, "cast", ast.Load()), dtype[:1], []), node)
        if all(self._is_placement(a) for a in call.args) and all(
                k.arg in PLACEMENT_KEYWORDS | {"copy"} for k in call.keywords):
            return receiver
        return self._unconverted_method(node, receiver, original,
                                        "cannot tell whether .to() moves to a device (dropped) or casts")
