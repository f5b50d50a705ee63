"""``python -m metajit.utils.pytorch_converter model.py [-o model_mj.py] [--jittor]``: convert a
PyTorch file, write the result (standard output without ``-o``) and list what could not be
converted on standard error; ``--strict`` makes that list an exit status of 1."""
import argparse
import sys

from . import convert_file


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m metajit.utils.pytorch_converter",
                                     description="Convert PyTorch model code to metajit code.")
    parser.add_argument("source", help="the PyTorch file")
    parser.add_argument("-o", "--output", help="where to write the converted file (default: standard output)")
    parser.add_argument("--jittor", action="store_true", help="spell the imports 'import jittor as jt'")
    parser.add_argument("--package", help="the package the file's relative imports start from "
                                          "(default: found from the __init__.py files above it)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when anything is unconverted")
    arguments = parser.parse_args(argv)
    conversion = convert_file(arguments.source, "jittor" if arguments.jittor else "metajit", arguments.package)
    if arguments.output:
        with open(arguments.output, "w", encoding="utf-8") as output:
            output.write(conversion.code)
    else:
        sys.stdout.write(conversion.code)
    for line, construct, reason in conversion.unconverted:
        print(f"{arguments.source}:{line}: not converted: {construct}: {reason}", file=sys.stderr)
    return 1 if arguments.strict and conversion.unconverted else 0


if __name__ == "__main__":
    sys.exit(main())
