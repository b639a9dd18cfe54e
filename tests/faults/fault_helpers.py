"""Helpers of the fault suites: a rig to roll podinfo out under a fault, and the checks after it.

A :class:`Rig` is one playground (bare config repository, cluster simulator, real Prometheus,
load tester) with only the Gateway API podinfo app, and gitops-canary built on it exactly as
``gitops-canary run`` builds it, ticked through the real :class:`~gitops_canary.loop.Loop` (so a
tick that fails as a whole is handled as in production). Dana, the person, includes the generated
directory after gitops-canary's first commit and bumps the image once the canary is initialized.

The loopback stand-ins a fault needs live here too: :class:`HttpStandIn` forwards to a real
server, stalls or answers garbage on demand; :class:`TcpGate` forwards TCP and can refuse
connections like a server that is down. The checks every fault test ends with read only the bare
remote: the canary's step sequence, every commit still on the branch, only fast-forwards in the
branch's reflog.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from gitops_canary.cli.wiring import Built, build
from gitops_canary.config import parse_config
from gitops_canary.loop import Loop
from gitops_canary.playground import DEFAULT_PATHS, EXAMPLES, PERSON, Playground, git
from gitops_canary.reconciler import CanaryOutcome, TickReport
from gitops_canary.repo.history import Entry, history
from gitops_canary.sim.cluster import SimCluster
from gitops_canary.telemetry import HealthState

CANARY = "test/podinfo"
APP_DIR = "apps/podinfo"
CANARY_DIR = f"{APP_DIR}/gitops-canary/podinfo"
GOOD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
#: Never becomes ready in the playground scenario.
STUCK_IMAGE = "ghcr.io/stefanprodan/podinfo:9.9.9"
BOT = "gitops-canary <gitops-canary@example.org>"
#: ``git -c ...`` arguments that make a commit Dana's (the playground's person).
PERSON_IDENTITY = ("-c", f"user.name={PERSON[0]}", "-c", f"user.email={PERSON[1]}")
BRANCH_REF = "refs/heads/main"
ZERO_SHA = "0" * 40
#: How often a rig ticks: a little faster than the playground's applier (0.5 s).
TICK_SECONDS = 0.25
#: Only the Gateway API app: the Contour copy would double the simulator's work for nothing.
PATHS: Mapping[str, str] = {k: v for k, v in DEFAULT_PATHS.items() if k != "podinfo-contour"}

Step = tuple[str | None, int | None]


def expected_steps(weights: Sequence[int]) -> list[Step]:
    """(phase, canary weight) of every commit of an undisturbed run up to promotion (DESIGN §2)."""
    return [
        ("Initializing", 0),
        ("Initialized", 0),
        ("Progressing", 0),
        *(("Progressing", weight) for weight in weights),
        ("Promoting", weights[-1]),
        ("Finalising", 0),
        ("Succeeded", 0),
    ]


#: The example's canary as shipped (stepWeight 10, maxWeight 50).
FULL_RUN = expected_steps([10, 20, 30, 40, 50])
#: :func:`short_canary`'s run: two traffic steps.
SHORT_RUN = expected_steps([25, 50])


# --------------------------------------------------------------------------- config repositories


def source_repo(
    root: Path,
    *,
    edit_canary: Callable[[dict[str, Any]], None] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """A copy of ``examples/repo`` without the Contour app, its podinfo Canary changed by
    ``edit_canary`` (the parsed document, edited in place) and extra ``files`` added."""
    source = root / "source"
    shutil.copytree(EXAMPLES, source, ignore=shutil.ignore_patterns(".git", "gitops-canary"))
    shutil.rmtree(source / "apps" / "podinfo-contour")
    if edit_canary is not None:
        path = source / APP_DIR / "canary.yaml"
        round_trip = YAML()
        document = round_trip.load(path.read_text(encoding="utf-8"))
        edit_canary(document)
        out = io.StringIO()
        round_trip.dump(document, out)
        path.write_text(out.getvalue(), encoding="utf-8")
    for relative, text in (files or {}).items():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return source


def short_canary(threshold: int | None = None) -> Callable[[dict[str, Any]], None]:
    """Two traffic steps (25 and 50) instead of five, and optionally a lower threshold."""

    def edit(document: dict[str, Any]) -> None:
        analysis = document["spec"]["analysis"]
        analysis["stepWeight"] = 25
        analysis["maxWeight"] = 50
        if threshold is not None:
            analysis["threshold"] = threshold

    return edit


# --------------------------------------------------------------------------- the remote


_PROTECT_MAIN_HOOK = """#!/bin/sh
# Branch protection for main only: no deletion, no non-fast-forward update.
[ "$1" = refs/heads/main ] || exit 0
case "$3" in 0000000000000000000000000000000000000000)
  echo "main is protected: it cannot be deleted" >&2; exit 1 ;;
