"""Helpers for the end-to-end rollouts: a :class:`World` (one Playground plus gitops-canary built
on it), a bounded :func:`drive` loop, variant config repositories, and readers of git and the
simulator's store.

Everything here drives the real product: ``Reconciler.tick()`` against a bare git repository, the
cluster simulator and a real Prometheus. Assertions read what an operator would read: ``git log``
(through :func:`gitops_canary.repo.history.history`), the files at a commit, and the live objects.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitops_canary.cli.wiring import Built, build
from gitops_canary.config import Config
from gitops_canary.playground import DEFAULT_PATHS, EXAMPLES, Playground, git
from gitops_canary.reconciler import CanaryOutcome, Reconciler, TickReport
from gitops_canary.repo.history import Entry, history
from gitops_canary.sim.store import Store

GATEWAY = "test/podinfo"
CONTOUR = "test-contour/podinfo"
GATEWAY_APP = "apps/podinfo"
CONTOUR_APP = "apps/podinfo-contour"
IMAGE = "ghcr.io/stefanprodan/podinfo"
#: How often ``drive`` ticks: a little faster than the playground's applier (0.5 s).
TICK_SECONDS = 0.25

APP_OF = {GATEWAY: GATEWAY_APP, CONTOUR: CONTOUR_APP}
ROUTE_FILE = {
    GATEWAY: f"{GATEWAY_APP}/gitops-canary/podinfo/httproute-podinfo.yaml",
    CONTOUR: f"{CONTOUR_APP}/gitops-canary/podinfo/httpproxy-podinfo.yaml",
}


STATUS_FILE = {
    GATEWAY: f"{GATEWAY_APP}/gitops-canary/podinfo/status.yaml",
    CONTOUR: f"{CONTOUR_APP}/gitops-canary/podinfo/status.yaml",
}


class Deadline(AssertionError):
    """``drive`` ran out of time; the message carries the history and recent outcomes."""


# --------------------------------------------------------------------------- driving


def drive(
    reconciler: Reconciler,
    until: Callable[[], bool],
    timeout: float,
    *,
    what: str = "the condition",
    each_tick: Callable[[TickReport], None] | None = None,
    describe: Callable[[], str] | None = None,
    recent: deque[str] | None = None,
) -> float:
    """Tick every ``TICK_SECONDS`` until ``until()`` holds; fail after ``timeout`` seconds.

    ``each_tick`` runs after every tick (a person reacting, a sample of the cluster). On the
    deadline the failure shows ``describe()`` (the git history) and the last outcomes, so a stuck
    rollout explains itself. Returns the seconds it took.
    """
    outcomes = recent if recent is not None else deque(maxlen=25)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        tick_started = time.monotonic()
        report = reconciler.tick()
        _remember(outcomes, report, tick_started - started)
        if each_tick is not None:
            each_tick(report)
        if until():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            story = describe() if describe is not None else ""
            raise Deadline(
                f"{what} did not happen within {timeout:g} s.\n"
                f"git history (oldest first):\n{story}\n"
                "recent reconciler outcomes:\n" + "\n".join(outcomes)
            )
        time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - tick_started)))


def _remember(outcomes: deque[str], report: TickReport, at: float) -> None:
    for problem in report.problems:
        line = f"  problem: {problem}"
        if line not in outcomes:
            outcomes.append(line)
    for outcome in report.outcomes:
        if outcome.kind == "not-due":
            continue
        line = _outcome_line(outcome)
        # A wait repeats every tick; keep one line per distinct reason, at its latest position.
        if outcome.kind == "wait" and line in outcomes:
            outcomes.remove(line)
        outcomes.append(line if outcome.kind == "wait" else f"{line} (+{at:.1f}s)")


def _outcome_line(outcome: CanaryOutcome) -> str:
    phase = outcome.phase.value if outcome.phase is not None else "-"
    sha = f" {outcome.commit[:10]}" if outcome.commit else ""
    return f"  {outcome.key} {outcome.kind}{sha} [{phase} w={outcome.weight}] {outcome.message}"


def settled(read: Callable[[], object], seconds: float) -> Callable[[], bool]:
    """A ``drive`` condition: ``read()`` has returned the same value for ``seconds``."""
    last: list[object] = [object()]
    since = [time.monotonic()]

    def check() -> bool:
        value = read()
        if value != last[0]:
            last[0], since[0] = value, time.monotonic()
        return time.monotonic() - since[0] >= seconds

    return check


# --------------------------------------------------------------------------- variant repos


def variant_repo(
    destination: Path,
    *,
    canaries: Mapping[str, Callable[[dict[str, Any]], None]] | None = None,
    drop: Iterable[str] = (),
) -> Path:
    """A copy of ``examples/repo`` with some Canary specs edited and some app directories gone.

    ``canaries`` maps an app directory to a function that edits its ``canary.yaml`` (a plain dict
    of the document; comments are not kept in a variant).
    """
    shutil.copytree(EXAMPLES, destination, ignore=shutil.ignore_patterns(".git", "gitops-canary"))
    for app in drop:
        shutil.rmtree(destination / app)
    yaml = YAML()
    for app, edit in (canaries or {}).items():
        path = destination / app / "canary.yaml"
        document = yaml.load(path.read_text(encoding="utf-8"))
        edit(document)
        out = io.StringIO()
        yaml.dump(document, out)
        path.write_text(out.getvalue(), encoding="utf-8")
    return destination


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """One playground, gitops-canary built on it, and readers for assertions."""

    playground: Playground
    built: Built
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=30))

    @property
    def reconciler(self) -> Reconciler:
        return self.built.reconciler

    @property
    def remote(self) -> Path:
        return self.playground.remote

    @property
    def store(self) -> Store:
        assert self.playground.cluster is not None
        return self.playground.cluster.store

    # -- driving

    def drive(
        self,
        until: Callable[[], bool],
        timeout: float,
        what: str,
        each_tick: Callable[[TickReport], None] | None = None,
    ) -> float:
        return drive(
            self.reconciler,
            until,
            timeout,
            what=what,
            each_tick=each_tick,
            describe=self.describe,
            recent=self.recent,
        )

    def hold(self, seconds: float, each_tick: Callable[[TickReport], None] | None = None) -> None:
        """Keep ticking for ``seconds`` (to show that nothing happens meanwhile)."""
        end = time.monotonic() + seconds
        self.drive(lambda: time.monotonic() >= end, seconds + 30, "holding", each_tick)

    def initialize(self, *keys: str, timeout: float = 60) -> None:
        """Drive each canary through ``Initializing`` and ``Initialized``, with the person
        including the generated directory after gitops-canary's first commit created it."""
        included: set[str] = set()

        def include(_: TickReport) -> None:
            for key in keys:
                if key not in included and self.entries(key):
                    self.playground.include_generated(APP_OF[key])
                    included.add(key)

        self.drive(
            lambda: all(self.phase(key) == "Initialized" for key in keys),
            timeout,
            f"initialization of {', '.join(keys)}",
            include,
        )

    def bump(self, key: str, tag: str) -> str:
        return self.playground.set_image(APP_OF[key], f"{IMAGE}:{tag}")

    def until_phase(self, key: str, phase: str, timeout: float) -> float:
        return self.drive(lambda: self.phase(key) == phase, timeout, f"{key} reaching {phase}")

    # -- git

    def entries(self, key: str) -> list[Entry]:
        """The canary's step commits on main, oldest first."""
        return list(reversed(history(self.remote, key, rev="main")))

    def entries_since(self, key: str, sha: str) -> list[Entry]:
        """Step commits made after commit ``sha`` (exclusive), oldest first."""
        later = set(self.git("rev-list", f"{sha}..main").split())
        return [entry for entry in self.entries(key) if entry.sha in later]

    def phase(self, key: str) -> str | None:
        newest = history(self.remote, key, rev="main", limit=1)
        return newest[0].phase if newest else None

    def weight(self, key: str) -> int | None:
        newest = history(self.remote, key, rev="main", limit=1)
        return newest[0].weight if newest else None

    def git(self, *args: str) -> str:
        return git(self.remote, *args)

    def commit_count(self) -> int:
        return int(self.git("rev-list", "--count", "main"))

    def yaml_at(self, path: str, rev: str = "main") -> Any:
        return YAML(typ="safe", pure=True).load(self.git("show", f"{rev}:{path}"))

    def changed_files(self, sha: str) -> list[str]:
        return self.git("show", "--format=", "--name-only", sha).split()

    def describe(self) -> str:
        log = self.git(
            "log",
            "--reverse",
            "--format=%h %an | %s | %(trailers:key=Canary-Phase,key=Canary-Weight,"
            "key=Canary-Failed-Checks,separator=%x2C )",
            "main",
        )
        return "\n".join(f"  {line}" for line in log.splitlines())

    # -- the simulated cluster

    def live(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(api_version, kind, namespace, name)
        assert obj is not None, f"{kind} {namespace}/{name} is not in the simulated cluster"
        return obj

    def live_image(self, namespace: str, name: str) -> str:
        deployment = self.live("apps/v1", "Deployment", namespace, name)
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def close(self) -> None:
        self.built.close()
        self.playground.stop()


def open_world(
    workdir: Path,
    *,
    apps: Iterable[str] = (GATEWAY_APP, CONTOUR_APP),
    canaries: Mapping[str, Callable[[dict[str, Any]], None]] | None = None,
    interval_scale: float = 0.06,
    config: Callable[[Playground], Config] | None = None,
) -> World:
    """Start a playground in ``workdir`` and build gitops-canary on it (close with ``close()``).

    ``interval_scale`` 0.06 turns the examples' 1m analysis interval into 3.6 s. Much shorter and
    the first check after a canary starts receiving traffic can run before Prometheus (scraping
    every second) has two samples of it: "no values found", a failed check, as in Flagger. The
    applier's timestamps have whole seconds, so up to one second of the interval is lost.

    With the default ``apps`` and no ``canaries`` edits it runs ``examples/repo`` as shipped and
    applies all its paths. Otherwise it runs a variant: the other podinfo app is removed and the
    simulated Flux applies only the kept apps and the Gateway (fewer renders, less CPU).
    """
    kept = set(apps)
    source, paths = EXAMPLES, dict(DEFAULT_PATHS)
    if kept != {GATEWAY_APP, CONTOUR_APP} or canaries:
        source = variant_repo(
            workdir / "source",
            canaries=canaries,
            drop=[app for app in (GATEWAY_APP, CONTOUR_APP) if app not in kept],
        )
        paths = {
            name: path
            for name, path in DEFAULT_PATHS.items()
            if path in kept or path.startswith("infrastructure/")
        }
    playground = Playground(
        workdir / "playground", source=source, interval_scale=interval_scale, paths=paths
    )
    playground.start()
    try:
        built = build(config(playground) if config is not None else playground.config())
    except BaseException:
        playground.stop()
        raise
    return World(playground, built)


#: The ``open_playground`` fixture: ``open_playground(**options)`` -> a started :class:`World`.
OpenWorld = Callable[..., World]


# --------------------------------------------------------------------------- assertions


def route_weights(route: Mapping[str, Any]) -> list[list[tuple[str, int]]]:
    """Per rule of an HTTPRoute, ``(service, weight)`` of each backend."""
    return [
        [(str(ref["name"]), int(ref.get("weight", 1))) for ref in rule.get("backendRefs", [])]
        for rule in route["spec"]["rules"]
    ]


def proxy_weights(proxy: Mapping[str, Any]) -> list[list[tuple[str, int]]]:
    """Per route of an HTTPProxy, ``(service, weight)`` of each service (missing weight: 0)."""
    return [
        [(str(svc["name"]), int(svc.get("weight", 0))) for svc in route.get("services", [])]
        for route in proxy["spec"]["routes"]
    ]


def assert_status_matches_trailers(world: World, key: str, entries: Iterable[Entry]) -> None:
    """At every step commit, ``status.yaml`` says what the commit's trailers say."""
    for entry in entries:
        status = world.yaml_at(STATUS_FILE[key], entry.sha)["status"]
        assert (status.get("phase"), status.get("canaryWeight", 0)) == (
            entry.phase,
            entry.weight,
        ), f"{entry.sha[:12]} ({entry.subject}): status.yaml {status}"
        assert status.get("failedChecks", 0) == entry.failed_checks, entry.subject


def assert_builds_at_every_commit(world: World, app: str, scratch: Path, since: str) -> int:
    """``kubectl kustomize <app>`` succeeds at every commit of main after ``since``.

    Each commit's tree is exported with ``git archive`` into its own directory. Returns how many
    commits were checked.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: the e2e suite checks every commit with kubectl kustomize")
    shas = world.git("rev-list", "--reverse", f"{since}..main").split()
    for sha in shas:
        tree = scratch / sha[:12]
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "apps"],
            cwd=world.remote,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        built = subprocess.run(
            [kubectl, "kustomize", str(tree / app)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        subject = world.git("log", "-1", "--format=%s", sha)
        assert built.returncode == 0, (
            f"kubectl kustomize {app} fails at {sha[:12]} ({subject}): {built.stderr.strip()}"
        )
        shutil.rmtree(tree)
    return len(shas)
