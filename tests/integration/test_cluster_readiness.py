"""Flagger's Deployment and route readiness rules (flagger-behaviour.md §3.4, §4.4.3, §8.2).

The rules are pure functions; the last tests read the objects from the simulator's API server
through the real client to show the reader feeds them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.core.observations import Readiness
from gitops_canary.observe.cluster import (
    ClusterReader,
    deployment_readiness,
    ready_threshold_replicas,
    route_readiness,
)
from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
PRIMARY = "podinfo-primary.test not ready: "
CANARY = "canary deployment podinfo.test not ready: "


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def dep(
    *,
    replicas: int | None = 2,
    generation: int = 3,
    observed: int = 3,
    status_replicas: int = 2,
    updated: int = 2,
    available: int = 2,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": status_replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


PROGRESSING = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}


def unavailable_since(moment: datetime) -> dict[str, Any]:
    return {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "lastUpdateTime": stamp(moment),
    }


def check(obj: dict[str, Any] | None, prefix: str = CANARY, threshold: int = 100) -> Readiness:
    return deployment_readiness(
        obj, name_prefix=prefix, threshold_percent=threshold, deadline_seconds=600, now=NOW
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(dep(), Readiness(True, True, ""), id="ready"),
        pytest.param(
            dep(generation=4, observed=3, updated=0),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: observed deployment generation less "
                "than desired generation",
            ),
            id="generation-not-observed",
        ),
        pytest.param(
            dep(
                updated=1,
                conditions=[
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ],
            ),
            Readiness(False, False, CANARY + 'deployment "podinfo" exceeded its progress deadline'),
            id="progress-deadline-exceeded",
        ),
        pytest.param(
            dep(updated=1, status_replicas=2, available=1),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: 1 out of 2 new replicas have been updated",
            ),
            id="not-all-updated",
        ),
        pytest.param(
            dep(
                updated=1,
                available=0,
                conditions=[PROGRESSING, unavailable_since(NOW - timedelta(seconds=601))],
            ),
            Readiness(
                False,
                False,
                CANARY + "waiting for rollout to finish: 1 out of 2 new replicas have been updated",
            ),
            id="minimum-replicas-unavailable-past-deadline",
        ),
        pytest.param(
            dep(
                updated=1,
                available=0,
                conditions=[PROGRESSING, unavailable_since(NOW - timedelta(seconds=600))],
            ),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: 1 out of 2 new replicas have been updated",
            ),
            id="minimum-replicas-unavailable-at-deadline",
        ),
        pytest.param(
            dep(
                updated=1,
                available=0,
                conditions=[unavailable_since(NOW - timedelta(hours=1))],
            ),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: 1 out of 2 new replicas have been updated",
            ),
            id="unavailable-without-progressing-condition-stays-retriable",
        ),
        pytest.param(
            dep(status_replicas=4, updated=2, available=2),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: 2 old replicas are pending termination",
            ),
            id="old-replicas-pending-termination",
        ),
        pytest.param(
            dep(available=1),
            Readiness(
                False,
                True,
                CANARY + "waiting for rollout to finish: 1 of 2 (readyThreshold 100%) updated "
                "replicas are available",
            ),
            id="not-enough-available",
        ),
        pytest.param(
            dep(replicas=0, status_replicas=0, updated=0, available=0),
            Readiness(True, True, ""),
            id="scaled-to-zero-is-ready",
        ),
        pytest.param(
            dep(replicas=None, status_replicas=1, updated=1, available=1),
            Readiness(True, True, ""),
            id="no-spec-replicas-skips-that-check",
        ),
    ],
)
def test_deployment_readiness_table(obj: dict[str, Any], expected: Readiness) -> None:
    assert check(obj) == expected


def test_ready_threshold_truncates_like_flagger() -> None:
    # 3 updated at 50%: int(1.5) = 1 available replica is enough.
    assert check(dep(replicas=3, status_replicas=3, updated=3, available=1), threshold=50).ready
    assert ready_threshold_replicas(3, 50) == 1
    # float32 arithmetic: 53% of 100 is 52.999996, truncated to 52.
    assert ready_threshold_replicas(100, 53) == 52
    ready = check(dep(replicas=100, status_replicas=100, updated=100, available=52), threshold=53)
    assert ready.ready
    short = check(dep(replicas=100, status_replicas=100, updated=100, available=51), threshold=53)
    assert short.message == (
        CANARY + "waiting for rollout to finish: 51 of 52 (readyThreshold 53%) updated replicas "
        "are available"
    )


def test_primary_prefix_and_missing_deployment() -> None:
    assert check(dep(available=0), prefix=PRIMARY).message == (
        "podinfo-primary.test not ready: waiting for rollout to finish: 0 of 2 "
        "(readyThreshold 100%) updated replicas are available"
    )
    assert check(None, prefix=PRIMARY) == Readiness(
        False, True, "podinfo-primary.test not ready: deployment not found"
    )


# -- routes ----------------------------------------------------------------------------------------


def generation_route(second_parent_status: str, second_parent_generation: int) -> dict[str, Any]:
    """``TestGatewayAPIRouter_GetRoutes/httproute generation`` (flagger-behaviour.md §8.2)."""

    def parent(ref: dict[str, Any], status: str, observed: int) -> dict[str, Any]:
        return {
            "parentRef": ref,
            "controllerName": "example.com/gateway",
            "conditions": [{"type": "Accepted", "status": status, "observedGeneration": observed}],
        }

    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": 5},
        "spec": {
            "parentRefs": [{"name": "podinfo"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "podinfo-canary", "port": 9898, "weight": 10},
                        {"name": "podinfo-primary", "port": 9898, "weight": 90},
                    ]
                }
            ],
        },
        "status": {
            "parents": [
                parent({"name": "podinfo", "sectionName": "https"}, "True", 1),
                parent({"name": "podinfo"}, second_parent_status, second_parent_generation),
            ]
        },
    }


def test_httproute_generation_cases_from_flagger() -> None:
    stale = route_readiness(generation_route("False", 4))
    assert stale == Readiness(
        False,
        True,
        "HTTPRoute podinfo.test parent podinfo is not ready (status: False, observed "
        "generation: 4, current generation: 5)",
    )
    not_accepted = route_readiness(generation_route("False", 5))
    assert not_accepted.message == (
        "HTTPRoute podinfo.test parent podinfo is not ready (status: False, observed "
        "generation: 5, current generation: 5)"
    )
    # The stale first parent (sectionName https) is ignored: its parentRef differs.
    assert route_readiness(generation_route("True", 5)).ready


def test_httproute_parent_refs_compare_with_crd_defaults() -> None:
    route = generation_route("True", 1)
    route["metadata"]["generation"] = 2
    route["spec"]["parentRefs"] = [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "contour"}
    ]
    route["status"]["parents"] = [
        {
            "parentRef": {"name": "contour"},
            "conditions": [{"type": "Accepted", "status": "False", "observedGeneration": 1}],
        }
    ]
    assert route_readiness(route).message == (
        "HTTPRoute podinfo.test parent contour is not ready (status: False, observed "
        "generation: 1, current generation: 2)"
    )
    del route["status"]
    assert route_readiness(route).ready  # no controller has written status: Flagger waits not


def test_httpproxy_status() -> None:
    proxy: dict[str, Any] = {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
        "spec": {},
    }
    assert route_readiness(proxy).ready
    proxy["status"] = {"currentStatus": "valid", "description": "Valid HTTPProxy"}
    assert route_readiness(proxy).ready
    proxy["status"] = {
        "currentStatus": "invalid",
        "description": "Service podinfo-canary not found",
    }
    assert route_readiness(proxy) == Readiness(
        False,
        True,
        "HTTPProxy podinfo.test is not valid (status: invalid: Service podinfo-canary not found)",
    )
    assert not route_readiness(None).ready


# -- through the API server ------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ApiServer, ClusterReader]]:
    api = ApiServer(Store()).start()
    reader = ClusterReader.from_kubeconfig(api.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield api, reader
    finally:
        reader.close()
        api.stop()


def test_readiness_of_objects_read_from_the_api_server(
    served: tuple[ApiServer, ClusterReader],
) -> None:
    api, reader = served
    manifest = dep()
    status = manifest.pop("status")
    api.store.apply(manifest)  # generation 1 on create
    api.store.update_status(
        "apps/v1", "Deployment", "test", "podinfo", {**status, "observedGeneration": 1}
    )
    live = reader.get("apps/v1", "Deployment", "test", "podinfo")
    assert reader.deployment_readiness(
        live, name_prefix=CANARY, threshold_percent=100, deadline_seconds=600, now=NOW
    ).ready

    api.store.apply({**manifest, "spec": {"replicas": 3}})  # generation 2, not yet observed
    live = reader.get("apps/v1", "Deployment", "test", "podinfo")
    assert reader.deployment_readiness(
        live, name_prefix=CANARY, threshold_percent=100, deadline_seconds=600, now=NOW
    ).message.endswith("observed deployment generation less than desired generation")

    route = generation_route("True", 5)
    route_status = route.pop("status")
    api.store.apply(route)
    api.store.update_status(
        "gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo", route_status
    )
    live_route = reader.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")
    # The server set generation 1 on create, so the parents' observedGeneration 5 is current.
    assert reader.route_readiness(live_route).ready
