"""Helpers for the tests of ``gitops-canary run``, ``run --once`` and ``plan`` as real processes.

They start the playground (bare config repository, simulated cluster, real Prometheus, load
tester) with only the Gateway API podinfo app, write its configuration to a file, start
``gitops-canary`` as subprocesses (each in a session of its own, so a crash test can kill the
whole process group like a container runtime would), play the person who includes the generated
directory and bumps the image, and read the rollout back from the remote's ``git log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from gitops_canary.playground import DEFAULT_PATHS, EXAMPLES, Playground, git
from gitops_canary.repo.history import Entry, history

EXECUTABLE = Path(sys.executable).parent / "gitops-canary"
CANARY = "test/podinfo"
APP_DIR = "apps/podinfo"
CANARY_DIR = f"{APP_DIR}/gitops-canary/podinfo"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
BOT_AUTHOR = "gitops-canary <gitops-canary@example.org>"

#: DESIGN §2, one row per commit: the (phase, canary weight) of an undisturbed rollout.
UNDISTURBED: tuple[tuple[str, int], ...] = (
    ("Initializing", 0),
    ("Initialized", 0),
    ("Progressing", 0),
    ("Progressing", 10),
    ("Progressing", 20),
    ("Progressing", 30),
    ("Progressing", 40),
    ("Progressing", 50),
    ("Promoting", 50),
    ("Finalising", 0),
    ("Succeeded", 0),
)

#: Only the Gateway API app: the Contour copy would double the simulator's work for nothing here.
PATHS: Mapping[str, str] = {k: v for k, v in DEFAULT_PATHS.items() if k != "podinfo-contour"}


class Deadline:
    """A time budget for a polling loop."""

    def __init__(self, seconds: float) -> None:
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
    every: float = 0.1,
) -> None:
    """Poll ``condition`` until it holds; fail with ``context()`` once ``seconds`` are spent."""
    deadline = Deadline(seconds)
    while not condition():
        if deadline.expired():
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}\n{context()}")
        time.sleep(every)


# --------------------------------------------------------------------------- the playground


def podinfo_source(root: Path, edit_canary: Callable[[str], str] | None = None) -> Path:
    """A copy of ``examples/repo`` without the Contour app; ``edit_canary`` may change the
    podinfo Canary's text (e.g. add a webhook) before the repository is seeded."""
    source = root / "source"
    shutil.copytree(EXAMPLES, source, ignore=shutil.ignore_patterns(".git", "gitops-canary"))
    shutil.rmtree(source / "apps" / "podinfo-contour")
    if edit_canary is not None:
        canary = source / APP_DIR / "canary.yaml"
        canary.write_text(edit_canary(canary.read_text(encoding="utf-8")), encoding="utf-8")
    return source


@contextlib.contextmanager
def playground(root: Path, edit_canary: Callable[[str], str] | None = None) -> Iterator[Playground]:
    source = podinfo_source(root, edit_canary)
    with Playground(root / "pg", source=source, paths=PATHS, interval_scale=0.05) as pg:
        yield pg


def write_config(pg: Playground, path: Path, **overrides: Any) -> Path:
    """The playground's configuration as a file (JSON is YAML)."""
    path.write_text(json.dumps(pg.config_data(**overrides), indent=2), encoding="utf-8")
    return path


def reconciler_workdir(pg: Playground) -> Path:
    return Path(pg.config_data()["repository"]["workdir"])


# --------------------------------------------------------------------------- reading the remote


def tip(remote: Path) -> str:
    """The remote branch's tip, read from the ref file (cheap enough to poll)."""
    try:
        return (remote / "refs" / "heads" / "main").read_text(encoding="utf-8").strip()
    except FileNotFoundError:  # packed
        return git(remote, "rev-parse", "refs/heads/main")


_HISTORIES: dict[tuple[Path, str], list[Entry]] = {}


def step_entries(remote: Path) -> list[Entry]:
    """The canary's step commits on the remote, oldest first (read again only when the tip
    moved: tests poll this)."""
    key = (remote, tip(remote))
    if key not in _HISTORIES:
        _HISTORIES[key] = list(reversed(history(remote, CANARY, rev=key[1])))
    return _HISTORIES[key]


def steps(remote: Path) -> list[tuple[str | None, int | None]]:
    return [(e.phase, e.weight) for e in step_entries(remote)]


