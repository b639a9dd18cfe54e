"""Rules of :mod:`gitops_canary.core.validation` that the corpus does not show on its own:
how issues are formatted, that all problems come at once, warnings, and the dispatch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitops_canary.core.specs import AlertProvider, Canary, MetricTemplate
from gitops_canary.core.validation import (
    Issue,
    effective_provider,
    parse_alert_provider,
    parse_canary,
    parse_document,
    parse_metric_template,
)

CANARY: dict[str, Any] = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "test"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
    },
}


def canary(**analysis: Any) -> dict[str, Any]:
    data = copy.deepcopy(CANARY)
    data["spec"]["analysis"].update(analysis)
    return data


def messages(issues: list[Issue], severity: str = "error") -> dict[str, str]:
    return {issue.path: issue.message for issue in issues if issue.severity == severity}


def test_issue_str_names_file_object_field_and_problem() -> None:
    issue = Issue(
        "apps/podinfo/canary.yaml",
        "Canary test/podinfo",
        "spec.analysis.stepWeight",
        "150 is not between 0 and 100",
    )
    assert str(issue) == (
        "apps/podinfo/canary.yaml: Canary test/podinfo: spec.analysis.stepWeight: "
        "150 is not between 0 and 100"
    )
    assert str(Issue("f.yaml", "", "", "bad", "warning")) == "f.yaml: bad (warning)"


def test_valid_canary_is_returned_with_its_provider() -> None:
    parsed, issues = parse_canary(CANARY, "c.yaml", default_provider="gatewayapi:v1")
    assert issues == []
    assert isinstance(parsed, Canary)
    assert effective_provider(parsed, "contour") == "contour"
    with_spec = copy.deepcopy(CANARY)
    with_spec["spec"]["provider"] = "gatewayapi:v1beta1"
    parsed, issues = parse_canary(with_spec, "c.yaml", default_provider="contour")
    assert issues == []
    assert parsed is not None
    assert effective_provider(parsed, "contour") == "gatewayapi:v1beta1"


def test_all_problems_of_a_document_are_reported_together() -> None:
    data = canary(stepWeight=150, threshold="five", metrics=[{"name": "x", "interval": "2h"}])
    data["spec"]["service"]["port"] = 0
    data["metadata"]["name"] = "Pod_Info"
    parsed, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert parsed is None
    found = messages(issues)
    assert found["spec.analysis.threshold"] == "expected an integer, got 'five'"
    assert found["spec.service.port"] == "0 is not a port number between 1 and 65535"
    assert found["metadata.name"].startswith("'Pod_Info' is not a valid Kubernetes name")
    # The broken threshold does not hide the rules on the rest of the analysis.
    assert found["spec.analysis.stepWeight"].startswith("150 is not between 0 and 100")
    assert found["spec.analysis.metrics[0].interval"].startswith("'2h' is not allowed")
    assert all(issue.object == "Canary test/Pod_Info" for issue in issues)


def test_unknown_field_lists_the_allowed_ones_and_suggests_the_closest() -> None:
    data = copy.deepcopy(CANARY)
    data["spec"]["service"]["gatewayRef"] = data["spec"]["service"].pop("gatewayRefs")
    _, issues = parse_canary(data, "c.yaml", default_provider="contour")
    message = messages(issues)["spec.service.gatewayRef"]
    assert message.startswith("unknown field; allowed fields here: name, port, portName,")
    assert message.endswith("did you mean 'gatewayRefs'?")


def test_union_type_error_is_said_once() -> None:
    data = copy.deepcopy(CANARY)
    data["spec"]["service"]["targetPort"] = 1.5
    _, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert [(i.path, i.message) for i in issues] == [
        ("spec.service.targetPort", "expected an integer or a string, got 1.5")
    ]


def test_snake_case_is_not_an_alias_on_the_wire() -> None:
    data = copy.deepcopy(CANARY)
    data["spec"]["target_ref"] = data["spec"].pop("targetRef")
    _, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    found = messages(issues)
    assert found["spec.targetRef"] == "required field is missing"
    assert found["spec.target_ref"].endswith("did you mean 'targetRef'?")


def test_status_and_server_metadata_are_ignored() -> None:
    data = copy.deepcopy(CANARY)
    data["status"] = {"phase": "Succeeded"}
    data["metadata"]["uid"] = "1234"
    data["metadata"]["creationTimestamp"] = None
    assert parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")[1] == []


@pytest.mark.parametrize(
    ("analysis", "path", "fragment"),
    [
        ({"interval": "5s"}, "spec.analysis.interval", "5s is shorter than Flagger's minimum; 10s"),
        (
            {"stepWeights": [10, 50], "stepWeight": None},
            "spec.analysis.maxWeight",
            "ignored when stepWeights is set",
        ),
        ({"metrics": [{"name": "request-duration"}]}, "spec.analysis.metrics[0]", "always passes"),
        (
            {"alerts": [{"name": "a", "providerRef": {"name": "slack"}}]},
            "spec.analysis.alerts[0].severity",
            "never fires",
        ),
    ],
)
def test_warnings_do_not_make_the_canary_invalid(
    analysis: dict[str, Any], path: str, fragment: str
) -> None:
    data = canary(**analysis)
    data["spec"]["analysis"] = {k: v for k, v in data["spec"]["analysis"].items() if v is not None}
    parsed, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert parsed is not None, [str(i) for i in issues]
    assert fragment in messages(issues, "warning")[path]


def test_template_metric_interval_may_be_omitted() -> None:
    data = canary(
        metrics=[
            {"name": "latency", "templateRef": {"name": "latency"}, "thresholdRange": {"max": 0.5}}
        ]
    )
    parsed, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert issues == []
    assert parsed is not None


def test_mirror_is_fine_with_blue_green_on_gateway_api() -> None:
    data = canary(iterations=10, mirror=True)
    del data["spec"]["analysis"]["stepWeight"], data["spec"]["analysis"]["maxWeight"]
    parsed, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert issues == []
    assert parsed is not None


def test_gateway_api_regex_and_exact_header_matches_are_accepted() -> None:
    data = canary(
        match=[
            {"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"regex": ".*Mobile.*"}}}
        ]
    )
    assert parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")[1] == []


def test_metric_template_and_alert_provider() -> None:
    template = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "latency", "namespace": "flagger-system"},
        "spec": {"provider": {"type": "prometheus", "address": "http://prom:9090"}, "query": "up"},
    }
    parsed, issues = parse_metric_template(template, "t.yaml")
    assert issues == []
    assert isinstance(parsed, MetricTemplate)
    template["spec"]["query"] = "  "
    assert messages(parse_metric_template(template, "t.yaml")[1]) == {
        "spec.query": "the query is empty; write the PromQL to run"
    }
    provider = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "AlertProvider",
        "metadata": {"name": "on-call"},
        "spec": {"type": "slack", "channel": "ops", "secretRef": {"name": "slack-url"}},
    }
    parsed_provider, issues = parse_alert_provider(provider, "a.yaml")
    assert issues == []
    assert isinstance(parsed_provider, AlertProvider)
    provider["spec"]["type"] = "pagerduty"
    _, issues = parse_alert_provider(provider, "a.yaml")
    assert issues[0].object == "AlertProvider default/on-call"
    assert issues[0].path == "spec.type"
    assert issues[0].message.startswith("'pagerduty' is not allowed; expected 'slack'")


def test_parse_document_dispatches_on_kind() -> None:
    assert parse_document({"apiVersion": "apps/v1", "kind": "Deployment"}, "d.yaml") == (None, [])
    assert parse_document({"apiVersion": "flagger.app/v1beta1", "kind": "Other"}, "d.yaml") == (
        None,
        [],
    )
    parsed, _ = parse_document(CANARY, "c.yaml", default_provider="contour")
    assert isinstance(parsed, Canary)


def test_object_without_a_name_is_still_reported() -> None:
    data = copy.deepcopy(CANARY)
    del data["metadata"]
    _, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert [(i.object, i.path, i.message) for i in issues] == [
        ("Canary (no name)", "metadata", "required field is missing")
    ]
