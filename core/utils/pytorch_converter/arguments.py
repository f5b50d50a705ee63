"""Matching a call's arguments to a PyTorch argument list and rebuilding them for the
metajit one: the table's ``links`` rename arguments, ``delete`` drops them, ``extras``
adds them, an argument metajit lacks is dropped when it holds PyTorch's default and is an
error otherwise. Argument lists are Python parameter lists (``"x, *shape, dim=0"``),
parsed with `ast`, so defaults may be any expression."""
import ast
import dataclasses


class ArgumentError(Exception):
    """The call cannot be matched or rebuilt; the message is the reason for the report."""


@dataclasses.dataclass(frozen=True)
class Signature:
    """A parsed parameter list: positional names in order, the ``*`` parameter, keyword-only
    names, and each parameter's default expression (absent when required)."""

    positional: tuple
    star: str
    keyword_only: tuple
    defaults: dict

    @property
    def names(self):
        return self.positional + ((self.star,) if self.star else ()) + self.keyword_only


def parse_signature(text):
    """``"x, *shape, dim=0"`` as a `Signature`."""
    arguments = ast.parse(f"def _({text}): pass").body[0].args
    positional = tuple(a.arg for a in arguments.args)
    defaults = dict(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
    defaults.update((a.arg, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None)
    return Signature(positional, arguments.vararg.arg if arguments.vararg else None,
                     tuple(a.arg for a in arguments.kwonlyargs), defaults)


def has_unpacking(call):
    return any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)


def bind(signature, args, keywords):
    """{parameter: expression} for positional ``args`` and ``keywords`` (ast nodes); the
    ``*`` parameter gets the list of the extra positional expressions."""
    bound = dict(zip(signature.positional, args))
    extra = list(args[len(signature.positional):])
    if extra:
        if not signature.star:
            raise ArgumentError(f"takes {len(signature.positional)} positional arguments, {len(args)} given")
        bound[signature.star] = extra
    for keyword in keywords:
        if keyword.arg not in signature.names or keyword.arg == signature.star:
            raise ArgumentError(f"has no argument {keyword.arg!r}")
        if keyword.arg in bound:
            raise ArgumentError(f"got argument {keyword.arg!r} twice")
        bound[keyword.arg] = keyword.value
    missing = [n for n in signature.positional + signature.keyword_only if n not in bound and n not in signature.defaults]
    if missing:
        raise ArgumentError(f"misses argument {missing[0]!r}")
    return bound


def _is_default(value, default):
    return default is not None and not isinstance(value, list) and ast.dump(value) == ast.dump(default)


def translate(call, source, target, links, extras, delete):
    """(positional, keywords) ast lists for the metajit call with parameter list ``target``,
    from ``call``'s arguments matched to PyTorch's ``source``; ``extras`` maps metajit
    argument names to ast values to add."""
    if has_unpacking(call):
        return _pass_unpacked(call, source, target, links, delete, extras)
    values = {}
    for name, value in bind(source, call.args, call.keywords).items():
        name = links.get(name, name)
        if name in delete:
            continue
        if name not in target.names:
            if _is_default(value, source.defaults.get(name)):
                continue
            raise ArgumentError(f"argument {name!r} has no metajit counterpart")
        values[name] = value
    values.update(extras)
    return _arrange(target, values)


def _arrange(target, values):
    positional, star_given = [], target.star in values
    for name in target.positional:  # Jittor's spelling: arguments with a default by keyword
        if name in values and (star_given or name not in target.defaults):
            positional.append(values.pop(name))
        elif name not in target.defaults:
            raise ArgumentError(f"metajit needs argument {name!r}")
        elif star_given:
            positional.append(target.defaults[name])
    if target.star in values:
        extra = values.pop(target.star)
        if len(extra) == 1 or any(isinstance(e, ast.Starred) for e in extra):
            positional.extend(extra)
        else:  # x.view(a, b) -> x.view((a, b)), Jittor's spelling
            positional.append(ast.Tuple(elts=extra, ctx=ast.Load()))
    keywords = [ast.keyword(arg=name, value=values[name]) for name in target.names if name in values]
    return positional, keywords


def _pass_unpacked(call, source, target, links, delete, extras):
    """``f(a, *args, **kwargs)``: the names behind the unpacking are unknown, so the call
    passes as it is when no argument is renamed or dropped and the positions agree."""
    if links or delete or source.positional[:len(target.positional)] != target.positional[:len(source.positional)]:
        raise ArgumentError("arguments unpacked with * or ** cannot be matched to the table's renamed "
                            "or dropped arguments; spell them out")
    keywords = list(call.keywords) + [ast.keyword(arg=name, value=value) for name, value in extras.items()]
    return list(call.args), keywords
