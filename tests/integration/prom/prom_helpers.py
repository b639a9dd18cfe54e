"""A real Prometheus (``/usr/bin/prometheus``) scraping a loopback exporter, plus odd servers.

The exporter serves Envoy metrics (what Contour's builtin queries and the seed MetricTemplates
read) and application metrics (what the Gateway API builtin queries read) as counters that grow
at fixed rates from the moment the exporter starts, so every ratio and quantile the queries
compute is known exactly, whatever the scrape timing: see :data:`EXPECTED`.

Prometheus starts once per xdist worker (session scope) with a 1 s scrape interval and a
``/prom`` route prefix, so every test also exercises an address with a path prefix.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROMETHEUS = "/usr/bin/prometheus"
START_DEADLINE_SECONDS = 20.0

CANARY_CLUSTER = "test_podinfo-canary_9898"
PRIMARY_CLUSTER = "test_podinfo-primary_9898"
IDLE_CLUSTER = "idle_podinfo-canary_9898"
CANARY_POD = "podinfo-7d9b8c7f4-x2x9z"
PRIMARY_POD = "podinfo-primary-5d8f9c7b6-abcde"

# Requests per second. Envoy: 9 ok + 1 error on the canary cluster; the primary cluster only
# errors, so a query that wrongly included it would be far off.
ENVOY_RATES = {
    (CANARY_CLUSTER, "200"): 9.0,
    (CANARY_CLUSTER, "500"): 1.0,
    (PRIMARY_CLUSTER, "500"): 20.0,
    (IDLE_CLUSTER, "200"): 0.0,
}
# Cumulative bucket rates (upper bound in ms) of the canary's upstream request time.
ENVOY_BUCKETS = {"50": 0.0, "100": 5.0, "200": 10.0, "+Inf": 10.0}
PRIMARY_ENVOY_BUCKETS = {"50": 0.0, "100": 0.0, "200": 0.0, "+Inf": 20.0}
# The app's own metrics: 19 ok + 1 error per second on the canary pod.
APP_RATES = {(CANARY_POD, "200"): 19.0, (CANARY_POD, "500"): 1.0, (PRIMARY_POD, "500"): 50.0}
APP_BUCKETS = {"0.05": 10.0, "0.1": 16.0, "0.25": 20.0, "+Inf": 20.0}  # seconds


def _quantile(buckets: dict[str, float], q: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank."""
    bounds = [(float(le), count) for le, count in buckets.items()]
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("rank beyond the last bucket")


def _success(rates: dict[tuple[str, str], float], series: str) -> float:
    ok = sum(r for (s, code), r in rates.items() if s == series and not code.startswith("5"))
    return 100.0 * ok / sum(r for (s, _), r in rates.items() if s == series)


EXPECTED = {
    "contour-success-rate": _success(ENVOY_RATES, CANARY_CLUSTER),  # 90 %
    "contour-duration-ms": _quantile(ENVOY_BUCKETS, 0.99),  # 198 ms
    "gatewayapi-success-rate": _success(APP_RATES, CANARY_POD),  # 95 %
    "gatewayapi-duration-s": _quantile(APP_BUCKETS, 0.99),  # 0.2425 s
}


def _exposition(elapsed: float) -> str:
    lines = [
        "# TYPE envoy_cluster_upstream_rq counter",
        *(
            f'envoy_cluster_upstream_rq{{envoy_cluster_name="{cluster}",'
            f'envoy_response_code="{code}"}} {rate * elapsed}'
            for (cluster, code), rate in ENVOY_RATES.items()
        ),
        "# TYPE envoy_cluster_upstream_rq_time histogram",
    ]
    for cluster, buckets in (
        (CANARY_CLUSTER, ENVOY_BUCKETS),
        (PRIMARY_CLUSTER, PRIMARY_ENVOY_BUCKETS),
    ):
        lines += [
            f'envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name="{cluster}",le="{le}"}} '
            f"{rate * elapsed}"
            for le, rate in buckets.items()
        ]
        lines.append(
            f'envoy_cluster_upstream_rq_time_count{{envoy_cluster_name="{cluster}"}} '
            f"{buckets['+Inf'] * elapsed}"
        )
    lines.append("# TYPE http_request_duration_seconds histogram")
    for (pod, status), rate in APP_RATES.items():
        labels = f'kubernetes_namespace="test",kubernetes_pod_name="{pod}",status="{status}"'
        lines.append(f"http_request_duration_seconds_count{{{labels}}} {rate * elapsed}")
    labels = f'kubernetes_namespace="test",kubernetes_pod_name="{CANARY_POD}",status="200"'
    lines += [
        f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {rate * elapsed}'
        for le, rate in APP_BUCKETS.items()
    ]
    return "\n".join(lines) + "\n"


class ExporterHandler(BaseHTTPRequestHandler):
    started = 0.0

    def do_GET(self) -> None:
        body = _exposition(time.monotonic() - self.started).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Start ``handler`` on a free loopback port in a daemon thread; returns server and base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


@dataclass
class RealPrometheus:
    address: str  # includes the /prom route prefix
    process: subprocess.Popen[bytes]
    log: Path

    def instant(self, query: str) -> Any:
        encoded = urllib.parse.quote(query)
        return _get_json(f"{self.address}/api/v1/query?query={encoded}")["data"]["result"]


def start_prometheus(workdir: Path, target: str) -> RealPrometheus:
    port = _free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    log = workdir / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url=http://127.0.0.1:{port}/prom",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    return RealPrometheus(f"http://127.0.0.1:{port}/prom", process, log)


def wait_until(check: Callable[[], bool], deadline: float, what: str, log: Path) -> None:
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise AssertionError(f"{what} within {START_DEADLINE_SECONDS}s; prometheus log:\n{tail}")


# --------------------------------------------------------------------------- odd servers


@dataclass
class Recorder:
    """What a fake Prometheus saw: request paths, query strings and headers."""

    requests: list[dict[str, Any]] = field(default_factory=list)


def answering(
    status: int, body: bytes, delay: float, recorder: Recorder
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append({"path": self.path, "headers": dict(self.headers.items())})
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


VECTOR_OF_ONE = json.dumps(
    {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
    }
)
