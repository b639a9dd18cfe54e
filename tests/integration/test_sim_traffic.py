"""Simulated traffic follows the live routes, and the exporter serves what it counted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gitops_canary.sim.exporter import MetricsExporter, TrafficMetrics
from gitops_canary.sim.scenario import Scenario, parse_scenario
from gitops_canary.sim.store import Store
from gitops_canary.sim.traffic import Client, Request, TrafficSimulator, route_httproute
from gitops_canary.sim.workloads import WorkloadController

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STABLE = "ghcr.io/stefanprodan/podinfo:6.0.0"
BAD = "ghcr.io/stefanprodan/podinfo:6.0.2"
# The seeds' MetricTemplate selector, and Flagger's gatewayapi pod selector (§5.2), for ns test.
SEED_CLUSTER_REGEX = "test_podinfo-canary_[0-9a-zA-Z-]+"
GATEWAYAPI_POD_REGEX = "podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"


def exposed_name(family: Metric, sample: Sample) -> str:
    """The sample's name as exposed: Python's parser appends ``_total`` to counters."""
    if family.type == "counter" and sample.name == family.name + "_total":
        return family.name
    return sample.name


def deployment(name: str, app: str, image: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "podinfod", "image": image}]},
            },
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 9898}]},
    }


def backend(name: str, weight: int, **extra: Any) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": 9898, "weight": weight, **extra}


def httproute(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"parentRefs": [{"name": "contour"}], "rules": rules},
    }


def weighted(primary: int, canary: int) -> dict[str, Any]:
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [backend("podinfo-primary", primary), backend("podinfo-canary", canary)],
    }


class Cluster:
    """A store with Flagger's generated objects for podinfo, plus workloads and traffic."""

    def __init__(self, scenario: Scenario, canary_image: str = BAD, seed: int = 7) -> None:
        self.store = Store()
        self.store.apply(deployment("podinfo-primary", "podinfo-primary", STABLE))
        self.store.apply(deployment("podinfo", "podinfo", canary_image))
        for name, app in [
            ("podinfo", "podinfo-primary"),
            ("podinfo-primary", "podinfo-primary"),
            ("podinfo-canary", "podinfo"),
        ]:
            self.store.apply(service(name, app))
        self.workloads = WorkloadController(self.store, scenario, route_status_delay=0)
        self.workloads.tick()
        self.metrics = TrafficMetrics()
        self.traffic = TrafficSimulator(
            self.store, self.workloads.ready_pods, scenario, self.metrics, seed=seed
        )

    def requests(self, cluster: str) -> dict[str, float]:
        """Upstream requests of an Envoy cluster by response code."""
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(self.metrics.render()):
            for sample in family.samples:
                if (
                    exposed_name(family, sample) == "envoy_cluster_upstream_rq"
                    and sample.labels["envoy_cluster_name"] == cluster
                ):
                    counts[sample.labels["envoy_response_code"]] = sample.value
        return counts

    def total(self, cluster: str) -> float:
        return sum(self.requests(cluster).values())


def scenario(**overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "rolloutSeconds": 0,
        "requestsPerSecond": 20,
        "headerShare": {"x-canary": "insider", "share": 0.2},
        "images": {BAD: {"errorRate": 0.6, "latencyMs": {"p50": 20, "p99": 80}}},
    }
    data.update(overrides)
    return parse_scenario(data, "test scenario")


def test_weights_90_10_split_the_traffic_90_10() -> None:
    cluster = Cluster(scenario())
    cluster.store.apply(httproute([weighted(90, 10)]))

    sent = cluster.traffic.step(500.0)

    assert sent >= 10_000
    primary = cluster.total("test_podinfo-primary_9898")
    canary = cluster.total("test_podinfo-canary_9898")
    assert primary + canary == 10_000  # the route's share; the rest went to the apex Service
    assert canary / (primary + canary) == pytest.approx(0.10, abs=0.01)
    # The bad image fails 60 % of its requests; the primary none.
    assert cluster.requests("test_podinfo-canary_9898")["500"] / canary == pytest.approx(
        0.6, abs=0.04
    )
    assert "500" not in cluster.requests("test_podinfo-primary_9898")


def test_the_same_seed_gives_the_same_requests() -> None:
    outputs = []
    for _ in range(2):
        cluster = Cluster(scenario(), seed=3)
        cluster.store.apply(httproute([weighted(50, 50)]))
        cluster.traffic.step(20.0)
        outputs.append(cluster.metrics.render())
    assert outputs[0] == outputs[1]


