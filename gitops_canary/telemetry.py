"""What gitops-canary tells the outside: logs, Flagger's Prometheus metrics, health endpoints.

* Logs: Flagger's words, as JSON (one object per line, the container default) or text, each line
  carrying the canary, its namespace, the phase and the commit when there is one.
* ``/metrics``: Flagger's metric names and labels (``flagger_canary_status``,
  ``flagger_canary_weight``, ...) so existing Grafana dashboards and alerts work unchanged, plus our
  own (ticks, commits, push retries, pull requests waiting, errors by kind).
* ``/healthz`` (the process is alive) and ``/readyz`` (the last tick reached the repository).

Every log record passes through the credential scrubber before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gitops_canary.core.specs import Canary
from gitops_canary.core.status import Phase
from gitops_canary.repo.scrub import install_log_scrubbing

LOGGER_NAME = "gitops_canary"

#: Flagger's ``flagger_canary_status`` values.
_STATUS_VALUE = {Phase.PROGRESSING: 0, Phase.FAILED: 2}


class _JsonFormatter(logging.Formatter):
    _FIELDS = ("canary", "namespace", "phase", "commit", "weight")

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for field in self._FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                payload[field] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            payload["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(payload, sort_keys=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        context = []
        namespace, name = getattr(record, "namespace", None), getattr(record, "canary", None)
        if namespace and name:
            context.append(f"{namespace}/{name}")
        phase = getattr(record, "phase", None)
        if phase:
            context.append(str(phase))
        commit = getattr(record, "commit", None)
        if commit:
            context.append(str(commit)[:8])
        prefix = f"[{' '.join(context)}] " if context else ""
        return f"{stamp} {record.levelname.lower():7} {prefix}{record.getMessage()}"


def configure_logging(fmt: str = "text", level: str = "info", stream: Any = None) -> logging.Logger:
    """Send our logs to ``stream`` (stderr) in ``fmt``, scrubbed of credentials."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    install_log_scrubbing(handler)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def canary_fields(
    canary: Canary, phase: Phase | None = None, commit: str | None = None
) -> dict[str, Any]:
    """The ``extra=`` of a log call about one canary."""
    fields: dict[str, Any] = {"canary": canary.name, "namespace": canary.namespace}
    if phase is not None:
        fields["phase"] = str(phase)
    if commit:
        fields["commit"] = commit
    return fields


class Recorder:
    """Flagger's metrics and ours, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "flagger_info", "Flagger-compatible info", ["version", "mesh_provider"], registry=r
        )
        self.total = Gauge("flagger_canary_total", "Number of canaries", ["namespace"], registry=r)
        self.status = Gauge(
            "flagger_canary_status",
            "Last canary status: 0 running, 1 successful, 2 failed",
            ["name", "namespace"],
            registry=r,
        )
        self.weight = Gauge(
            "flagger_canary_weight",
            "Canary and primary traffic weight",
            ["workload", "namespace"],
            registry=r,
        )
        self.duration = Histogram(
            "flagger_canary_duration_seconds",
            "Seconds spent on one canary's analysis in a tick",
            ["name", "namespace"],
            registry=r,
        )
        self.metric_analysis = Gauge(
            "flagger_canary_metric_analysis",
            "Last value of each metric check (durations in seconds)",
            ["name", "namespace", "metric"],
            registry=r,
        )
        labels = ["name", "namespace", "deployment_strategy", "analysis_status"]
        self.successes = Counter(
            "flagger_canary_successes", "Successful canary runs", labels, registry=r
        )
        self.failures = Counter("flagger_canary_failures", "Failed canary runs", labels, registry=r)
        self.ticks = Counter("gitops_canary_ticks", "Reconciler ticks run", registry=r)
        self.commits = Counter(
            "gitops_canary_commits", "Step commits pushed", ["namespace", "name"], registry=r
        )
        self.push_retries = Counter(
            "gitops_canary_push_retries",
            "Pushes retried after someone else pushed first",
            registry=r,
        )
        self.prs_waiting = Gauge(
            "gitops_canary_pull_requests_waiting",
            "Step pull requests waiting for a merge",
            registry=r,
        )
        self.errors = Counter("gitops_canary_errors", "Errors by kind", ["kind"], registry=r)
        self.last_tick = Gauge(
            "gitops_canary_last_tick_timestamp_seconds", "When the last tick finished", registry=r
        )

    def observe_canary(self, canary: Canary, phase: Phase | None, canary_weight: int) -> None:
        if phase is not None:
            self.status.labels(canary.target_name, canary.namespace).set(
                _STATUS_VALUE.get(phase, 1)
            )
        self.weight.labels(f"{canary.target_name}-primary", canary.namespace).set(
            100 - canary_weight
        )
        self.weight.labels(canary.target_name, canary.namespace).set(canary_weight)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthState:
    """What ``/readyz`` reports: ready once a tick reached the repository."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._reason = "no tick has run yet"

    def set(self, ready: bool, reason: str = "") -> None:
        with self._lock:
            self._ready, self._reason = ready, reason

    def get(self) -> tuple[bool, str]:
        with self._lock:
            return self._ready, self._reason


class _Handler(BaseHTTPRequestHandler):
    recorder: ClassVar[Recorder]
    health: ClassVar[HealthState]

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, self.recorder.exposition(), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif self.path == "/readyz":
            ready, reason = self.health.get()
            self._send(
                200 if ready else 503, (("ok" if ready else reason) + "\n").encode(), "text/plain"
            )
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(recorder: Recorder, health: HealthState, address: str, port: int) -> ThreadingHTTPServer:
    """Start ``/metrics``, ``/healthz`` and ``/readyz`` in a daemon thread."""
    handler = type("Handler", (_Handler,), {"recorder": recorder, "health": health})
    server = ThreadingHTTPServer((address, port), handler)
    thread = threading.Thread(target=server.serve_forever, name="telemetry", daemon=True)
    thread.start()
    return server
