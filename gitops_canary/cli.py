"""The composition root: parses the command line and wires adapters to the core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gitops_canary import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops-canary",
        description="Flagger's canary analysis, with every step committed to git.",
    )
    parser.add_argument("--version", action="version", version=f"gitops-canary {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
