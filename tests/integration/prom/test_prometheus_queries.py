"""Planned queries against a real Prometheus: builtins for both routers and the seed templates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prom_helpers import EXPECTED, RealPrometheus

from gitops_canary.core.promql import MetricQuery, QuerySource, plan_queries
from gitops_canary.core.specs import Canary, CanaryMetric, MetricTemplate
from gitops_canary.core.verdicts import OutcomeKind, QueryOutcome, judge
from gitops_canary.observe.prometheus import PrometheusClient, evaluate, is_online

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "repo" / "apps"
TOLERANCE = 1e-6
IDLE = 'sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name="idle_podinfo-canary_9898"}[1m]))'


def builtin_canary(provider: str) -> Canary:
    return Canary.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {
                    "metrics": [
                        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
                        {
                            "name": "request-duration",
                            "thresholdRange": {"max": 500},
                            "interval": "30s",
                        },
                    ]
                },
            },
        }
    )


def only_queries(plan: list[Any]) -> list[MetricQuery]:
    assert all(isinstance(p, MetricQuery) for p in plan), plan
    return list(plan)


def adhoc(address: str, query: str) -> MetricQuery:
    return MetricQuery(
        metric=CanaryMetric(name="adhoc"), query=query, address=address, source=QuerySource.INLINE
    )


def test_contour_builtins(prometheus: RealPrometheus) -> None:
    canary = builtin_canary("contour")
    queries = only_queries(plan_queries(canary, "contour", {}, prometheus.address))
    rate, duration = evaluate(queries)
    assert rate.value == pytest.approx(EXPECTED["contour-success-rate"], abs=TOLERANCE)
    assert duration.value == pytest.approx(EXPECTED["contour-duration-ms"], abs=TOLERANCE)
    verdicts = [judge(canary, q, o) for q, o in zip(queries, (rate, duration), strict=True)]
    assert verdicts[0].message == "Halt podinfo.test advancement success rate 90.00% < 99%"
    assert verdicts[1].ok
    assert verdicts[1].message == "request-duration 198ms is within max 500ms"


def test_gatewayapi_builtins_read_only_the_canary_pods(prometheus: RealPrometheus) -> None:
    canary = builtin_canary("gatewayapi:v1")
    queries = only_queries(plan_queries(canary, "gatewayapi:v1", {}, prometheus.address))
    rate, duration = evaluate(queries)
    assert rate.value == pytest.approx(EXPECTED["gatewayapi-success-rate"], abs=TOLERANCE)
    assert duration.value == pytest.approx(EXPECTED["gatewayapi-duration-s"], abs=TOLERANCE)
    assert judge(canary, queries[1], duration).message == (
        "request-duration 242.5ms is within max 500ms"
    )


def test_seed_templates_verbatim(prometheus: RealPrometheus) -> None:
    canary = Canary.model_validate(
        yaml.safe_load((EXAMPLES / "podinfo" / "canary.yaml").read_text())
    )
    templates = {}
    for document in yaml.safe_load_all(
        (EXAMPLES / "metric-templates" / "metric-templates.yaml").read_text()
    ):
        # Only the address changes: the seed points at the in-cluster flagger-prometheus.
        document["spec"]["provider"]["address"] = prometheus.address
        template = MetricTemplate.model_validate(document)
        templates[template.key] = template
    queries = only_queries(plan_queries(canary, "gatewayapi:v1", templates, "http://unused:9090"))
    assert [q.name for q in queries] == ["error-rate", "latency"]
    error_rate, latency = evaluate(queries)
    assert error_rate.value == pytest.approx(100 - EXPECTED["contour-success-rate"], abs=TOLERANCE)
    assert latency.value == pytest.approx(EXPECTED["contour-duration-ms"] / 1000, abs=TOLERANCE)
    assert judge(canary, queries[0], error_rate).message == (
        "Halt podinfo.test advancement error-rate 10.00 > 1"
    )
    assert judge(canary, queries[1], latency).ok


@pytest.mark.parametrize(
    ("query", "kind", "value"),
    [
        # No traffic at all: 0/0 is NaN.
        (f"{IDLE} / {IDLE}", OutcomeKind.NO_VALUES, None),
        ('sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name="nowhere"}[1m]))',
         OutcomeKind.NO_VALUES, None),
        ("1 + 1", OutcomeKind.VALUE, 2.0),  # a scalar is accepted
        ("vector(1) / 0", OutcomeKind.VALUE, float("inf")),
        ("-vector(1) / 0", OutcomeKind.VALUE, float("-inf")),
        ("envoy_cluster_upstream_rq", OutcomeKind.ERROR, None),  # several series
        ("envoy_cluster_upstream_rq[10s]", OutcomeKind.ERROR, None),  # a matrix
        ("sum(rate(envoy_cluster_upstream_rq[]))", OutcomeKind.ERROR, None),  # a parse error
    ],
)  # fmt: skip
def test_result_shapes(
    prometheus: RealPrometheus, query: str, kind: OutcomeKind, value: float | None
) -> None:
    (outcome,) = evaluate([adhoc(prometheus.address, query)])
    assert outcome.kind is kind, outcome
    assert outcome.value == value


def test_error_texts_from_prometheus(prometheus: RealPrometheus) -> None:
    several, matrix, parse = evaluate(
        [
            adhoc(prometheus.address, 'envoy_cluster_upstream_rq{envoy_cluster_name=~"test_.*"}'),
            adhoc(prometheus.address, "vector(1)[10s:1s]"),
            adhoc(prometheus.address, "rate(x[])"),
        ]
    )
    assert several.error.startswith("query returned 3 series ({")
    assert "it must return exactly one" in several.error
    assert "range vector" in matrix.error
    assert parse.error.startswith("error response: Status 400 Bad Request: bad_data: ")


def test_many_queries_run_concurrently_in_order(prometheus: RealPrometheus) -> None:
    queries = [adhoc(prometheus.address, f"vector({i})") for i in range(40)]
    started = time.monotonic()
    outcomes = PrometheusClient().evaluate(queries, max_concurrency=8)
    assert [o.value for o in outcomes] == [float(i) for i in range(40)]
    assert time.monotonic() - started < 10


def test_is_online(prometheus: RealPrometheus) -> None:
    assert is_online(prometheus.address)
    assert is_online(prometheus.address + "/")
    # Without the route prefix Prometheus answers 404: not online.
    assert not is_online(prometheus.address.removesuffix("/prom"))


def test_no_values_judged_like_flagger(prometheus: RealPrometheus) -> None:
    canary = builtin_canary("contour").model_copy(
        update={
            "metadata": builtin_canary("contour").metadata.model_copy(update={"namespace": "other"})
        }
    )
    queries = only_queries(plan_queries(canary, "contour", {}, prometheus.address))
    outcomes = evaluate(queries)
    assert outcomes == [QueryOutcome.no_values(), QueryOutcome.no_values()]
    assert judge(canary, queries[0], outcomes[0]).message == (
        "Halt advancement no values found for contour metric request-success-rate probably "
        "podinfo.other is not receiving traffic: no values found"
    )
