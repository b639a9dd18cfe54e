"""``gitops-canary demo``: the whole product on a simulated cluster, with a real Prometheus.

It plays the story of Flagger's two tutorials, every step a commit to a local config repo:

1. podinfo on Gateway API: initialization, then 6.0.0 -> 6.0.1 promoted through 10..50 %;
2. 6.0.2, which answers 60 % of requests with HTTP 500: failed checks, then rollback;
3. podinfo on Contour, A/B on the ``x-canary: insider`` header: ten iterations, then promotion.

The cluster is the bundled simulator (not Kubernetes) and analysis intervals are shortened 20x;
the output says so. The exit code is 0 only if every scenario ended as the story says.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gitops_canary.cli.wiring import build
from gitops_canary.core.status import Phase
from gitops_canary.playground import Playground, git
from gitops_canary.repo.history import Entry, history
from gitops_canary.sim.prometheus import PrometheusUnavailable
from gitops_canary.telemetry import configure_logging

GATEWAY = ("test/podinfo", "apps/podinfo")
CONTOUR = ("test-contour/podinfo", "apps/podinfo-contour")
IMAGE = "ghcr.io/stefanprodan/podinfo"
DEADLINE_SECONDS = 170.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="play Flagger's tutorials on a simulated cluster, every step a commit",
        description=(
            "Seed a local config repo from examples/repo, start the cluster simulator (not "
            "Kubernetes) and a real Prometheus, and run gitops-canary through a promotion, a "
            "rollback and an A/B test. Finishes in about two minutes."
        ),
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep everything here (DIR/repo is a clone of the demo's config repo)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print gitops-canary's log")
    parser.set_defaults(handler=run)


@dataclass
class CanaryView:
    phase: str = "-"
    weight: str = "-"
    checks: str = ""
    last: str = ""


class Story:
    """Drives the reconciler tick by tick and makes the people's commits at the right moments."""

    def __init__(self, playground: Playground, out: TextIO) -> None:
        self.pg = playground
        self.out = out
        self.views: dict[str, CanaryView] = {GATEWAY[0]: CanaryView(), CONTOUR[0]: CanaryView()}
        self.start = time.monotonic()
        self.stage = 0

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.start:5.1f}s] {text}\n")
        self.out.flush()

    def status(self, key: str, app_dir: str) -> dict[str, Any]:
        name = key.split("/")[1]
        try:
            text = git(self.pg.remote, "show", f"main:{app_dir}/gitops-canary/{name}/status.yaml")
        except RuntimeError:
            return {}
        from gitops_canary.repo.manifests import load_text

        docs = load_text(text, "status.yaml")
        return dict(docs[0].data.get("status") or {}) if docs else {}

    def phase(self, key: str, app_dir: str) -> str | None:
        value = self.status(key, app_dir).get("phase")
        return str(value) if value else None

    def refresh(self) -> None:
        for key, app_dir in (GATEWAY, CONTOUR):
            status = self.status(key, app_dir)
            view = self.views[key]
            phase = str(status.get("phase") or "-")
            weight = str(status.get("canaryWeight", "-"))
            checks = ", ".join(
                f"{c.get('name')} {'ok' if c.get('ok') else 'FAILED'}"
                for c in status.get("lastChecks") or []
            )
            line = f"{key:22} {phase:17} weight {weight:>3}  {checks}"
            if line != view.last:
                view.last = line
                self.say(line)

    # -- the people's side of the story

    def advance(self) -> bool:
        """Make the next person's commit when its moment has come; True when the story is over."""
        gateway, contour = self.phase(*GATEWAY), self.phase(*CONTOUR)
        if self.stage == 0 and gateway and contour:
            self.say("person: include gitops-canary/podinfo in both apps' kustomization.yaml")
            self.pg.include_generated(GATEWAY[1])
            self.pg.include_generated(CONTOUR[1])
            self.stage = 1
        elif self.stage == 1 and gateway == "Initialized" and contour == "Initialized":
            self.say(f"person: deploy {IMAGE}:6.0.1 (Gateway API canary)")
            self.pg.set_image(GATEWAY[1], f"{IMAGE}:6.0.1")
            self.say(f"person: deploy {IMAGE}:6.0.3 (Contour A/B test on x-canary: insider)")
            self.pg.set_image(CONTOUR[1], f"{IMAGE}:6.0.3")
            self.stage = 2
        elif self.stage == 2 and gateway == "Succeeded":
            self.say(f"person: deploy {IMAGE}:6.0.2, which fails 60 % of requests")
            self.pg.set_image(GATEWAY[1], f"{IMAGE}:6.0.2")
            self.stage = 3
        elif self.stage == 3 and gateway == "Failed" and contour == "Succeeded":
            return True
        return False


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.workdir is not None:
        return _play(args.workdir, out, verbose=args.verbose, keep=True)
    with tempfile.TemporaryDirectory(prefix="gitops-canary-demo-") as scratch:
        return _play(Path(scratch), out, verbose=args.verbose, keep=False)


