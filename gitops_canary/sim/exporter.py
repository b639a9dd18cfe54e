"""The simulated traffic's metrics, served in Prometheus' text format at ``/metrics``.

:class:`TrafficMetrics` holds cumulative counters and histograms with the names and labels that
real clusters expose, so Flagger's builtin queries and the tutorials' MetricTemplates work
unchanged against a Prometheus that scrapes the simulator:

- Envoy (what Contour's and a Gateway's proxies export), per upstream cluster
  ``<namespace>_<service>_<port>``: ``envoy_cluster_upstream_rq{envoy_response_code}`` and the
  histogram ``envoy_cluster_upstream_rq_time`` in milliseconds;
- the application's own ``http_request_duration_seconds`` histogram (seconds), labelled the way a
  Prometheus pod scrape relabels it: ``kubernetes_namespace``, ``kubernetes_pod_name``, ``status``.

:class:`MetricsExporter` serves them over HTTP on loopback. Values only ever increase.
"""

from __future__ import annotations

import bisect
import http.server
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Envoy's default histogram buckets (milliseconds).
ENVOY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip
#: The Prometheus client libraries' default buckets (seconds), as podinfo exports them.
APP_BUCKETS_SECONDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip

_Labels = tuple[tuple[str, str], ...]


def _number(value: float) -> str:
    """Prometheus text for a number: integers without a fraction, others as Python repr."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: _Labels) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in labels)


@dataclass
class _Histogram:
    bounds: Sequence[float]
    buckets: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.buckets:
            self.buckets = [0] * len(self.bounds)
        # A value equal to a bound belongs to that bucket (le = "less than or equal").
        for index in range(bisect.bisect_left(self.bounds, value), len(self.bounds)):
            self.buckets[index] += 1
        self.total += value
        self.count += 1


class TrafficMetrics:
    """Thread-safe cumulative metrics of the simulated requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._upstream_rq: dict[_Labels, int] = {}
        self._none_healthy: dict[_Labels, int] = {}
        self._upstream_time: dict[_Labels, _Histogram] = {}
        self._app: dict[_Labels, _Histogram] = {}

    def record_upstream(self, cluster: str, code: int, latency_ms: float) -> None:
        """One request that a proxy forwarded to upstream cluster ``cluster``."""
        counter_key = (("envoy_cluster_name", cluster), ("envoy_response_code", str(code)))
        histogram_key = (("envoy_cluster_name", cluster),)
        with self._lock:
            self._upstream_rq[counter_key] = self._upstream_rq.get(counter_key, 0) + 1
            histogram = self._upstream_time.setdefault(histogram_key, _Histogram(ENVOY_BUCKETS_MS))
            histogram.observe(latency_ms)

    def record_no_healthy_upstream(self, cluster: str) -> None:
        """A request the proxy answered 503 itself: the cluster had no ready endpoint."""
        key = (("envoy_cluster_name", cluster),)
        with self._lock:
            self._none_healthy[key] = self._none_healthy.get(key, 0) + 1

    def record_app(self, namespace: str, pod: str, code: int, seconds: float) -> None:
        """One request as the serving pod's own metrics see it."""
        key = (
            ("kubernetes_namespace", namespace),
            ("kubernetes_pod_name", pod),
            ("status", str(code)),
        )
        with self._lock:
            self._app.setdefault(key, _Histogram(APP_BUCKETS_SECONDS)).observe(seconds)

    def render(self) -> str:
        """Everything in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP envoy_cluster_upstream_rq Total upstream requests (simulated).",
                "# TYPE envoy_cluster_upstream_rq counter",
            ]
            lines.extend(
                f"envoy_cluster_upstream_rq{{{_label_text(labels)}}} {value}"
                for labels, value in sorted(self._upstream_rq.items())
            )
            lines += [
                "# HELP envoy_cluster_upstream_cx_none_healthy Requests answered 503 because no "
                "endpoint was ready (simulated).",
                "# TYPE envoy_cluster_upstream_cx_none_healthy counter",
            ]
            lines.extend(
                f"envoy_cluster_upstream_cx_none_healthy{{{_label_text(labels)}}} {value}"
                for labels, value in sorted(self._none_healthy.items())
            )
            lines += self._histogram_lines(
                "envoy_cluster_upstream_rq_time",
                "Upstream request time in milliseconds (simulated).",
                self._upstream_time,
            )
            lines += self._histogram_lines(
                "http_request_duration_seconds",
                "Request duration in seconds as the application measures it (simulated).",
                self._app,
            )
        return "\n".join(lines) + "\n"

    @staticmethod
    def _histogram_lines(name: str, help_text: str, series: dict[_Labels, _Histogram]) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for labels, histogram in sorted(series.items()):
            base = _label_text(labels)
            prefix = f"{base}," if base else ""
            buckets = histogram.buckets or [0] * len(histogram.bounds)
            for bound, count in zip(histogram.bounds, buckets, strict=True):
                lines.append(f'{name}_bucket{{{prefix}le="{_number(bound)}"}} {count}')
            lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {histogram.count}')
            lines.append(f"{name}_sum{{{base}}} {_number(histogram.total)}")
            lines.append(f"{name}_count{{{base}}} {histogram.count}")
        return lines


class MetricsExporter:
    """Serves :class:`TrafficMetrics` at ``http://127.0.0.1:<port>/metrics``."""

    def __init__(self, metrics: TrafficMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL (``http://host:port``); the metrics are at ``url + "/metrics"``."""
        if self._server is None:
            raise RuntimeError("the metrics exporter is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def address(self) -> str:
        """``host:port``, the form a Prometheus scrape config wants."""
        return self.url.removeprefix("http://")

    def start(self) -> None:
        if self._server is not None:
            return
        metrics = self._metrics

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/metrics":
                    body = metrics.render().encode()
                    content_type = "text/plain; version=0.0.4; charset=utf-8"
                    status = 200
                else:
                    body = b"the simulator serves its metrics at /metrics\n"
                    content_type = "text/plain; charset=utf-8"
                    status = 404
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Prometheus scrapes every second; logging each one would drown the output.
                return

        self._server = http.server.ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sim-metrics-exporter", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
