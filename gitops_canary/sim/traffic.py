"""Simulated users: requests that follow the live routes to ready pods, recorded as metrics.

Every step, each entry point receives ``requestsPerSecond × seconds`` requests. Entry points are
the HTTPRoutes, the root HTTPProxies (those with a ``virtualhost``; their ``includes`` are
followed), the non-root HTTPProxies that no root includes (Contour would not serve these; the
simulator sends them traffic so a lone generated proxy can be rehearsed), and the Services that no
route sends to (straight to their pods, without a proxy).

A request picks a rule by its matches, as Gateway API or Contour do: a share of requests carry the
scenario's A/B headers, and returning clients send back the cookies that ``Set-Cookie`` filters
gave them (session affinity). Then it picks a backend by weight; mirror filters send a copy to
their backend. The backend Service's selector finds the ready pods, the pod's image finds its
behaviour in the scenario (error rate, latency), and the result is recorded in
:class:`~gitops_canary.sim.exporter.TrafficMetrics`.

Randomness comes from one ``random.Random(seed)``: the same routes, pods and steps give the same
requests.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops_canary.sim.exporter import TrafficMetrics
from gitops_canary.sim.scenario import Scenario
from gitops_canary.sim.store import Store
from gitops_canary.sim.workloads import Pod

log = logging.getLogger(__name__)

PodSource = Callable[[str | None], list[Pod]]

_MAX_CLIENTS_PER_ENTRY = 1000
_MAX_INCLUDE_DEPTH = 8


@dataclass
class Client:
    """A simulated browser: its cookie jar survives between its requests."""

    cookies: dict[str, str] = field(default_factory=dict)

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def receive_set_cookie(self, value: str) -> None:
        """Apply one ``Set-Cookie`` header: store it, or delete it when ``Max-Age`` <= 0."""
        first, *attributes = [part.strip() for part in value.split(";")]
        name, _, cookie_value = first.partition("=")
        max_age = None
        for attribute in attributes:
            key, _, raw = attribute.partition("=")
            if key.lower() == "max-age":
                try:
                    max_age = int(raw)
                except ValueError:
                    max_age = None
        if max_age is not None and max_age <= 0:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = cookie_value


@dataclass
class Request:
    """What routing looks at: path, method and headers (names lower-cased)."""

    headers: dict[str, str]
    path: str = "/"
    method: str = "GET"


@dataclass(frozen=True)
class Backend:
    """A Service port that a route sends to, and what the route does with the response."""

    namespace: str
    service: str
    port: int | None
    set_cookies: tuple[str, ...] = ()

    @property
    def cluster(self) -> str:
        """The Envoy upstream cluster name, ``<namespace>_<service>_<port>``."""
        return f"{self.namespace}_{self.service}_{self.port if self.port is not None else 80}"


@dataclass(frozen=True)
class Route:
    """One routing choice after matching: weighted backends, mirrors and response cookies."""

    backends: tuple[tuple[Backend, int], ...]
    mirrors: tuple[Backend, ...] = ()
    set_cookies: tuple[str, ...] = ()


@dataclass
class _Entry:
    key: str
    clients: list[Client] = field(default_factory=list)
    carry: float = 0.0


# -- Gateway API matching --------------------------------------------------------------------


def _gateway_match_rank(match: Mapping[str, Any], request: Request) -> tuple[int, ...] | None:
    """``None`` if ``match`` does not match; otherwise a precedence key (larger wins)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    path_type = path.get("type", "PathPrefix")
    value = str(path.get("value", "/"))
    if path_type == "Exact":
        if request.path != value:
            return None
    elif path_type == "RegularExpression":
        if re.fullmatch(value, request.path) is None:
            return None
    else:
        prefix = value.rstrip("/")
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            return None
    method = match.get("method")
    if method and method != request.method:
        return None
    headers = match.get("headers") or []
    for header in headers:
        actual = request.headers.get(str(header.get("name", "")).lower())
        if actual is None:
            return None
        expected = str(header.get("value", ""))
        if header.get("type", "Exact") == "RegularExpression":
            if re.fullmatch(expected, actual) is None:
                return None
        elif actual != expected:
            return None
    if match.get("queryParams"):
        return None  # simulated requests carry no query string
    # Gateway API precedence: exact path, longest path, method, most headers, most params.
    return (int(path_type == "Exact"), len(value), int(bool(method)), len(headers), 0)


def _filters_set_cookies(filters: Sequence[Mapping[str, Any]] | None) -> tuple[str, ...]:
    cookies: list[str] = []
    for item in filters or []:
        if item.get("type") != "ResponseHeaderModifier":
            continue
        modifier = item.get("responseHeaderModifier") or {}
        for header in [*(modifier.get("add") or []), *(modifier.get("set") or [])]:
            if str(header.get("name", "")).lower() == "set-cookie":
                cookies.append(str(header.get("value", "")))
    return tuple(cookies)