def _play(workdir: Path, out: TextIO, *, verbose: bool, keep: bool) -> int:
    configure_logging("text", "info" if verbose else "error")
    logging.getLogger("gitops_canary.sim").setLevel(logging.INFO if verbose else logging.ERROR)
    out.write(
        "gitops-canary demo: a SIMULATED cluster (not Kubernetes), a real Prometheus and a real\n"
        "git repository. Analysis intervals run 20x faster than the Canary specs say (1m -> 3s),\n"
        "a shortening the simulator allows; everything else is what production runs.\n\n"
    )
    playground = Playground(workdir)
    try:
        playground.start()
    except PrometheusUnavailable as err:
        out.write(f"gitops-canary demo: {err}\n")
        return 2
    try:
        built = build(playground.config())
        story = Story(playground, out)
        try:
            finished = _drive(story, built.reconciler.tick)
        finally:
            built.close()
        ok = finished and _verify(playground, out)
        _show_histories(playground, out)
        if keep:
            clone = playground.workdir / "repo"
            if clone.exists():
                git(clone, "pull", "-q", "--ff-only")
            else:
                git(playground.workdir, "clone", "-q", str(playground.remote), str(clone))
            out.write(
                f"\nThe config repo is kept at {clone}. Try:\n"
                f"  gitops-canary status --repo {clone}\n"
                f"  gitops-canary history test/podinfo --repo {clone}\n"
            )
    finally:
        playground.stop()
    out.write(
        "\nDemo " + ("finished: every scenario ended as the story says.\n" if ok else "FAILED.\n")
    )
    return 0 if ok else 1


def _drive(story: Story, tick: Callable[[], Any]) -> bool:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        tick()
        story.refresh()
        if story.advance():
            story.refresh()
            return True
        time.sleep(0.2)
    story.say(f"the story did not finish within {DEADLINE_SECONDS:.0f} s")
    return False


def _runs(entries: list[Entry]) -> list[list[Entry]]:
    """Split a canary's history (oldest first) into runs, each starting at a new revision."""
    runs: list[list[Entry]] = []
    for entry in entries:
        if entry.subject.startswith("New revision detected! Scaling up") or not runs:
            runs.append([])
        runs[-1].append(entry)
    return runs


def _verify(pg: Playground, out: TextIO) -> bool:
    gateway = list(reversed(history(pg.remote, GATEWAY[0], rev="main")))
    contour = list(reversed(history(pg.remote, CONTOUR[0], rev="main")))
    problems: list[str] = []
    runs = _runs(gateway)
    if len(runs) < 3:
        problems.append(
            f"Gateway API canary: expected initialization and two runs, found {len(runs)} parts"
        )
    else:
        promoted, rolled_back = runs[1], runs[2]
        weights = [
            e.weight
            for e in promoted
            if e.phase == Phase.PROGRESSING and e.subject.startswith("Advance")
        ]
        if weights != [10, 20, 30, 40, 50]:
            problems.append(f"6.0.1 should advance through 10, 20, 30, 40, 50; it went {weights}")
        if promoted[-1].phase != Phase.SUCCEEDED:
            problems.append(f"6.0.1 should end Succeeded, not {promoted[-1].phase}")
        if not any((e.failed_checks or 0) > 0 for e in rolled_back):
            problems.append("6.0.2 should record failed checks")
        if rolled_back[-1].phase != Phase.FAILED:
            problems.append(f"6.0.2 should be rolled back (Failed), not {rolled_back[-1].phase}")
    iterations = [e.subject for e in contour if "canary iteration" in e.subject]
    if len(iterations) != 10 or not iterations[-1].endswith("10/10"):
        problems.append(f"the A/B test should run 10 iterations, ran {len(iterations)}")
    if not contour or contour[-1].phase != Phase.SUCCEEDED:
        problems.append("the A/B test should end Succeeded")
    for problem in problems:
        out.write(f"demo check failed: {problem}\n")
    return not problems


def _show_histories(pg: Playground, out: TextIO) -> None:
    for key, _ in (GATEWAY, CONTOUR):
        out.write(f"\nHistory of {key} (from git log):\n")
        out.write(f"  {'COMMIT':8}  {'PHASE':17} {'WEIGHT':>6}  SUBJECT\n")
        for entry in reversed(history(pg.remote, key, rev="main")):
            weight = "" if entry.weight is None else str(entry.weight)
            out.write(f"  {entry.sha[:8]}  {entry.phase or '':17} {weight:>6}  {entry.subject}\n")
