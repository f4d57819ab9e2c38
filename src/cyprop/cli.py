"""The command line: ``python -m cyprop`` or ``cyprop``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cyprop._version import __version__


def _demo(arguments: argparse.Namespace) -> int:
    from cyprop.lesson import print_lesson, run_lesson

    print_lesson(run_lesson(iterations=arguments.iterations, dtype=arguments.dtype))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cyprop",
        description="Multilayer perceptrons trained by backpropagation.",
    )
    parser.add_argument("--version", action="version", version=f"cyprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="run the lesson: a 3-4-1 sigmoid network learning XOR",
        description="Train the lesson's 3-4-1 sigmoid network on XOR and print "
        "what the lesson prints, plus the time it took.",
    )
    demo.add_argument("--iterations", type=_positive_int, default=10_000,
                      help="full-batch gradient steps (default: 10000)")
    demo.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                      help="floating type (default: float64)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    arguments = build_parser().parse_args(argv)
    return int(arguments.run(arguments))


if __name__ == "__main__":
    sys.exit(main())
