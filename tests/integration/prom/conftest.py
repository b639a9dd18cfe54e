"""Fixtures: a real Prometheus per xdist worker scraping a loopback exporter, and odd servers."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest
from prom_helpers import (
    PROMETHEUS,
    START_DEADLINE_SECONDS,
    ExporterHandler,
    RealPrometheus,
    Recorder,
    answering,
    serve,
    start_prometheus,
    stop,
    wait_until,
)


@pytest.fixture(scope="session")
def exporter() -> Iterator[str]:
    """The loopback exporter's ``host:port``; counters start at zero now."""
    ExporterHandler.started = time.monotonic()
    server, url = serve(ExporterHandler)
    yield url.removeprefix("http://")
    stop(server)


@pytest.fixture(scope="session")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPrometheus]:
    """A real Prometheus that has scraped the exporter at least twice."""
    if not shutil.which(PROMETHEUS):
        pytest.fail(f"{PROMETHEUS} is missing: install the Debian package prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    server = start_prometheus(workdir, exporter)
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS

        def ready() -> bool:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {server.process.returncode}: "
                    f"{server.log.read_text(errors='replace')[-2000:]}"
                )
            with urllib.request.urlopen(f"{server.address}/-/ready", timeout=1) as response:
                return bool(response.status == 200)

        wait_until(ready, deadline, "prometheus did not become ready", server.log)
        # rate() needs two samples in its window.
        wait_until(
            lambda: bool(server.instant('count_over_time(up{job="exporter"}[1m]) >= 2')),
            deadline,
            "prometheus did not scrape the exporter twice",
            server.log,
        )
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[..., tuple[str, Recorder]]]:
    """Start servers answering a fixed status and body (optionally after a delay)."""
    servers: list[ThreadingHTTPServer] = []

    def start(
        status: int = 200, body: bytes | str = b"", delay: float = 0.0
    ) -> tuple[str, Recorder]:
        recorder = Recorder()
        raw = body.encode() if isinstance(body, str) else body
        server, url = serve(answering(status, raw, delay, recorder))
        servers.append(server)
        return url, recorder

    yield start
    for server in servers:
        stop(server)
