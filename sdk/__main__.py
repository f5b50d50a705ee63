"""``python -m metajit.sdk`` (also ``metajit-sdk``): the vendor SDK's commands.

    metajit-sdk new-backend NAME --dir PATH [--template accel|serial]
    metajit-sdk reference [--output FILE | --check FILE]
    metajit-sdk guide
"""
import argparse
import os
import sys

from . import reference, scaffold

GUIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")


def _new_backend(arguments):
    try:
        path = scaffold.new_backend(arguments.name, arguments.dir, arguments.template)
    except scaffold.ScaffoldError as error:
        print(f"metajit-sdk: {error}", file=sys.stderr)
        return 2
    print(f"created {path}\nnext: pip install -e {path} && conformance run --backend {arguments.name} --tier smoke")
    return 0


def _reference(arguments):
    if arguments.check:
        problem = reference.stale(arguments.check)
        if problem:
            print(f"metajit-sdk: {problem}", file=sys.stderr)
            return 1
        return 0
    text = reference.hook_reference()
    if arguments.output:
        with open(arguments.output, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _guide(arguments):
    with open(GUIDE) as handle:
        sys.stdout.write(handle.read())
    return 0


def main(argv=None):
    """Entry point of ``metajit-sdk``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="metajit-sdk", description="metajit's vendor SDK")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-backend", help="create a standalone backend plugin package")
    new.add_argument("name", help="the device name users pass to jt.set_device (lowercase identifier)")
    new.add_argument("--dir", default=".", help="where to create metajit-NAME/ (default: here)")
    new.add_argument("--template", choices=sorted(scaffold.STEPS), default="accel",
                     help="accel: the BANG-style accelerator template; serial: plain serial C")
    new.set_defaults(run=_new_backend)
    ref = commands.add_parser("reference", help="the hook reference, generated from the hook specifications")
    target = ref.add_mutually_exclusive_group()
    target.add_argument("--output", help="write it to this file")
    target.add_argument("--check", help="exit 1 when this file is not the current reference")
    ref.set_defaults(run=_reference)
    commands.add_parser("guide", help="print the vendor guide").set_defaults(run=_guide)
    arguments = parser.parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
