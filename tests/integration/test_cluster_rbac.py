"""config/rbac.yaml: valid Kubernetes objects granting gitops-canary read-only access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gitops_canary.observe.cluster import READ_RESOURCES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RBAC = Path(__file__).resolve().parents[2] / "config" / "rbac.yaml"
READ_VERBS = {"get", "list", "watch"}


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text(encoding="utf-8")) if d]


def by_kind(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


@pytest.mark.parametrize("kind", ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"])
def test_validates_against_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(by_kind(kind), "1.33.0", strict=True)


def test_the_schema_check_would_catch_a_malformed_role() -> None:
    role = by_kind("ClusterRole")
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, "1.33.0", strict=True)


def test_every_rule_is_read_only() -> None:
    rules = by_kind("ClusterRole")["rules"]
    assert rules
    for rule in rules:
        assert set(rule["verbs"]) == READ_VERBS, rule
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        assert "nonResourceURLs" not in rule


def test_grants_exactly_the_resources_the_reader_reads() -> None:
    granted = {
        (group, resource)
        for rule in by_kind("ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    read = {(r.group, r.plural) for r in READ_RESOURCES}
    assert granted == read
    assert ("", "secrets") in granted  # MetricTemplate secretRef


def test_binding_ties_the_service_account_to_the_role() -> None:
    account = by_kind("ServiceAccount")["metadata"]
    assert (account["namespace"], account["name"]) == ("gitops-canary", "gitops-canary")
    binding = by_kind("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": by_kind("ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitops-canary", "namespace": "gitops-canary"}
    ]