esac
case "$2" in 0000000000000000000000000000000000000000) exit 0 ;; esac
git merge-base --is-ancestor "$2" "$3" && exit 0
echo "main is protected: denying non-fast-forward refs/heads/main" >&2
exit 1
"""


def harden_remote(remote: Path, *, only_main: bool = False) -> None:
    """Refuse non-fast-forward pushes and deletions loudly, and keep the branch's reflog, so a
    force push by anyone would fail and any rewrite would show in ``logs/refs/heads/main``.

    ``only_main`` protects ``main`` alone (an ``update`` hook, like a host's branch protection),
    for pull-request mode, where gitops-canary rewrites its own proposal branch."""
    git(remote, "config", "core.logAllRefUpdates", "always")
    if only_main:
        hook = remote / "hooks" / "update"
        hook.write_text(_PROTECT_MAIN_HOOK, encoding="utf-8")
        hook.chmod(0o755)
        return
    git(remote, "config", "receive.denyNonFastForwards", "true")
    git(remote, "config", "receive.denyDeletes", "true")


def tip(remote: Path) -> str:
    return git(remote, "rev-parse", BRANCH_REF)


def entries(remote: Path) -> list[Entry]:
    """The canary's step commits on the remote, oldest first."""
    return list(reversed(history(remote, CANARY, rev=BRANCH_REF)))


def steps(remote: Path) -> list[Step]:
    return [(e.phase, e.weight) for e in entries(remote)]


def last_step(remote: Path) -> Step | None:
    found = history(remote, CANARY, rev=BRANCH_REF, limit=1)
    return (found[0].phase, found[0].weight) if found else None


def describe_remote(remote: Path, limit: int = 60) -> str:
    log = git(remote, "log", f"-{limit}", "--format=%h %an: %s", BRANCH_REF)
    return "remote history (newest first):\n" + log


def reachable(remote: Path) -> set[str]:
    return set(git(remote, "rev-list", BRANCH_REF).split())


def assert_fast_forward_only(remote: Path) -> int:
    """Every update of the branch since :func:`harden_remote` moved it forward: each reflog entry
    starts where the previous one ended and the old tip is an ancestor of the new one. Returns
    how many updates the reflog holds."""
    lines = (remote / "logs" / BRANCH_REF).read_text(encoding="utf-8").splitlines()
    assert lines, "the remote kept no reflog for main"
    previous: str | None = None
    for number, line in enumerate(lines, 1):
        old, new = line.split()[:2]
        where = f"reflog entry {number} of main ({line.split(chr(9))[-1]})"
        assert new != ZERO_SHA, f"{where}: the branch was deleted"
        if previous is not None:
            assert old == previous, f"{where}: starts at {old[:12]}, not at {previous[:12]}"
        if old != ZERO_SHA:
            forward = subprocess.run(
                ["git", "merge-base", "--is-ancestor", old, new],
                cwd=remote,
                capture_output=True,
                check=False,
                timeout=30,
            )
            assert forward.returncode == 0, (
                f"{where}: {old[:12]} -> {new[:12]} is not a fast-forward"
            )
        previous = new
    assert previous == tip(remote), "the reflog does not end at the branch's tip"
    return len(lines)


def assert_steps_whole(remote: Path) -> None:
    """Every step commit says in its status file what its trailers say, and its HTTPRoute
    routes exactly the status' canary weight."""
    for entry in entries(remote):
        where = f"commit {entry.sha[:10]} {entry.subject!r}"
        status = yaml.safe_load(git(remote, "show", f"{entry.sha}:{CANARY_DIR}/status.yaml"))
        status = status.get("status", status)
        assert status.get("phase") == entry.phase, f"{where}: status {status}"
        assert int(status.get("canaryWeight", 0)) == entry.weight, f"{where}: status {status}"
        route = yaml.safe_load(
            git(remote, "show", f"{entry.sha}:{CANARY_DIR}/httproute-podinfo.yaml")
        )
        weights = {
            ref["name"]: ref["weight"]
            for rule in route["spec"]["rules"]
            for ref in rule["backendRefs"]
        }
        assert weights == {
            "podinfo-primary": 100 - (entry.weight or 0),
            "podinfo-canary": entry.weight or 0,
        }, f"{where}: route weights {weights}"


# --------------------------------------------------------------------------- polling


class Defect(AssertionError):
    """The failure an ``xfail`` test expects: the product defect it documents showed itself.

    Those tests are marked ``xfail(strict=True, raises=Defect)``, so a broken set-up (any other
    failure) still fails the suite instead of passing as the expected failure."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Defect(message)


class Budget:
    """A time budget for one wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0


def wait_until(
    condition: Callable[[], bool],
    seconds: float,
    what: str,
    context: Callable[[], str] = lambda: "",
    every: float = 0.05,
) -> None:
    budget = Budget(seconds)
    while not condition():
        if budget.expired():
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}\n{context()}")
        time.sleep(every)