def test_new_weights_take_effect_on_the_next_step() -> None:
    cluster = Cluster(scenario())
    cluster.store.apply(httproute([weighted(100, 0)]))
    cluster.traffic.step(50.0)
    assert cluster.total("test_podinfo-canary_9898") == 0

    cluster.store.apply(httproute([weighted(0, 100)]))
    cluster.traffic.step(50.0)

    assert cluster.total("test_podinfo-canary_9898") == 1000
    assert cluster.total("test_podinfo-primary_9898") == 1000


def test_an_ab_header_rule_sends_only_matching_requests_to_the_canary() -> None:
    ab_rule = {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}],
            }
        ],
        "backendRefs": [backend("podinfo-primary", 0), backend("podinfo-canary", 100)],
    }
    rest = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [backend("podinfo-primary", 100)],
    }
    route = httproute([ab_rule, rest])
    insider = route_httproute(route, Request({"x-canary": "insider"}))
    other = route_httproute(route, Request({"x-canary": "outsider"}))
    assert insider is not None
    assert other is not None
    assert [(b.service, w) for b, w in insider.backends] == [
        ("podinfo-primary", 0),
        ("podinfo-canary", 100),
    ]
    assert [b.service for b, _ in other.backends] == ["podinfo-primary"]

    cluster = Cluster(scenario())
    cluster.store.apply(route)
    cluster.traffic.step(500.0)

    canary = cluster.total("test_podinfo-canary_9898")
    primary = cluster.total("test_podinfo-primary_9898")
    assert canary / (canary + primary) == pytest.approx(0.2, abs=0.015)

    without_header = Cluster(scenario(headerShare={"x-canary": "insider", "share": 0}))
    without_header.store.apply(route)
    without_header.traffic.step(100.0)
    assert without_header.total("test_podinfo-canary_9898") == 0


def sticky_rules(cookie: str) -> list[dict[str, Any]]:
    """Flagger's session-affinity rules at weight 10 (reference §4.4.10)."""
    return [
        {
            "matches": [
                {
                    "headers": [
                        {
                            "name": "Cookie",
                            "type": "RegularExpression",
                            "value": f".*flagger-cookie.*{cookie}.*",
                        }
                    ]
                }
            ],
            "backendRefs": [backend("podinfo-primary", 0), backend("podinfo-canary", 100)],
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                backend("podinfo-primary", 90),
                backend(
                    "podinfo-canary",
                    10,
                    filters=[
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {
                                "add": [
                                    {
                                        "name": "Set-Cookie",
                                        "value": f"flagger-cookie={cookie}; Max-Age=86400",
                                    }
                                ]
                            },
                        }
                    ],
                ),
            ],
        },
    ]


def test_session_affinity_keeps_returning_clients_on_the_canary() -> None:
    route = httproute(sticky_rules("AbCdEfGhIj"))
    with_cookie = route_httproute(route, Request({"cookie": "other=1; flagger-cookie=AbCdEfGhIj"}))
    assert with_cookie is not None
    assert [w for _, w in with_cookie.backends] == [0, 100]

    cluster = Cluster(scenario(returningClientShare=0.9))
    cluster.store.apply(route)
    cluster.traffic.step(500.0)

    canary = cluster.total("test_podinfo-canary_9898")
    primary = cluster.total("test_podinfo-primary_9898")
    # Clients who once reached the canary stay there, so it gets well over its 10 % weight.
    assert canary / (canary + primary) > 0.3


def test_a_max_age_minus_one_cookie_deletes_the_clients_cookie() -> None:
    client = Client()
    client.receive_set_cookie("flagger-cookie=AbCdEfGhIj; Max-Age=86400")
    assert client.cookie_header() == "flagger-cookie=AbCdEfGhIj"

    client.receive_set_cookie("flagger-cookie=AbCdEfGhIj; Max-Age=-1")

    assert client.cookie_header() == ""


def test_a_mirror_filter_copies_every_request_to_the_canary() -> None:
    rule = weighted(100, 0)
    rule["filters"] = [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {
                    "group": "",
                    "kind": "Service",
                    "name": "podinfo-canary",
                    "port": 9898,
                }
            },
        }
    ]
    cluster = Cluster(scenario())
    cluster.store.apply(httproute([rule]))

    cluster.traffic.step(50.0)

    assert cluster.total("test_podinfo-primary_9898") == 1000
    assert cluster.total("test_podinfo-canary_9898") == 1000


def contour_service(name: str, weight: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": name,
        "port": 9898,
        "requestHeadersPolicy": {
            "set": [{"name": "l5d-dst-override", "value": f"{name}.test.svc.cluster.local:9898"}]
        },
    }
    if weight:
        item["weight"] = weight  # Flagger omits a 0 weight
    return item


