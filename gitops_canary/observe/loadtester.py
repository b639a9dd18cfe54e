"""A stand-in for Flagger's load tester that speaks its HTTP protocol but runs nothing.

It owns ``flagger-behaviour.md`` §6.4 for tests and the demo: ``POST /`` with a webhook payload
(``type: cmd`` answers 202 at once, ``type: bash`` and the other blocking types answer 200 or
500), the manual gates (``/gate/check|open|close|approve|halt``), the rollback gate
(``/rollback/check|open|close``) and ``/healthz``.

Commands from the payload are **never executed**: they are recorded in :attr:`LoadTester.tasks`,
and a blocking command answers with the outcome configured by :meth:`LoadTester.set_outcome`
(success with no output unless told otherwise). A payload is data from the network, and a test
helper must not be a remote shell.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: Types Flagger's load tester runs while the request waits (``bash -c``, helm, kubectl, ...).
BLOCKING_TYPES = frozenset({"bash", "helm", "helmv3", "kubectl", "concord"})
#: Types it queues and answers 202 for at once.
ASYNC_TYPES = frozenset({"cmd", "ngrinder"})
_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class CommandOutcome:
    """How a blocking command "ends": ``ok`` means exit status 0; ``delay`` is its run time."""

    ok: bool = True
    output: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Task:
    """One command the load tester was asked to run (and did not)."""

    name: str
    namespace: str
    phase: str
    type: str
    cmd: str
    metadata: tuple[tuple[str, str], ...]


class LoadTester:
    """The server. Use as a context manager, or :meth:`start` and :meth:`stop`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, namespace_regexp: str | None = None
    ) -> None:
        self._address = (host, port)
        self._namespace = re.compile(namespace_regexp) if namespace_regexp else None
        self._lock = threading.Lock()
        self._tasks: list[Task] = []
        self._outcomes: dict[str, CommandOutcome] = {}
        self._gates: set[str] = set()
        self._rollbacks: set[str] = set()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> str:
        server = ThreadingHTTPServer(self._address, _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="loadtester", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoadTester:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the load tester is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- configuration and inspection

    def set_outcome(
        self, cmd: str, *, ok: bool = True, output: str = "", delay: float = 0.0
    ) -> None:
        with self._lock:
            self._outcomes[cmd] = CommandOutcome(ok=ok, output=output, delay=delay)

    @property
    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks)

    def open_gate(self, name: str, namespace: str) -> None:
        with self._lock:
            self._gates.add(f"{name}.{namespace}")

    def close_gate(self, name: str, namespace: str) -> None:
        with self._lock:
            self._gates.discard(f"{name}.{namespace}")

    def open_rollback(self, name: str, namespace: str) -> None:
        with self._lock:
            self._rollbacks.add(f"{name}.{namespace}")

    # -- protocol

    def handle(self, path: str, body: bytes) -> tuple[int, str]:
        """Answer one request: ``(status, body)``."""
        if path == "/healthz":
            return 200, "OK"
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return 400, "bad request: the payload is not JSON"
        if not isinstance(payload, dict):
            return 400, "bad request: the payload is not a JSON object"
        name = str(payload.get("name", ""))
        namespace = str(payload.get("namespace", ""))
        if self._namespace is not None and not self._namespace.match(namespace):
            return 403, "Forbidden"
        key = f"{name}.{namespace}"
        if path.startswith("/gate/") or path.startswith("/rollback/"):
            return self._gate(path, key)
        if path not in ("", "/"):
            return 404, "not found"
        return self._task(payload, name, namespace)

    def _gate(self, path: str, key: str) -> tuple[int, str]:
        with self._lock:
            gates = self._rollbacks if path.startswith("/rollback/") else self._gates
            action = path.rsplit("/", 1)[-1]
            if action == "check":
                return (200, "Approved") if key in gates else (403, "Forbidden")
            if action == "open":
                gates.add(key)
                return 202, "Gate opened"
            if action == "close":
                gates.discard(key)
                return 202, "Gate closed"
            if path == "/gate/approve":
                return 200, "OK"
            if path == "/gate/halt":
                return 403, "Forbidden"
        return 404, "not found"

    def _task(self, payload: dict[str, Any], name: str, namespace: str) -> tuple[int, str]:
        metadata = payload.get("metadata")
        if not isinstance(metadata, dict) or not metadata:
            return 400, "metadata not found in payload"
        task_type = str(metadata.get("type") or "cmd")
        cmd = str(metadata.get("cmd", ""))
        if task_type not in BLOCKING_TYPES | ASYNC_TYPES:
            return 400, f"unknown task type {task_type}"
        if not cmd:
            return 400, "cmd not found in payload"
        task = Task(
            name=name,
            namespace=namespace,
            phase=str(payload.get("phase", "")),
            type=task_type,
            cmd=cmd,
            metadata=tuple(sorted((str(k), str(v)) for k, v in metadata.items())),
        )
        with self._lock:
            self._tasks.append(task)
            outcome = self._outcomes.get(cmd, CommandOutcome())
        log.info(
            "load tester recorded %s task for %s.%s (not executed)", task_type, name, namespace
        )
        if task_type in ASYNC_TYPES:
            return 202, "Accepted"
        if outcome.delay:
            self._stopping.wait(outcome.delay)
        if outcome.ok:
            return_output = str(metadata.get("returnCmdOutput", "")).lower() == "true"
            return 200, outcome.output if return_output else ""
        return 500, f"command {cmd} failed: {outcome.output}: exit status 1"


def _handler_for(tester: LoadTester) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bytes) -> None:
            status, text = tester.handle(self.path.split("?", 1)[0], body)
            data = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the caller timed out and went away

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY_BYTES)
            self._answer(self.rfile.read(length))

        def do_GET(self) -> None:
            self._answer(b"")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("load tester: " + format, *args)

    return Handler
