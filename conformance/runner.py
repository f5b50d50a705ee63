"""Run conformance properties on a backend and collect per-property results."""
import dataclasses
import fnmatch
import os
import random
import time

import numpy as np
from hypothesis import HealthCheck, given, seed as hypothesis_seed, settings

import metajit as jt

from .properties import all_properties
from .strategies import Program

EXAMPLES_PER_TIER = {"smoke": 3, "standard": 20, "full": 100}


@dataclasses.dataclass
class Result:
    """The outcome of one property: passed, failed, xfailed, xpassed or unsupported."""

    name: str
    family: str
    status: str
    examples: int = 0
    seconds: float = 0.0
    message: str = ""
    snippet: str = ""


def select(tier="standard", keyword=None, shard=None):
    """The properties of ``tier`` whose names match ``keyword`` (substring or glob); with
    ``shard=(k, n)`` only every n-th of those, starting at the k-th (0-based), so n
    processes given k = 0 .. n-1 run the selection once between them."""
    chosen = [p for p in all_properties(tier) if tier != "smoke" or p.smoke]
    if keyword:
        patterns = [k.strip() for k in keyword.split(",") if k.strip()]
        chosen = [p for p in chosen if any(name_matches(p.name, k) for k in patterns)]
    if shard is not None:
        index, count = _checked_shard(*shard)
        chosen = chosen[index::count]
    return chosen


def _checked_shard(index, count):
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard {index}/{count}: the index must be in 0..{count - 1}")
    return index, count


def parse_shard(text):
    """``"K/N"`` as ``(K, N)`` (see `select`)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard {text!r}: write it as K/N, e.g. 0/4") from None
    return _checked_shard(index, count)


def name_matches(name, pattern):
    """``pattern`` is a substring of ``name``, or a glob when it has ``*`` or ``?``
    (brackets are literal, as property names contain them: ``reduce.sum[float32]``)."""
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))
    return pattern in name


def read_xfail_file(path):
    """Patterns (see `name_matches`) of properties expected to fail, one per line; ``#``
    starts a comment."""
    if not path:
        return []
    with open(path) as handle:
        return [line.split("#", 1)[0].strip() for line in handle if line.split("#", 1)[0].strip()]


def _array_literal(array):
    return (f"np.frombuffer(bytes.fromhex({array.tobytes().hex()!r}), dtype={str(array.dtype)!r})"
            f".reshape({array.shape!r})  # {np.array2string(array, threshold=20).replace(chr(10), ' ')}")


def snippet(example, backend, prop):
    """A runnable Python snippet reproducing ``example`` on ``backend`` and the reference."""
    if not isinstance(example, Program):
        return (f"from metajit.conformance.properties import all_properties\n"
                f"prop = next(p for p in all_properties('full') if p.name == {prop.name!r})\n"
                f"prop.check({example!r}, {backend!r})")
    lines = ["import numpy as np", "import metajit as jt", ""]
    names = example.names()
    for name, value in zip(names, example.inputs):
        lines.append(f"{name}_data = {_array_literal(value)}")
    lines += ["", f"for device in ({backend!r}, 'reference'):", "    jt.set_device(device)"]
    if names:
        lines.append(f"    {', '.join(names)}, = " + ", ".join(f"jt.array({n}_data)" for n in names)
                     + ("," if len(names) == 1 else ""))
    lines.append(f"    print(device, {example.source})")
    return "\n".join(lines)


def run_property(prop, backend, max_examples, seed_value, derandomize):
    """Run one property with hypothesis; returns a `Result`."""
    last = {}
    count = [0]

    def body(example):
        last["example"] = example
        count[0] += 1
        prop.check(example, backend)

    test = given(prop.strategy)(body)
    test = settings(max_examples=max_examples, deadline=None, database=None,
                    derandomize=derandomize, print_blob=False,
                    suppress_health_check=list(HealthCheck))(test)
    if seed_value is not None and not derandomize:
        test = hypothesis_seed(seed_value)(test)
    started = time.perf_counter()
    try:
        test()
        status, message, reproduction = "passed", "", ""
    except Exception as error:  # any failure of the backend is a result, not a crash
        status = "failed"
        message = f"{type(error).__name__}: {error}".strip()
        reproduction = snippet(last.get("example"), backend, prop)
    return Result(prop.name, prop.family, status, count[0], time.perf_counter() - started,
                  message[:2000], reproduction)


def resolve_seed(seed):
    """``(seed, derandomize)`` for a run given ``seed`` (None: derandomised under the ``CI``
    environment variable, else a freshly drawn seed)."""
    derandomize = seed is None and bool(os.environ.get("CI"))
    if seed is None and not derandomize:
        seed = random.randrange(2 ** 32)
    return seed, derandomize


def run(backend, tier="standard", max_examples=None, seed=None, keyword=None, xfail=(),
        on_result=None, shard=None):
    """Run the ``tier`` properties on ``backend``; returns (results, seed used or None).
    ``keyword`` and ``shard`` narrow the selection (`select`).

    Without ``seed`` the run is derandomised when the ``CI`` environment variable is set,
    otherwise a random seed is drawn (and returned, to rerun with ``--seed``).
    """
    info = {d.name: d for d in jt.devices()}.get(backend)
    if info is None or not info.available:
        reason = "not installed" if info is None else info.reason
        raise jt.MetajitDeviceError(f"backend {backend!r} cannot be tested: {reason}")
    declared = set(info.description.dtypes)
    seed, derandomize = resolve_seed(seed)
    examples = max_examples or EXAMPLES_PER_TIER[tier]
    previous = jt.get_device()
    results = []
    try:
        for prop in select(tier, keyword, shard):
            missing = [d for d in prop.dtypes if d not in declared]
            if missing:
                result = Result(prop.name, prop.family, "unsupported",
                                message=f"backend does not declare {', '.join(missing)}")
            else:
                result = run_property(prop, backend, examples, seed, derandomize)
                expected_failure = any(name_matches(prop.name, p) for p in xfail)
                if expected_failure:
                    result.status = "xfailed" if result.status == "failed" else "xpassed"
            results.append(result)
            if on_result:
                on_result(result)
    finally:
        jt.set_device(previous)
    return results, (None if derandomize else seed)