def _gateway_backend(ref: Mapping[str, Any], namespace: str) -> Backend | None:
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
        return None
    port = ref.get("port")
    return Backend(
        str(ref.get("namespace") or namespace),
        str(ref.get("name", "")),
        port if isinstance(port, int) else None,
        _filters_set_cookies(ref.get("filters")),
    )


def _gateway_mirrors(filters: Sequence[Mapping[str, Any]] | None, namespace: str) -> list[Backend]:
    mirrors = []
    for item in filters or []:
        if item.get("type") == "RequestMirror":
            ref = (item.get("requestMirror") or {}).get("backendRef") or {}
            backend = _gateway_backend(ref, namespace)
            if backend is not None:
                mirrors.append(backend)
    return mirrors


def route_httproute(route: Mapping[str, Any], request: Request) -> Route | None:
    """The rule an HTTPRoute applies to ``request``; ``None`` when no rule matches (404)."""
    namespace = str(route["metadata"].get("namespace", "default"))
    best: tuple[tuple[int, ...], Mapping[str, Any]] | None = None
    for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for match in rule.get("matches") or [{}]:
            rank = _gateway_match_rank(match, request)
            if rank is None:
                continue
            # Ties go to the rule listed first.
            key = (*rank, -index)
            if best is None or key > best[0]:
                best = (key, rule)
    if best is None:
        return None
    rule = best[1]
    backends = []
    for ref in rule.get("backendRefs") or []:
        backend = _gateway_backend(ref, namespace)
        weight = ref.get("weight", 1)
        if backend is not None:
            backends.append((backend, weight if isinstance(weight, int) else 1))
    mirrors = _gateway_mirrors(rule.get("filters"), namespace)
    for ref in rule.get("backendRefs") or []:
        mirrors.extend(_gateway_mirrors(ref.get("filters"), namespace))
    return Route(tuple(backends), tuple(mirrors), _filters_set_cookies(rule.get("filters")))


def gateway_backends(route: Mapping[str, Any]) -> Iterator[Backend]:
    """Every Service an HTTPRoute sends to or mirrors to."""
    namespace = str(route["metadata"].get("namespace", "default"))
    for rule in (route.get("spec") or {}).get("rules") or []:
        yield from _gateway_mirrors(rule.get("filters"), namespace)
        for ref in rule.get("backendRefs") or []:
            backend = _gateway_backend(ref, namespace)
            if backend is not None:
                yield backend
            yield from _gateway_mirrors(ref.get("filters"), namespace)


# -- Contour matching ------------------------------------------------------------------------


def _contour_header_matches(condition: Mapping[str, Any], request: Request) -> bool:
    actual = request.headers.get(str(condition.get("name", "")).lower())
    checks: dict[str, Callable[[Any], bool]] = {
        "present": lambda _: actual is not None,
        "notpresent": lambda _: actual is None,
        "exact": lambda v: actual == v,
        "notexact": lambda v: actual != v,
        "contains": lambda v: actual is not None and str(v) in actual,
        "notcontains": lambda v: actual is None or str(v) not in actual,
        "regex": lambda v: actual is not None and re.fullmatch(str(v), actual) is not None,
    }
    used = [(key, value) for key, value in condition.items() if key in checks]
    if not used:
        # A condition with only a name (Flagger leaves regex matches like this) needs presence.
        return actual is not None
    return all(checks[key](value) for key, value in used)


@dataclass(frozen=True)
class _ContourRoute:
    namespace: str
    prefix: str
    headers: tuple[Mapping[str, Any], ...]
    route: Mapping[str, Any]


def _contour_routes(
    proxy: Mapping[str, Any],
    proxies: Mapping[tuple[str, str], Mapping[str, Any]],
    prefix: str = "",
    headers: tuple[Mapping[str, Any], ...] = (),
    depth: int = 0,
) -> Iterator[_ContourRoute]:
    """The proxy's routes with the conditions of the includes that led to them."""
    namespace = str(proxy["metadata"].get("namespace", "default"))
    spec = proxy.get("spec") or {}
    for route in spec.get("routes") or []:
        route_prefix, route_headers = prefix, list(headers)
        for condition in route.get("conditions") or []:
            route_prefix = _join_prefix(route_prefix, condition.get("prefix"))
            if "header" in condition:
                route_headers.append(condition["header"] or {})
        yield _ContourRoute(namespace, route_prefix or "/", tuple(route_headers), route)
    if depth >= _MAX_INCLUDE_DEPTH:
        return
    for include in spec.get("includes") or []:
        child = proxies.get((str(include.get("namespace") or namespace), str(include.get("name"))))
        if child is None:
            continue
        include_prefix, include_headers = prefix, list(headers)
        for condition in include.get("conditions") or []:
            include_prefix = _join_prefix(include_prefix, condition.get("prefix"))
            if "header" in condition:
                include_headers.append(condition["header"] or {})
        yield from _contour_routes(
            child, proxies, include_prefix, tuple(include_headers), depth + 1
        )