# --------------------------------------------------------------------------- the rig


@dataclass
class Person:
    """Dana: includes the generated directory once it exists, and deploys ``image`` once the
    canary is initialized (DESIGN §2, rows 1-3)."""

    pg: Playground
    image: str = GOOD_IMAGE
    included: bool = False
    bumped: bool = False
    #: While True, Dana waits before deploying the new image.
    holding: bool = False

    def act(self) -> None:
        if self.bumped:
            return
        step = last_step(self.pg.remote)
        try:
            if not self.included and step is not None:
                self.pg.include_generated(APP_DIR)
                self.included = True
            if self.included and step == ("Initialized", 0) and not self.holding:
                self.pg.set_image(APP_DIR, self.image)
                self.bumped = True
        except RuntimeError as error:
            # Other people kept pushing first (the concurrency suite): try again next tick.
            if "could not push" not in str(error):
                raise


@dataclass
class Rig:
    pg: Playground
    built: Built
    person: Person
    health: HealthState = field(default_factory=HealthState)
    #: (seconds since the rig started, outcome) of every tick's outcome for the canary.
    outcomes: list[tuple[float, CanaryOutcome]] = field(default_factory=list)
    #: Seconds since the rig started of every tick that failed as a whole.
    failed_ticks: list[float] = field(default_factory=list)
    #: Every sha gitops-canary reported as pushed.
    pushed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = Loop(self.built.reconciler, self.health)
        self.started = time.monotonic()

    @property
    def remote(self) -> Path:
        return self.pg.remote

    @property
    def cluster(self) -> SimCluster:
        assert self.pg.cluster is not None
        return self.pg.cluster

    def now(self) -> float:
        return time.monotonic() - self.started

    def tick(self) -> TickReport | None:
        """One tick as the loop runs it: a tick that fails as a whole is logged, not raised."""
        report = self.loop.run_once()
        at = self.now()
        if report is None:
            self.failed_ticks.append(at)
            return None
        for outcome in report.outcomes:
            if outcome.key == CANARY and outcome.kind != "not-due":
                self.outcomes.append((at, outcome))
                if outcome.commit:
                    self.pushed.append(outcome.commit)
        return report

    def drive(
        self,
        until: Callable[[], bool],
        seconds: float,
        what: str,
        each_tick: Callable[[TickReport | None], None] | None = None,
    ) -> float:
        """Tick (and let Dana act) every ``TICK_SECONDS`` until ``until()``; fail after
        ``seconds`` with the remote's history and the recent outcomes. Returns the time taken."""
        budget = Budget(seconds)
        begun = time.monotonic()
        while True:
            started = time.monotonic()
            report = self.tick()
            self.person.act()
            if each_tick is not None:
                each_tick(report)
            if until():
                return time.monotonic() - begun
            if budget.expired():
                raise AssertionError(
                    f"{what} did not happen within {seconds:g}s\n{self.describe()}"
                )
            time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - started)))

    def hold(
        self, seconds: float, each_tick: Callable[[TickReport | None], None] | None = None
    ) -> None:
        """Keep ticking for ``seconds``."""
        end = time.monotonic() + seconds
        self.drive(lambda: time.monotonic() >= end, seconds + 30, "holding", each_tick)

    def until_step(self, step: Step, seconds: float) -> float:
        return self.drive(lambda: last_step(self.remote) == step, seconds, f"step {step}")

    def describe(self) -> str:
        recent = [
            f"  +{at:5.1f}s {o.kind} [{o.phase.value if o.phase else '-'} w={o.weight}] "
            f"{o.message[:160]}"
            for at, o in self.outcomes[-25:]
        ]
        return (
            describe_remote(self.remote)
            + "\nrecent outcomes:\n"
            + "\n".join(recent)
            + f"\nhealth: {self.health.get()}; failed ticks: {len(self.failed_ticks)}"
        )

    def outcomes_between(self, start: float, end: float) -> list[CanaryOutcome]:
        return [o for at, o in self.outcomes if start <= at <= end]


