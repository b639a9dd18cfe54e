"""``gitops-canary sim``: run the local cluster simulator in the foreground.

This module owns the command: it parses ``--repo``, ``--branch``, ``--path NAME=PATH`` and the
scenario, starts a :class:`~gitops_canary.sim.cluster.SimCluster` (and, with ``--prometheus``, a
real Prometheus scraping it), prints where everything is and every revision the simulated Flux
applies, and stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from gitops_canary.sim.applier import KUSTOMIZATION_API_VERSION
from gitops_canary.sim.cluster import SimCluster
from gitops_canary.sim.prometheus import PrometheusServer, PrometheusUnavailable
from gitops_canary.sim.scenario import ScenarioError, load_scenario

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 1
_LABEL = "[simulator]"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the local cluster simulator (not Kubernetes) against a config repo",
        description=(
            "Run a local cluster SIMULATOR (not Kubernetes) in the foreground: a Kubernetes-like "
            "API server on loopback, an applier that follows the config repo like Flux, "
            "Deployments that roll out, and traffic that follows the live route weights, exported "
            "as Prometheus metrics. Stop it with Ctrl-C."
        ),
    )
    parser.add_argument("--repo", required=True, help="URL or path of the config repository")
    parser.add_argument("--branch", default="main", help="branch to follow (default: main)")
    parser.add_argument(
        "--path",
        dest="paths",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a Flux Kustomization NAME applying PATH of the repo (repeatable)",
    )
    parser.add_argument("--scenario", type=Path, help="scenario YAML file (see docs/simulator.md)")
    parser.add_argument(
        "--workdir", type=Path, help="where to keep the kubeconfig and the applier's clone"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between the applier's fetches (default: 2)",
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also start a real Prometheus (Debian package `prometheus`) scraping the simulator",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="stop after this many seconds instead of waiting for Ctrl-C",
    )
    parser.set_defaults(handler=run)


def _parse_paths(values: list[str]) -> dict[str, str] | str:
    """``NAME=PATH`` pairs, or an error message for the operator."""
    paths: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            return f"--path {value!r}: expected NAME=PATH, for example --path apps=./apps"
        if name in paths:
            return f"--path {value!r}: Kustomization name {name!r} is given twice"
        paths[name] = path
    if not paths:
        return "give at least one --path NAME=PATH (the repo paths the simulated Flux applies)"
    return paths


def _say(message: str) -> None:
    print(f"{_LABEL} {message}", flush=True)


def _report_kustomizations(cluster: SimCluster, seen: dict[str, tuple[str, str]]) -> None:
    for item in cluster.store.list(KUSTOMIZATION_API_VERSION, "Kustomization"):
        name = item["metadata"]["name"]
        ready = next(
            (c for c in (item.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
            None,
        )
        if ready is None:
            continue
        state = (str(ready.get("reason")), str(ready.get("message")))
        if seen.get(name) != state:
            seen[name] = state
            _say(f"Kustomization {name}: {state[0]}: {state[1]}")


class _Stop(Exception):
    """SIGTERM, turned into an exception so the same clean shutdown runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> int:
    paths = _parse_paths(args.paths)
    if isinstance(paths, str):
        print(f"gitops-canary sim: {paths}", file=sys.stderr)
        return EXIT_USAGE
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"gitops-canary sim: {error}", file=sys.stderr)
        return EXIT_USAGE
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="gitops-canary-sim-"))

    cluster = SimCluster(
        args.repo, args.branch, paths, scenario, workdir, applier_interval=args.interval
    )
    prometheus: PrometheusServer | None = None
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cluster.start()
        _say("this is a local cluster SIMULATOR, not Kubernetes")
        _say(f"kubeconfig:      {cluster.kubeconfig}")
        _say(f"API server:      {cluster.api_url}")
        _say(f"metrics:         {cluster.exporter_url}")
        _say(f"following:       {args.repo} branch {args.branch}")
        _say(f"rendering with:  {cluster.applier.builder}")
        _say(scenario.describe())
        if args.prometheus:
            prometheus = PrometheusServer(
                [cluster.exporter_address], workdir=workdir / "prometheus"
            ).start()
            _say(f"Prometheus:      {prometheus.url} (scraping the simulator every 1s)")
        _say("press Ctrl-C to stop")
        seen: dict[str, tuple[str, str]] = {}
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            _report_kustomizations(cluster, seen)
            time.sleep(0.5)
    except PrometheusUnavailable as error:
        print(f"gitops-canary sim: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, _Stop):
        _say("stopping")
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
        signal.signal(signal.SIGTERM, previous_handler)
    _say("stopped")
    return EXIT_OK