def test_contour_proxy_included_from_a_root_follows_weights_and_header_conditions() -> None:
    cluster = Cluster(scenario())
    cluster.store.apply(
        {
            "apiVersion": "projectcontour.io/v1",
            "kind": "HTTPProxy",
            "metadata": {"name": "podinfo-ingress", "namespace": "test"},
            "spec": {
                "virtualhost": {"fqdn": "localproject.contour.io"},
                "includes": [
                    {"name": "podinfo", "namespace": "test", "conditions": [{"prefix": "/"}]}
                ],
            },
        }
    )
    proxy: dict[str, Any] = {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "routes": [
                {
                    "conditions": [{"prefix": "/"}],
                    "services": [
                        contour_service("podinfo-primary", 90),
                        contour_service("podinfo-canary", 10),
                    ],
                }
            ]
        },
    }
    cluster.store.apply(proxy)
    cluster.traffic.step(500.0)
    canary = cluster.total("test_podinfo-canary_9898")
    primary = cluster.total("test_podinfo-primary_9898")
    # Only the root proxy receives traffic: the included one is not an entry point of its own.
    assert primary + canary == 10_000
    assert canary / 10_000 == pytest.approx(0.10, abs=0.01)

    # A/B (reference §4.5.6): only x-canary: insider reaches the canary.
    proxy["spec"]["routes"] = [
        {
            "conditions": [{"prefix": "/", "header": {"name": "x-canary", "exact": "insider"}}],
            "services": [
                contour_service("podinfo-primary", 0),
                contour_service("podinfo-canary", 100),
            ],
        },
        {
            "conditions": [{"prefix": "/"}],
            "services": [
                contour_service("podinfo-primary", 100),
                contour_service("podinfo-canary", 0),
            ],
        },
    ]
    cluster.store.apply(proxy)
    cluster.traffic.step(500.0)
    ab_canary = cluster.total("test_podinfo-canary_9898") - canary
    assert ab_canary / 10_000 == pytest.approx(0.2, abs=0.015)


def test_a_service_without_a_route_gets_traffic_straight_to_its_pods() -> None:
    cluster = Cluster(scenario())  # no route at all
    cluster.traffic.step(10.0)

    families = {f.name: f for f in text_string_to_metric_families(cluster.metrics.render())}
    pods = {
        s.labels["kubernetes_pod_name"]
        for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    # podinfo and podinfo-primary select the primary pods, podinfo-canary the canary pods.
    assert len(pods) == 4
    assert not families["envoy_cluster_upstream_rq"].samples


@pytest.fixture
def exporter() -> Iterator[tuple[Cluster, MetricsExporter]]:
    cluster = Cluster(scenario())
    cluster.store.apply(httproute([weighted(0, 100)]))
    server = MetricsExporter(cluster.metrics)
    server.start()
    try:
        yield cluster, server
    finally:
        server.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{url}/metrics", timeout=5)
    response.raise_for_status()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (exposed_name(family, sample), tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_the_exporter_serves_parsable_metrics_that_only_increase(
    exporter: tuple[Cluster, MetricsExporter],
) -> None:
    cluster, server = exporter
    cluster.traffic.step(10.0)
    first = scrape(server.url)
    cluster.traffic.step(10.0)
    second = scrape(server.url)

    assert first
    assert set(first) <= set(second)
    assert all(second[key] >= value for key, value in first.items())
    assert any(second[key] > value for key, value in first.items())
    names = {name for name, _ in second}
    assert {
        "envoy_cluster_upstream_rq",
        "envoy_cluster_upstream_rq_time_bucket",
        "envoy_cluster_upstream_rq_time_sum",
        "envoy_cluster_upstream_rq_time_count",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
    } <= names
    assert requests.get(f"{server.url}/other", timeout=5).status_code == 404


def test_the_seed_and_builtin_selectors_match_exactly_the_canary_series(
    exporter: tuple[Cluster, MetricsExporter],
) -> None:
    cluster, server = exporter
    cluster.store.apply(httproute([weighted(50, 50)]))
    cluster.traffic.step(20.0)
    samples = scrape(server.url)

    clusters = {
        dict(labels)["envoy_cluster_name"]
        for name, labels in samples
        if name == "envoy_cluster_upstream_rq"
    }
    assert clusters == {"test_podinfo-primary_9898", "test_podinfo-canary_9898"}
    assert [c for c in clusters if re.fullmatch(SEED_CLUSTER_REGEX, c)] == [
        "test_podinfo-canary_9898"
    ]
    canary_pods = {
        p.name for p in cluster.workloads.ready_pods("test") if p.deployment == "podinfo"
    }
    pods = {
        dict(labels)["kubernetes_pod_name"]
        for name, labels in samples
        if name == "http_request_duration_seconds_count"
    }
    assert {p for p in pods if re.fullmatch(GATEWAYAPI_POD_REGEX, p)} == canary_pods
    assert len(pods - canary_pods) == 2  # the primary's pods, which the regex must not match