@contextlib.contextmanager
def open_playground(
    root: Path, *, source: Path | None = None, only_main: bool = False
) -> Iterator[Playground]:
    """A playground in ``root`` with only the podinfo app and a hardened remote (see
    :func:`harden_remote`); stopped after."""
    pg = Playground(
        root / "pg",
        source=source if source is not None else source_repo(root),
        paths=PATHS,
        interval_scale=0.05,
    )
    try:
        pg.start()
        harden_remote(pg.remote, only_main=only_main)
        yield pg
    finally:
        pg.stop()


@contextlib.contextmanager
def open_rig(
    root: Path,
    *,
    source: Path | None = None,
    image: str = GOOD_IMAGE,
    configure: Callable[[Playground, dict[str, Any]], None] | None = None,
) -> Iterator[Rig]:
    """A playground (see :func:`open_playground`) and gitops-canary built on it with the
    playground's configuration as changed by ``configure``; everything stopped at the end."""
    with open_playground(root, source=source) as pg:
        data = pg.config_data()
        if configure is not None:
            configure(pg, data)
        built = build(parse_config(data, "<fault rig>", env={}))
        try:
            yield Rig(pg, built, Person(pg, image))
        finally:
            built.close()


def flux_applied(rig: Rig, sha: str) -> bool:
    """Whether the simulated Flux has applied ``sha`` (exactly) for the podinfo path."""
    return rig.cluster.applier.last_applied_revision("podinfo") == f"main@sha1:{sha}"


