"""``conformance``: run the backend conformance suite, list its properties, list backends.

    conformance run --backend cpu --tier standard
    conformance run --backend mydevice --plugin mydevice_backend   # a plugin not installed yet
    conformance run --backend cuda --jobs 14       # 14 processes, one merged report
    conformance list
    conformance backends
"""
import argparse
import importlib
import sys
import time

import metajit as jt

from . import parallel, report, runner


def _register_plugin(reference, name):
    """Import ``module[:attribute]`` and register it as backend ``name``."""
    module_name, _, attribute = reference.partition(":")
    plugin = importlib.import_module(module_name)
    if attribute:
        plugin = getattr(plugin, attribute)
    jt.plugins.register_backend(plugin, name)


def _run(arguments):
    if arguments.plugin:
        try:
            _register_plugin(arguments.plugin, arguments.backend)
        except (ImportError, AttributeError) as error:
            print(f"conformance: cannot load plugin {arguments.plugin!r}: {error}", file=sys.stderr)
            return 2
    xfail = runner.read_xfail_file(arguments.xfail)
    started = time.perf_counter()

    def progress(result):
        if arguments.verbose or result.status == "failed":
            print(f"{result.status.upper():11s} {result.name} ({result.examples} examples, "
                  f"{result.seconds:.1f}s)", flush=True)

    try:
        if arguments.jobs > 1:
            if arguments.shard:
                raise jt.MetajitValueError("--jobs runs every shard itself: give --jobs or --shard, not both")
            results, seed = parallel.run_in_processes(_shard_arguments(arguments), arguments.jobs,
                                                      lambda line: print(line, flush=True))
        else:
            results, seed = runner.run(arguments.backend, arguments.tier, arguments.max_examples,
                                       arguments.seed, arguments.keyword, xfail, progress, arguments.shard)
    except jt.MetajitError as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2
    print()
    print(report.table(results))
    details = report.failures(results)
    if details:
        print("\n" + details)
    seed_text = "derandomised" if seed is None else f"seed {seed} (rerun with --seed {seed})"
    failed = sum(r.status == "failed" for r in results)
    print(f"\nbackend {arguments.backend}, tier {arguments.tier}, {seed_text}, "
          f"{time.perf_counter() - started:.1f}s: "
          f"{sum(r.status == 'passed' for r in results)} passed, {failed} failed")
    if arguments.json:
        report.write_json(arguments.json, arguments.backend, arguments.tier, seed, results)
    if arguments.junit:
        report.write_junit(arguments.junit, arguments.backend, results)
    return 1 if failed else 0


def _shard_arguments(arguments):
    """The ``run`` arguments each `parallel` shard process gets: the same selection, one
    seed for all (drawn here unless given or derandomised under CI), no reports."""
    seed, _ = runner.resolve_seed(arguments.seed)
    argv = ["--backend", arguments.backend, "--tier", arguments.tier]
    for option, value in (("--plugin", arguments.plugin), ("--max-examples", arguments.max_examples),
                          ("--seed", seed), ("-k", arguments.keyword), ("--xfail", arguments.xfail)):
        if value is not None:
            argv += [option, str(value)]
    return argv + (["-v"] if arguments.verbose else [])


def _list(arguments):
    family = None
    for prop in runner.select(arguments.tier, arguments.keyword):
        if prop.family != family:
            family = prop.family
            print(f"{family}:")
        marks = " [smoke]" if prop.smoke else ""
        print(f"  {prop.name}{marks}")
    return 0


def _backends(arguments):
    for info in jt.devices():
        dtypes = ", ".join(info.description.dtypes) if info.description else ""
        print(f"{info}" + (f"  (dtypes: {dtypes})" if info.available else ""))
    return 0


def _shard(text):
    try:
        return runner.parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser():
    """The argument parser of the ``conformance`` command."""
    top = argparse.ArgumentParser(prog="conformance", description="metajit backend conformance suite")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the property suite against a backend")
    run.add_argument("--backend", required=True, help="backend name, see 'conformance backends'")
    run.add_argument("--plugin", help="register this module (or module:object) as the backend first, "
                                      "for a plugin that is not installed as an entry point")
    run.add_argument("--tier", choices=tuple(runner.EXAMPLES_PER_TIER), default="standard")
    run.add_argument("--max-examples", type=int, help="examples per property (overrides the tier)")
    run.add_argument("--seed", type=int, help="hypothesis seed, for a reproducible run")
    run.add_argument("-k", dest="keyword", help="only properties containing this text or matching "
                                                "this glob (comma-separated for several)")
    run.add_argument("--shard", type=_shard, help="K/N: only every N-th selected property from the K-th "
                                                  "(0-based), to split a slow run over N processes")
    run.add_argument("--jobs", type=int, default=1, help="run the selection as this many shard processes "
                                                         "(for backends that compile slowly)")
    run.add_argument("--xfail", help="file of property-name globs expected to fail")
    run.add_argument("--junit", help="write JUnit XML here")
    run.add_argument("--json", help="write JSON results here")
    run.add_argument("-v", "--verbose", action="store_true", help="print every property as it ends")
    run.set_defaults(handler=_run)
    listing = commands.add_parser("list", help="list the properties, grouped by family")
    listing.add_argument("--tier", choices=tuple(runner.EXAMPLES_PER_TIER), default="full")
    listing.add_argument("-k", dest="keyword")
    listing.set_defaults(handler=_list)
    backends = commands.add_parser("backends", help="list installed backends and their availability")
    backends.set_defaults(handler=_backends)
    return top


def main(argv=None):
    """Entry point of the ``conformance`` console script and ``python -m metajit.conformance``."""
    arguments = parser().parse_args(argv)
    sys.exit(arguments.handler(arguments))
