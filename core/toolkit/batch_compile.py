"""Compile a realisation's kernels in one batch: cached entries first, the rest in
parallel units under the cache lock, with progress for long compiles.

A backend supplies ``compile_unit(entries) -> {key: artefact path} | error message``,
which builds one unit (a list of ``(key, source)``) and installs each key in the cache;
`build` does the rest. Errors come back as text and are raised as `MetajitCompileError`
in the calling thread, so the message names the user's line. Example::

    paths = build(cache, [(key, source), ...], compile_unit, what="CUDA kernels")
"""
import concurrent.futures
import os
import sys
import time

from metajit.errors import MetajitCompileError
from metajit.flags import flags

KERNELS_PER_UNIT = 24
PROGRESS_AFTER_SECONDS = 2.0


def look_up(cache, entries, paths):
    """Record the cached artefact paths of ``entries`` in ``paths``; return the entries missing."""
    missing = []
    for key, source in entries:
        path = cache.lookup(key)
        if path is None:
            missing.append((key, source))
        else:
            paths[key] = path
    return missing


def build(cache, entries, compile_unit, what="kernels", kernels_per_unit=KERNELS_PER_UNIT,
          workers=None, progress=None):
    """Artefact paths ``{key: path}`` for ``entries`` (``(key, source)`` pairs), compiling
    those the `DiskCache` lacks; entries with one key are compiled once.

    ``progress(message)`` (default: a line on stderr) is called once when compiling takes
    longer than `PROGRESS_AFTER_SECONDS`; ``workers`` defaults to the number of cores.
    """
    paths = {}
    unique = list(dict(entries).items())
    missing = look_up(cache, unique, paths)
    if missing:
        with cache.locked():
            # another process may have compiled them while we waited for the lock
            missing = look_up(cache, missing, paths)
            if missing:
                paths.update(_compile(missing, compile_unit, what, kernels_per_unit, workers, progress))
    return paths


def build_and_load(cache, entries, compile_unit, load, what="kernels", **options):
    """`build` the ``entries``, then ``load(path, key)`` each; returns the loaded objects in
    order. An artefact that verifies but does not load (``load`` raises
    `MetajitCompileError`: built for another machine, damaged before its checksum was
    written) is removed and rebuilt once; a second failure is raised."""
    paths = build(cache, entries, compile_unit, what, **options)
    loaded, failed = {}, []
    for key, source in dict(entries).items():
        try:
            loaded[key] = load(paths[key], key)
        except MetajitCompileError:
            cache.remove(key)
            failed.append((key, source))
    if failed:
        paths = build(cache, failed, compile_unit, what, **options)
        for key, _ in failed:
            loaded[key] = load(paths[key], key)
    return [loaded[key] for key, _ in entries]


def _print_unless_silent(message):
    """The default progress report: a line on stderr, unless ``jt.flags.log_silent`` is set."""
    if not flags.log_silent:
        print(message, file=sys.stderr, flush=True)


def _compile(entries, compile_unit, what, kernels_per_unit, workers, progress):
    units = [entries[i:i + kernels_per_unit] for i in range(0, len(entries), kernels_per_unit)]
    started = time.perf_counter()
    workers = min(len(units), workers or os.cpu_count() or 1)
    announce = progress or _print_unless_silent
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(compile_unit, unit) for unit in units]
        announced = False
        for future in futures:
            while True:
                try:
                    outcome = future.result(timeout=0.25)
                    break
                except concurrent.futures.TimeoutError:
                    if not announced and time.perf_counter() - started > PROGRESS_AFTER_SECONDS:
                        announce(f"metajit: compiling {len(entries)} {what} ({len(units)} unit(s))...")
                        announced = True
            if isinstance(outcome, str):
                raise MetajitCompileError(outcome)
            results.update(outcome)
    return results
