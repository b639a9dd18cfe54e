"""``gitops-canary render DIR``: print the objects a canary would generate, touching no git.

Useful to review what gitops-canary will commit before it does, or to diff two weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gitops_canary.core.render import RenderError, render
from gitops_canary.core.specs import SUPPORTED_PROVIDERS
from gitops_canary.core.status import Phase
from gitops_canary.repo.discovery import discover
from gitops_canary.repo.yamlout import dump
from gitops_canary.steps import render_inputs


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "render",
        help="print the objects that would be generated for the canaries under DIR",
        description=(
            "Print, as multi-document YAML, the objects gitops-canary would generate for every "
            "canary found under DIR (a kustomize directory or plain manifests), with N%% of the "
            "routed traffic on the canary. For A/B and blue/green, N is the canary's share of "
            "the matched traffic (100 during the iterations)."
        ),
    )
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument(
        "--provider", choices=SUPPORTED_PROVIDERS, help="for canaries without spec.provider"
    )
    parser.add_argument(
        "--weight", type=int, default=0, metavar="N", help="canary weight 0-100 (default 0)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if not root.is_dir():
        print(f"gitops-canary render: {root} is not a directory", file=sys.stderr)
        return 2
    if not 0 <= args.weight <= 100:
        print(
            f"gitops-canary render: --weight {args.weight} is not between 0 and 100",
            file=sys.stderr,
        )
        return 2
    discovery = discover(root, ["."], default_provider=args.provider)
    problems = list(discovery.issues)
    documents: list[str] = []
    rendered = 0
    for found in discovery.canaries:
        problems.extend(found.issues)
        if found.canary is None or found.target is None or found.template is None:
            continue  # the issues say why; a missing MetricTemplate does not stop rendering
        rendered += 1
        phase = Phase.PROGRESSING if args.weight else Phase.INITIALIZED
        status = found.status.model_copy(
            update={"phase": phase, "canary_weight": args.weight, "iterations": 0}
        )
        try:
            objects = render(render_inputs(found, status, promote=found.primary_template() is None))
        except RenderError as err:
            problems.append(str(err))
            continue
        documents.extend(f"{obj.header}\n{dump(obj.obj)}" for obj in objects)
    sys.stdout.write("---\n".join(documents))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not discovery.canaries:
        print(f"gitops-canary render: no Canary found under {root}", file=sys.stderr)
        return 1
    return 0 if rendered == len(discovery.canaries) else 1