def last_step(remote: Path) -> tuple[str | None, int | None] | None:
    found = step_entries(remote)
    return (found[-1].phase, found[-1].weight) if found else None


def show_yaml(remote: Path, rev: str, path: str) -> Any:
    return yaml.safe_load(git(remote, "show", f"{rev}:{path}"))


def describe_remote(remote: Path) -> str:
    return "remote history:\n" + git(remote, "log", "--format=%h %an: %s", "refs/heads/main")


def assert_whole_steps(remote: Path) -> None:
    """Every step commit on the remote is whole: its status file says what its trailers say,
    and its HTTPRoute routes exactly the status' canary weight."""
    for entry in step_entries(remote):
        status = show_yaml(remote, entry.sha, f"{CANARY_DIR}/status.yaml")
        status = status.get("status", status)
        where = f"commit {entry.sha[:8]} {entry.subject!r}"
        assert status.get("phase") == entry.phase, f"{where}: status {status}"
        assert int(status.get("canaryWeight", 0)) == entry.weight, f"{where}: status {status}"
        route = show_yaml(remote, entry.sha, f"{CANARY_DIR}/httproute-podinfo.yaml")
        weights = {
            ref["name"]: ref["weight"]
            for rule in route["spec"]["rules"]
            for ref in rule["backendRefs"]
        }
        assert weights == {"podinfo-primary": 100 - entry.weight, "podinfo-canary": entry.weight}, (
            f"{where}: route weights {weights}"
        )


# --------------------------------------------------------------------------- the person


@dataclass
class Person:
    """Dana: includes the generated directory once it exists, bumps the image once the canary
    is initialized (DESIGN §2, rows 1-3)."""

    pg: Playground
    included: bool = False
    bumped: bool = False

    def act(self) -> None:
        if not self.included and last_step(self.pg.remote) is not None:
            self.pg.include_generated(APP_DIR)
            self.included = True
        if self.included and not self.bumped and last_step(self.pg.remote) == ("Initialized", 0):
            self.pg.set_image(APP_DIR, NEW_IMAGE)
            self.bumped = True


def succeeded(remote: Path) -> bool:
    return last_step(remote) == ("Succeeded", 0)


# --------------------------------------------------------------------------- processes


@dataclass
class Started:
    """One gitops-canary process, leader of its own process group.

    The process is reaped only once its group is empty: until then its pid, which is the
    group's id, cannot be reused, so signalling the group never reaches anyone else's process.
    """

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")

    def describe(self) -> str:
        tail = self.errors()[-3000:]
        return f"gitops-canary (pid {self.pid}, exit {self.process.returncode}) stderr:\n{tail}"

    def running(self) -> bool:
        """Whether it has not exited yet (asked without reaping it)."""
        if self.process.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def wait(self, seconds: float) -> int:
        """Its exit code, once it exits by itself within ``seconds``."""
        deadline = Deadline(seconds)
        while self.running():
            if deadline.expired():
                raise AssertionError(f"still running after {seconds:.0f}s\n{self.describe()}")
            time.sleep(0.02)
        return self.finish()

    def crash(self, *, whole_group: bool = True) -> None:
        """SIGKILL, as a container runtime would: with its children (git) by default, or only
        gitops-canary itself, letting its children end by themselves."""
        if whole_group:
            self._kill_group()
        elif self.running():
            os.kill(self.pid, signal.SIGKILL)
        while self.running():
            time.sleep(0.02)
        self.finish()

    def finish(self) -> int:
        """Once the leader has exited: wait (bounded) for what it left running, kill the
        rest, then reap the leader."""
        if self.process.returncode is None:
            deadline = Deadline(10)
            while _group_alive(self.pid) and not deadline.expired():
                time.sleep(0.05)
            self._kill_group()
        return self.process.wait(timeout=10)

    def _kill_group(self) -> None:
        if self.process.returncode is None:  # not reaped: the group id is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is in process group ``pgid``."""
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


