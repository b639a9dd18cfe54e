"""Query templates and the query plan: Flagger's builtin texts, the template subset, the order."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_canary.core.promql import (
    BUILTIN_QUERIES,
    MetricQuery,
    QueryPlanError,
    QuerySource,
    QueryTemplateError,
    SecretLocation,
    UnitKind,
    metric_interval,
    plan_queries,
    render_query,
)
from gitops_canary.core.specs import Canary, CanaryMetric, MetricTemplate

# The seed's MetricTemplates, verbatim (seeds/000, Gateway API tutorial).
LATENCY_QUERY = """histogram_quantile(0.99,
  sum(
    rate(
      envoy_cluster_upstream_rq_time_bucket{
        envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",
      }[{{ interval }}]
    )
  ) by (le)
)/1000
"""


def canary(metrics: list[dict[str, Any]], **spec: Any) -> Canary:
    return Canary.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "metrics": metrics},
                **spec,
            },
        }
    )


def template(name: str, query: str, **provider: Any) -> MetricTemplate:
    return MetricTemplate.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": "flagger-system"},
            "spec": {
                "provider": {"type": "prometheus", "address": "http://prom:9090", **provider},
                "query": query,
            },
        }
    )


def render(text: str, **variables: str) -> str:
    return render_query(
        text,
        name="podinfo",
        namespace="test",
        target="podinfo",
        service="podinfo-svc",
        interval="30s",
        variables=variables,
        template_name="latency.flagger-system",
    )


def test_contour_success_rate_matches_flaggers_rendered_text() -> None:
    rendered = render_query(
        BUILTIN_QUERIES["contour"]["request-success-rate"],
        name="podinfo",
        namespace="default",
        target="podinfo",
        service="podinfo",
        interval="1m",
        variables={},
        template_name="request-success-rate",
    )
    assert rendered == (
        ' sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default_podinfo-canary_'
        '[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( '
        'envoy_cluster_upstream_rq{ envoy_cluster_name=~"default_podinfo-canary_[0-9a-zA-Z-]+", '
        "}[1m] ) ) * 100"
    )


def test_builtin_queries_use_service_for_contour_and_target_for_gatewayapi() -> None:
    contour = render(BUILTIN_QUERIES["contour"]["request-duration"])
    assert contour == (
        " histogram_quantile(0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ "
        'envoy_cluster_name=~"test_podinfo-svc-canary_[0-9a-zA-Z-]+", }[30s] ) ) by (le) )'
    )
    app = render(BUILTIN_QUERIES["gatewayapi"]["request-success-rate"])
    assert 'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*"' in app
    assert app.count("[30s]") == 2
    assert "podinfo-svc" not in app


def test_render_substitutes_every_name_and_collapses_whitespace() -> None:
    text = (
        "{{name}}|{{ namespace }}|{{  target  }}|{{ service }}|{{ ingress }}|{{ route }}"
        "|{{ interval }}\n\t|{{ variables.code }}"
    )
    assert render(text, code="5..") == "podinfo|test|podinfo|podinfo-svc|podinfo|podinfo|30s |5.."


def test_render_honours_trim_markers() -> None:
    assert render("a   {{- interval -}}   b") == "a30sb"


def test_seed_latency_template_renders() -> None:
    assert render(LATENCY_QUERY) == (
        "histogram_quantile(0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ "
        'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+", }[30s] ) ) by (le) )/1000 '
    )


@pytest.mark.parametrize(
    "expression",
    [
        "{{ .namespace }}",
        "{{ namespace | printf }}",
        '{{ printf "%s" namespace }}',
        '{{ index variables "x" }}',
        "{{ call }}",
        '{{ template "other" }}',
        "{{/* comment */}}",
        "{{ password }}",
        "{{ variables }}",
        "{{ variables.a.b }}",
        "{{ }}",
    ],
)
def test_render_refuses_anything_outside_the_subset(expression: str) -> None:
    with pytest.raises(QueryTemplateError) as caught:
        render(f'sum(x{{a="{expression}"}})')
    assert caught.value.template_name == "latency.flagger-system"
    assert caught.value.expression == expression
    assert str(caught.value).startswith(
        "Metric template latency.flagger-system query render error: "
    )
    assert expression in str(caught.value)


def test_render_reports_unclosed_action() -> None:
    with pytest.raises(QueryTemplateError, match="unclosed action"):
        render("rate(x[{{ interval ])")


def test_missing_variable_names_the_key() -> None:
    with pytest.raises(QueryTemplateError) as caught:
        render("{{ variables.code }}", other="1")
    message = str(caught.value)
    assert message.startswith("Metric template latency.flagger-system query render error: ")
    assert '"code"' in message
    assert "other" in message


def test_metric_interval_defaults_to_one_minute_for_all_metrics() -> None:
    assert metric_interval(CanaryMetric(name="x", template_ref={"name": "t"})) == "1m"  # type: ignore[arg-type]
    assert metric_interval(CanaryMetric(name="x", interval="30s")) == "30s"


def test_plan_runs_builtins_and_inline_first_then_templates() -> None:
    subject = canary(
        [
            {
                "name": "error-rate",
                "templateRef": {"name": "error-rate", "namespace": "flagger-system"},
            },
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "both", "query": "vector(1)", "templateRef": {"name": "latency"}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            {"name": "nothing"},
        ],
        provider="contour",
    )
    templates = {
        "flagger-system/error-rate": template("error-rate", "100 - {{ variables.x }}"),
        "test/latency": template("latency", "{{ interval }}", headers={"X-Org": "1"}),
    }
    plan = plan_queries(subject, "contour", templates, "http://default:9090/prefix")
    summary = [(p.name, p.source, p.kind if isinstance(p, MetricQuery) else None) for p in plan]
    assert summary == [
        ("request-success-rate", QuerySource.BUILTIN, UnitKind.PERCENT),
        ("both", QuerySource.INLINE, UnitKind.PLAIN),
        ("request-duration", QuerySource.BUILTIN, UnitKind.DURATION_MS),
        ("error-rate", QuerySource.TEMPLATE, None),
        ("both", QuerySource.TEMPLATE, UnitKind.PLAIN),
        ("nothing", QuerySource.TEMPLATE, None),
    ]
    assert isinstance(plan[0], MetricQuery)
    assert plan[0].address == "http://default:9090/prefix"
    assert plan[0].provider == "contour"
    assert isinstance(plan[3], QueryPlanError)
    assert plan[3].message.startswith(
        "Metric template error-rate.flagger-system query render error:"
    )
    assert isinstance(plan[4], MetricQuery)
    assert plan[4].query == "1m"  # D8: templates default to 1m as well
    assert plan[4].headers == (("X-Org", "1"),)
    assert plan[4].address == "http://prom:9090"
    assert plan[4].template == "latency.test"
    assert isinstance(plan[5], QueryPlanError)
    assert plan[5].message == (
        "Metric query failed for no usable metrics template and query were configured"
    )


def test_plan_uses_metrics_server_and_gatewayapi_durations_in_seconds() -> None:
    subject = canary(
        [{"name": "request-duration", "threshold": 500}], metricsServer="https://prom.example/p"
    )
    (query,) = plan_queries(subject, "gatewayapi:v1beta1", {}, "http://default:9090")
    assert isinstance(query, MetricQuery)
    assert query.kind is UnitKind.DURATION_S
    assert query.address == "https://prom.example/p"
    assert "http_request_duration_seconds_bucket" in query.query


def test_plan_template_errors_are_named() -> None:
    subject = canary(
        [
            {"name": "missing", "templateRef": {"name": "nope"}},
            {"name": "dd", "templateRef": {"name": "dd"}},
            {"name": "noaddr", "templateRef": {"name": "noaddr"}},
            {"name": "auth", "templateRef": {"name": "auth"}},
        ]
    )
    dd = MetricTemplate.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "dd", "namespace": "test"},
            "spec": {"provider": {"type": "datadog"}, "query": "x"},
        }
    )
    noaddr = template("noaddr", "x", address="prom:9090")
    auth = template("auth", "x", secretRef={"name": "prom-auth"}, insecureSkipVerify=True)
    templates = {"test/dd": dd, "test/noaddr": noaddr, "test/auth": auth}
    plan = plan_queries(subject, "gatewayapi:v1", templates, "http://default:9090")
    messages = [p.message for p in plan if isinstance(p, QueryPlanError)]
    assert messages[0].startswith(
        "Metric template nope.test error: MetricTemplate test/nope not found"
    )
    assert messages[1].startswith("Metric template dd.test provider datadog error:")
    assert "prometheus address prom:9090 is not a valid URL" in messages[2]
    last = plan[3]
    assert isinstance(last, MetricQuery)
    assert last.secret == SecretLocation("test", "prom-auth")
    assert last.insecure_skip_verify


def test_plan_refuses_builtins_for_unsupported_provider_and_bad_default_address() -> None:
    subject = canary([{"name": "request-success-rate"}, {"name": "q", "query": "vector(1)"}])
    plan = plan_queries(subject, "istio", {}, "not a url")
    assert isinstance(plan[0], QueryPlanError)
    assert "provider istio" in plan[0].message
    assert isinstance(plan[1], QueryPlanError)
    assert plan[1].message.startswith("Prometheus query failed for q: prometheus address not a url")
