"""The composition root: the ``gitops-canary`` command line.

Each command lives in its own module of this package and registers itself with
:func:`register`; this is the only place where adapters are wired to the core.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from gitops_canary import __version__

#: Modules of this package that define commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("validate", "render", "run", "status", "history", "sim", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops-canary",
        description="Flagger's canary analysis, with every step committed to git.",
    )
    parser.add_argument("--version", action="version", version=f"gitops-canary {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"gitops_canary.cli.{name}")
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        result: int = args.handler(args)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return result
