"""``gitops-canary history <ns>/<name>``: a canary's rollout steps, read from git.

Owns the command's arguments and its table and JSON output; the reading is
:func:`gitops_canary.repo.history.history`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gitops_canary.repo.history import Entry, HistoryError, history

_KEY_HELP = "the canary as <namespace>/<name>, e.g. test/podinfo"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history",
        help="show a canary's rollout steps from git log",
        description="List the commits gitops-canary made for one canary, newest first.",
    )
    parser.add_argument("canary", metavar="NAMESPACE/NAME", help=_KEY_HELP)
    parser.add_argument("--repo", type=Path, default=Path("."), help="the config repository")
    parser.add_argument("--rev", default="HEAD", help="branch or commit to read (default HEAD)")
    parser.add_argument("--limit", type=int, default=None, help="show at most this many steps")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    namespace, _, name = str(args.canary).partition("/")
    if not namespace or not name or "/" in name:
        print(f"error: {args.canary!r} is not a canary; expected {_KEY_HELP}", file=sys.stderr)
        return 2
    try:
        entries = history(args.repo, args.canary, rev=args.rev, limit=args.limit)
    except HistoryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
        return 0
    if not entries:
        print(f"No gitops-canary commits for {args.canary} on {args.rev} in {args.repo}.")
        return 0
    print(render_table(entries))
    return 0


def render_table(entries: list[Entry]) -> str:
    header = ("TIME", "PHASE", "WEIGHT", "FAILED", "COMMIT", "BY", "SUBJECT")
    rows = [
        (
            entry.time.strftime("%Y-%m-%d %H:%M:%S%z"),
            entry.phase or "-",
            "-" if entry.weight is None else str(entry.weight),
            "-" if entry.failed_checks is None else str(entry.failed_checks),
            entry.sha[:12],
            (entry.merged_by or entry.author).split(" <")[0],
            entry.subject,
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