def _join_prefix(base: str, extra: Any) -> str:
    if not extra:
        return base
    return (base.rstrip("/") + "/" + str(extra).lstrip("/")) if base else str(extra)


def route_httpproxy(
    proxy: Mapping[str, Any],
    proxies: Mapping[tuple[str, str], Mapping[str, Any]],
    request: Request,
) -> Route | None:
    """The route a (root or lone) HTTPProxy applies to ``request``; ``None`` when none matches."""
    best: tuple[tuple[int, int, int], _ContourRoute] | None = None
    for index, candidate in enumerate(_contour_routes(proxy, proxies)):
        prefix = candidate.prefix.rstrip("/")
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            continue
        if not all(_contour_header_matches(h, request) for h in candidate.headers):
            continue
        # Longest prefix first, then the route with more header conditions, then list order.
        key = (len(prefix), len(candidate.headers), -index)
        if best is None or key > best[0]:
            best = (key, candidate)
    if best is None:
        return None
    chosen = best[1]
    services = chosen.route.get("services") or []
    any_weight = any("weight" in s for s in services)
    backends = []
    mirrors = []
    for service in services:
        port = service.get("port")
        backend = Backend(
            chosen.namespace, str(service.get("name")), port if isinstance(port, int) else None
        )
        if service.get("mirror"):
            mirrors.append(backend)
            continue
        # Contour splits evenly when no weight is given; once any is given, missing ones are 0.
        weight = service.get("weight", 0) if any_weight else 1
        backends.append((backend, weight if isinstance(weight, int) else 0))
    return Route(tuple(backends), tuple(mirrors))


def contour_backends(proxy: Mapping[str, Any]) -> Iterator[Backend]:
    namespace = str(proxy["metadata"].get("namespace", "default"))
    for route in (proxy.get("spec") or {}).get("routes") or []:
        for service in route.get("services") or []:
            port = service.get("port")
            yield Backend(
                namespace, str(service.get("name")), port if isinstance(port, int) else None
            )


# -- the simulation --------------------------------------------------------------------------


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