@dataclass
class Processes:
    """Every gitops-canary process a test starts; ``close`` kills what is left, with its
    children (git), so nothing outlives the test."""

    logs: Path
    started: list[Started] = field(default_factory=list)

    def start(self, *args: str, env: Mapping[str, str] | None = None, name: str = "run") -> Started:
        self.logs.mkdir(parents=True, exist_ok=True)
        index = len(self.started)
        stdout = self.logs / f"{index:02d}-{name}.out"
        stderr = self.logs / f"{index:02d}-{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [str(EXECUTABLE), *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**clean_environment(), **(env or {})},
                start_new_session=True,
            )
        started = Started(process, stdout, stderr)
        self.started.append(started)
        return started

    def call(self, *args: str, timeout: float = 60, name: str = "call") -> tuple[int, str, str]:
        """Run to completion; (exit code, stdout, stderr)."""
        started = self.start(*args, name=name)
        code = started.wait(timeout)
        return code, started.output(), started.errors()

    def close(self) -> None:
        for started in self.started:
            if started.process.returncode is None:
                started.crash()


@contextlib.contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    owned = Processes(logs)
    try:
        yield owned
    finally:
        owned.close()


def clean_environment() -> dict[str, str]:
    """This environment without ``GITOPS_CANARY_*`` overrides, which would change the config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GITOPS_CANARY_")}


# --------------------------------------------------------------------------- a crash at the push


@dataclass
class PushTrap:
    """A ``pre-receive`` hook in the bare remote that SIGKILLs gitops-canary in the middle of
    its push, when armed for that process.

    ``land=False`` kills the whole process group (gitops-canary, its ``git push`` and the
    receiving side), so the push never lands: the step is committed locally only ("between
    commit and push"). ``land=True`` kills only gitops-canary and lets the push land: the step
    is on the remote but the process never learned it ("mid-push").
    """

    remote: Path

    def __post_init__(self) -> None:
        self.armed = self.remote / "crash-trap.json"
        self.fired = self.remote / "crash-trap.fired"
        hook = self.remote / "hooks" / "pre-receive"
        hook.write_text(
            _TRAP_HOOK.format(python=sys.executable, armed=self.armed, fired=self.fired)
        )
        hook.chmod(0o755)

    def arm(self, pid: int, *, land: bool) -> None:
        self.fired.unlink(missing_ok=True)
        scratch = self.armed.with_suffix(".tmp")
        scratch.write_text(json.dumps({"pid": pid, "land": land}))
        scratch.replace(self.armed)

    def rearm(self, pid: int) -> None:
        """Point an armed trap at a restarted process."""
        with contextlib.suppress(FileNotFoundError):
            self.arm(pid, land=json.loads(self.armed.read_text())["land"])

    def is_armed(self) -> bool:
        return self.armed.exists()

    def has_fired(self) -> bool:
        return self.fired.exists()


_TRAP_HOOK = """#!{python}
import json, os, signal, sys

sys.stdin.read()
try:
    with open("{armed}") as armed:
        trap = json.load(armed)
except (OSError, ValueError):
    sys.exit(0)
ancestor = os.getppid()
while ancestor > 1 and ancestor != trap["pid"]:
    try:
        with open(f"/proc/{{ancestor}}/stat") as stat:
            ancestor = int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        break
if ancestor != trap["pid"]:
    sys.exit(0)  # someone else's push
os.replace("{armed}", "{fired}")
if trap["land"]:
    os.kill(trap["pid"], signal.SIGKILL)
    sys.exit(0)
os.killpg(os.getpgid(trap["pid"]), signal.SIGKILL)
sys.exit(1)
"""


# --------------------------------------------------------------------------- HTTP


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- a webhook that waits


class HoldingWebhook:
    """A webhook receiver on loopback that holds the first call to each path until released,
    so a test can signal gitops-canary while a tick is certainly in flight."""

    def __init__(self) -> None:
        self.called: dict[str, threading.Event] = {}
        self.released: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                called, released = owner.events(self.path)
                if not called.is_set():
                    called.set()
                    released.wait(timeout=30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self, path: str) -> tuple[threading.Event, threading.Event]:
        with self._lock:
            return (
                self.called.setdefault(path, threading.Event()),
                self.released.setdefault(path, threading.Event()),
            )

    def was_called(self, path: str) -> bool:
        return self.events(path)[0].is_set()

    def release(self, path: str) -> None:
        self.events(path)[1].set()

    def __enter__(self) -> HoldingWebhook:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for event in list(self.released.values()):
            event.set()
        self.server.shutdown()
        self.server.server_close()