# --------------------------------------------------------------------------- loopback stand-ins


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpStandIn:
    """An HTTP server on loopback in front of ``upstream`` (or, without one, answering 200).

    Modes: ``forward`` passes every request through; ``stall`` waits ``stall_seconds`` and then
    forwards (a server slower than its client's timeout); ``garbage`` answers 200 with an HTML
    page, like a login proxy would. :meth:`go_down` closes the port (connections are refused)
    and :meth:`come_back` opens the same port again. :attr:`served` counts requests per mode.
    """

    def __init__(self, upstream: str = "") -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "forward"
        self.stall_seconds = 0.0
        self.served: dict[str, int] = {}
        self.port = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpStandIn:
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes requests stalled in ``stall`` mode
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def go_down(self) -> None:
        self.stop()

    def come_back(self) -> None:
        self.start()

    def set_mode(self, mode: str, *, stall_seconds: float = 0.0) -> None:
        assert mode in ("forward", "stall", "garbage"), mode
        with self._lock:
            self.mode, self.stall_seconds = mode, stall_seconds

    def count(self, mode: str) -> int:
        with self._lock:
            return self.served.get(mode, 0)

    def _answer(
        self, method: str, path: str, body: bytes | None, content_type: str
    ) -> tuple[int, bytes, str]:
        with self._lock:
            mode, stall = self.mode, self.stall_seconds
            self.served[mode] = self.served.get(mode, 0) + 1
        if mode == "garbage":
            return 200, b"<html><body>Please sign in to continue</body></html>", "text/html"
        if mode == "stall" and self._stopping.wait(stall):
            return 503, b"stopping", "text/plain"
        if not self.upstream:
            return 200, b"ok", "text/plain"
        request = urllib.request.Request(
            self.upstream + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read(), error.headers.get_content_type()
        except OSError as error:
            return 502, f"upstream unreachable: {error}".encode(), "text/plain"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                content_type = self.headers.get("Content-Type") or "application/octet-stream"
                status, data, kind = stand_in._answer(method, self.path, body, content_type)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class TcpGate:
    """Forwards TCP from a loopback port to ``target``; :meth:`cut` makes the port refuse
    connections and drops the open ones (a server that went down), :meth:`restore` reopens the
    same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accepting = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpGate:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._accepting.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        self._accepting.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(None)
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)


class MiniGitHub:
    """Just enough of GitHub's pull-request REST API for gitops-canary, on loopback.

    Pull requests live in memory; their head sha is read from the bare remote. A person merges
    with :meth:`mark_merged` after pushing the merge. With :attr:`stall_create` set, a request
    to open a pull request creates it at once but answers only after that many seconds, like a
    host that did the work while its client was dying; :attr:`create_seen` is then set.
    """

    def __init__(self, remote: Path, project: str = "acme/fleet") -> None:
        self.remote = remote
        self.project = project
        self.pulls: list[dict[str, Any]] = []
        self.stall_create = 0.0
        self.create_seen = threading.Event()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MiniGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def open_pulls(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self.pulls if p["state"] == "open"]

    def mark_merged(self, number: int, by: str) -> None:
        with self._lock:
            pull = next(p for p in self.pulls if p["number"] == number)
            pull.update(state="closed", merged=True, merged_by=by)

    def head_sha(self, branch: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.remote,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.stdout.strip() or None

    def _render(self, pull: Mapping[str, Any]) -> dict[str, Any]:
        merged = bool(pull.get("merged"))
        return {
            "number": pull["number"],
            "html_url": f"https://github.example/{self.project}/pull/{pull['number']}",
            "state": pull["state"],
            "merged": merged,
            "merged_at": "2024-01-01T00:00:00Z" if merged else None,
            "merged_by": {"login": pull["merged_by"]} if merged else None,
            "title": pull["title"],
            "body": pull["body"],
            "head": {"ref": pull["head"], "sha": self.head_sha(pull["head"])},
            "base": {"ref": pull["base"]},
        }

    def _serve(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        prefix = f"/repos/{self.project}/pulls"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}
        rest = path[len(prefix) :].strip("/")
        if not rest and method == "GET":
            head = query.get("head", [""])[0].split(":", 1)[-1]
            state = query.get("state", ["open"])[0]
            with self._lock:
                matching = [
                    p
                    for p in reversed(self.pulls)
                    if p["head"] == head and (state == "all" or p["state"] == state)
                ]
            return 200, [self._render(p) for p in matching]
        if not rest and method == "POST":
            with self._lock:
                pull = {
                    "number": len(self.pulls) + 1,
                    "state": "open",
                    "title": body["title"],
                    "body": body.get("body") or "",
                    "head": body["head"],
                    "base": body["base"],
                }
                self.pulls.append(pull)
                stall = self.stall_create
            self.create_seen.set()
            if stall:
                self._stopping.wait(stall)
            return 201, self._render(pull)
        with self._lock:
            found = next((p for p in self.pulls if str(p["number"]) == rest), None)
            if found is not None and method == "PATCH":
                found.update(title=body["title"], body=body.get("body") or "")
        if found is None:
            return 404, {"message": "Not Found"}
        return 200, self._render(found)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, data = forge._serve(
                    method, url.path, urllib.parse.parse_qs(url.query), body
                )
                raw = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client died waiting

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_PATCH(self) -> None:
                self._answer("PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def kubeconfig_via(original: Path, server: str, destination: Path) -> Path:
    """A copy of ``original`` whose cluster is reached at ``server``."""
    config = yaml.safe_load(original.read_text(encoding="utf-8"))
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    destination.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    destination.chmod(0o600)
    return destination


# --------------------------------------------------------------------------- processes

EXECUTABLE = Path(sys.executable).parent / "gitops-canary"

#: ``git`` for gitops-canary's own PATH: passes every call to the real git, except that a call
#: whose subcommand is armed (a file ``armed-before-<sub>`` or ``armed-after-<sub>`` in
#: ``$GITOPS_FAULTS_CTL``) claims the file (renamed ``reached-...``) and sleeps before or after
#: running git, until the test kills the process group: a SIGKILL at an exact point.
_GIT_WRAPPER = """#!/bin/sh
ctl="$GITOPS_FAULTS_CTL"
sub=""
skip=0
for arg in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$arg" in
    -c|-C) skip=1 ;;
    -*) ;;
    *) sub="$arg"; break ;;
  esac