class TrafficSimulator:
    """Sends simulated requests through the live routes; :meth:`step` or a background thread."""

    def __init__(
        self,
        store: Store,
        pods: PodSource,
        scenario: Scenario,
        metrics: TrafficMetrics,
        *,
        step_seconds: float = 0.25,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._pods = pods
        self._scenario = scenario
        self._metrics = metrics
        self._step_seconds = step_seconds
        self._rng = random.Random(scenario.seed if seed is None else seed)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        last = self._clock()
        while not self._stop.wait(self._step_seconds):
            now = self._clock()
            try:
                # After a long pause (a suspended laptop) do not fire a burst of requests.
                self.step(min(now - last, 5.0))
            except Exception:
                log.exception("simulated traffic: step failed; retrying")
            last = now

    # -- one step --------------------------------------------------------------------------------

    def step(self, seconds: float) -> int:
        """Send ``seconds`` worth of requests to every entry point; returns how many were sent."""
        with self._step_lock:
            return self._step(seconds)

    def _step(self, seconds: float) -> int:
        routes = self._store.list("gateway.networking.k8s.io/v1", "HTTPRoute")
        proxy_list = self._store.list("projectcontour.io/v1", "HTTPProxy")
        services = self._store.list("v1", "Service")
        proxies = {
            (str(p["metadata"]["namespace"]), str(p["metadata"]["name"])): p for p in proxy_list
        }
        pods = self._pods(None)

        referenced: set[tuple[str, str]] = set()
        for route in routes:
            referenced.update((b.namespace, b.service) for b in gateway_backends(route))
        for proxy in proxy_list:
            referenced.update((b.namespace, b.service) for b in contour_backends(proxy))
        included: set[tuple[str, str]] = set()
        for proxy in proxy_list:
            namespace = str(proxy["metadata"]["namespace"])
            for include in (proxy.get("spec") or {}).get("includes") or []:
                included.add((str(include.get("namespace") or namespace), str(include.get("name"))))

        handlers: list[tuple[str, Callable[[Request], Route | None] | Backend]] = []
        for route in routes:
            meta = route["metadata"]
            handlers.append(
                (
                    f"httproute/{meta['namespace']}/{meta['name']}",
                    functools.partial(route_httproute, route),
                )
            )
        for key, proxy in sorted(proxies.items()):
            is_root = bool((proxy.get("spec") or {}).get("virtualhost"))
            if is_root or key not in included:
                handlers.append(
                    (
                        f"httpproxy/{key[0]}/{key[1]}",
                        functools.partial(route_httpproxy, proxy, proxies),
                    )
                )
        for service in services:
            meta = service["metadata"]
            key = (str(meta["namespace"]), str(meta["name"]))
            if key in referenced or not (service.get("spec") or {}).get("selector"):
                continue
            ports = (service.get("spec") or {}).get("ports") or [{}]
            port = ports[0].get("port")
            handlers.append(
                (
                    f"service/{key[0]}/{key[1]}",
                    Backend(key[0], key[1], port if isinstance(port, int) else None),
                )
            )

        service_selectors = {
            (str(s["metadata"]["namespace"]), str(s["metadata"]["name"])): (
                (s.get("spec") or {}).get("selector") or {}
            )
            for s in services
        }
        sent = 0
        live_keys: set[str] = set()
        for entry_key, handler in handlers:
            live_keys.add(entry_key)
            entry = self._entries.setdefault(entry_key, _Entry(entry_key))
            entry.carry += self._scenario.requests_per_second * seconds
            count = math.floor(entry.carry)
            entry.carry -= count
            for _ in range(count):
                self._send(entry, handler, service_selectors, pods)
            sent += count
        self._entries = {k: v for k, v in self._entries.items() if k in live_keys}
        return sent

    def _client(self, entry: _Entry) -> Client:
        if entry.clients and self._rng.random() < self._scenario.returning_client_share:
            return self._rng.choice(entry.clients)
        client = Client()
        entry.clients.append(client)
        if len(entry.clients) > _MAX_CLIENTS_PER_ENTRY:
            entry.clients.pop(0)
        return client

    def _request(self, client: Client) -> Request:
        headers: dict[str, str] = {"user-agent": "gitops-canary-simulator"}
        if self._rng.random() < self._scenario.header_share:
            headers.update(self._scenario.headers)
        jar = client.cookie_header()
        if jar:
            extra = headers.get("cookie")
            headers["cookie"] = f"{jar}; {extra}" if extra else jar
        return Request(headers)

    def _send(
        self,
        entry: _Entry,
        handler: Callable[[Request], Route | None] | Backend,
        selectors: Mapping[tuple[str, str], Mapping[str, Any]],
        pods: Sequence[Pod],
    ) -> None:
        client = self._client(entry)
        request = self._request(client)
        if isinstance(handler, Backend):
            self._serve(handler, selectors, pods, through_proxy=False)
            return
        route = handler(request)
        if route is None:
            return  # 404 from the proxy: no upstream saw it
        for mirror in route.mirrors:
            self._serve(mirror, selectors, pods, through_proxy=True)
        total = sum(max(0, weight) for _, weight in route.backends)
        if total <= 0:
            return  # the proxy answers 500 itself when every weight is 0
        pick = self._rng.random() * total
        chosen = next(backend for backend, weight in route.backends if weight > 0)
        for backend, weight in route.backends:
            if weight <= 0:
                continue
            if pick < weight:
                chosen = backend
                break
            pick -= weight
        self._serve(chosen, selectors, pods, through_proxy=True)
        for cookie in (*route.set_cookies, *chosen.set_cookies):
            client.receive_set_cookie(cookie)

    def _serve(
        self,
        backend: Backend,
        selectors: Mapping[tuple[str, str], Mapping[str, Any]],
        pods: Sequence[Pod],
        *,
        through_proxy: bool,
    ) -> None:
        selector = selectors.get((backend.namespace, backend.service))
        ready = [
            pod
            for pod in pods
            if selector and pod.namespace == backend.namespace and _selects(selector, pod.labels)
        ]
        if not ready:
            if through_proxy:
                self._metrics.record_no_healthy_upstream(backend.cluster)
            return
        pod = self._rng.choice(ready)
        behaviour = self._scenario.behaviour_for(pod.image)
        code = 500 if self._rng.random() < behaviour.error_rate else 200
        sigma = behaviour.latency_sigma
        latency_ms = (
            self._rng.lognormvariate(math.log(behaviour.latency_p50_ms), sigma)
            if sigma > 0
            else behaviour.latency_p50_ms
        )
        if through_proxy:
            self._metrics.record_upstream(backend.cluster, code, latency_ms)
        self._metrics.record_app(pod.namespace, pod.name, code, latency_ms / 1000.0)
