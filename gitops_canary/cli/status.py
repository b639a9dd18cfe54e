"""``gitops-canary status --repo PATH [-o table|json] [--path P ...]``: where every rollout stands.

This module owns the command: it discovers the canaries in a checkout of the config repository
(:mod:`gitops_canary.repo.discovery`) and prints the status committed next to each one, as a
table shaped like ``kubectl get canaries`` (DESIGN D9) or as JSON. It reads only the repository,
never the cluster: what it shows is what git says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gitops_canary.repo.discovery import DiscoveredCanary, discover
from gitops_canary.repo.layout import format_time

EXIT_OK = 0
EXIT_USAGE = 2
COLUMNS = ("NAMESPACE", "NAME", "STATUS", "WEIGHT", "FAILEDCHECKS", "LASTTRANSITIONTIME")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the status of every canary, as committed in the repository",
        description=(
            "Show every canary found under the paths with the status gitops-canary committed "
            "next to it, like 'kubectl get canaries'."
        ),
    )
    parser.add_argument(
        "--repo", required=True, type=Path, help="a checkout of the config repository"
    )
    parser.add_argument(
        "--path",
        action="append",
        dest="paths",
        default=None,
        metavar="P",
        help="directory of the repository to search (repeatable; default: the whole repository)",
    )
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    repo: Path = args.repo
    if not repo.is_dir():
        print(f"gitops-canary status: --repo {repo}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    found = discover(repo, args.paths or ["."], default_provider=None)
    for issue in found.issues:
        if "--path" in issue:
            print(f"gitops-canary status: {issue}", file=sys.stderr)
            return EXIT_USAGE
    rows = [_row(canary) for canary in found.canaries]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(render_table(rows), end="")
    return EXIT_OK


def _row(canary: DiscoveredCanary) -> dict[str, Any]:
    status = canary.status
    return {
        "namespace": canary.namespace,
        "name": canary.name,
        "file": canary.file,
        "status": status.phase.value if status.phase is not None else "",
        "weight": status.canary_weight,
        "failedChecks": status.failed_checks,
        "iterations": status.iterations,
        "lastTransitionTime": (
            format_time(status.last_transition_time) if status.last_transition_time else ""
        ),
        "message": status.message,
        "issues": list(canary.issues),
    }


def render_table(rows: list[dict[str, Any]]) -> str:
    """Left-aligned columns separated by three spaces, as kubectl prints them."""
    if not rows:
        return "No canaries found.\n"
    keys = ("namespace", "name", "status", "weight", "failedChecks", "lastTransitionTime")
    cells = [list(COLUMNS)] + [[str(row[key]) for key in keys] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    return "\n".join(lines) + "\n"