done
claim() {{
  [ -n "$ctl" ] && [ -n "$sub" ] && mv "$ctl/armed-$1-$sub" "$ctl/reached-$1-$sub" 2>/dev/null
}}
if claim before; then sleep 300; fi
if [ -n "$ctl" ] && [ -n "$sub" ] && [ -e "$ctl/armed-after-$sub" ]; then
  {git} "$@"
  status=$?
  if claim after; then sleep 300; fi
  exit $status
fi
exec {git} "$@"
"""


class GitPauses:
    """Exact kill points: a ``git`` wrapper first on gitops-canary's PATH (see above)."""

    def __init__(self, root: Path) -> None:
        real_git = shutil.which("git")
        assert real_git is not None, "git is missing"
        self.bin = root / "bin"
        self.control = root / "control"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.control.mkdir(parents=True, exist_ok=True)
        wrapper = self.bin / "git"
        wrapper.write_text(_GIT_WRAPPER.format(git=real_git), encoding="utf-8")
        wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "GITOPS_FAULTS_CTL": str(self.control),
        }

    def arm(self, when: str, *subcommands: str) -> None:
        for subcommand in subcommands:
            (self.control / f"armed-{when}-{subcommand}").touch()

    def reached(self, when: str, *subcommands: str) -> bool:
        return any((self.control / f"reached-{when}-{s}").exists() for s in subcommands)

    def reset(self) -> None:
        for entry in self.control.iterdir():
            entry.unlink()


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")

    def describe(self) -> str:
        return (
            f"gitops-canary (pid {self.pid}, exit {self.process.poll()}) stderr:\n"
            f"{self.errors()[-3000:]}"
        )


@dataclass
class Processes:
    """Every gitops-canary process a test starts, each in a session of its own (so a crash
    kills it with its git children, as a container runtime would); ``close`` kills what is
    left."""

    logs: Path
    started: list[Started] = field(default_factory=list)

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Started:
        self.logs.mkdir(parents=True, exist_ok=True)
        index = len(self.started)
        stdout, stderr = self.logs / f"{index:02d}.out", self.logs / f"{index:02d}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [str(EXECUTABLE), *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        started = Started(process, stdout, stderr)
        self.started.append(started)
        return started

    def close(self) -> None:
        for started in self.started:
            kill_group(started.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                started.process.wait(timeout=10)


@contextlib.contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    owned = Processes(logs)
    try:
        yield owned
    finally:
        owned.close()


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_while_running(
    condition: Callable[[], bool],
    seconds: float,
    started: Started,
    act: Callable[[], None] = lambda: None,
) -> bool:
    """Poll ``condition`` (calling ``act`` every 0.2 s, a person's moves); False when ``seconds``
    run out. Fails if gitops-canary exits by itself: a restart that does not recover."""
    end = time.monotonic() + seconds
    acted = 0.0
    while not condition():
        assert started.process.poll() is None, started.describe()
        if time.monotonic() >= end:
            return False
        if time.monotonic() - acted > 0.2:
            act()
            acted = time.monotonic()
        time.sleep(0.02)
    return True


def crash(started: Started) -> None:
    """SIGKILL gitops-canary and its children; return once nothing of it runs any more."""
    kill_group(started.pid)
    started.process.wait(timeout=10)
    wait_until(lambda: not group_alive(started.pid), 10, f"process group {started.pid} to end")


def write_config(pg: Playground, path: Path, **overrides: Any) -> Path:
    """The playground's configuration as a file (JSON is YAML)."""
    path.write_text(json.dumps(pg.config_data(**overrides), indent=2), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- misc


def log_lines(records: Iterable[Any], contains: str) -> list[str]:
    """Messages of the captured log records that contain ``contains``."""
    return [r.getMessage() for r in records if contains in r.getMessage()]


def require_git() -> None:
    if shutil.which("git") is None:
        pytest.fail("git is missing: the fault suites need real git")
