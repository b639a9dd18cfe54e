"""Simulated Deployments roll out, fail on purpose, and routes get their gateway status."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitops_canary.sim.scenario import parse_scenario
from gitops_canary.sim.store import Store
from gitops_canary.sim.workloads import WorkloadController

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GOOD = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEVER_READY = "ghcr.io/stefanprodan/podinfo:9.9.9"


def deployment(
    name: str = "podinfo",
    image: str = GOOD,
    replicas: int | None = 2,
    deadline: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "podinfod", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "test"},
        "spec": spec,
    }


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def controller(store: Store) -> Iterator[WorkloadController]:
    scenario = parse_scenario(
        {"rolloutSeconds": 1.0, "timeFactor": 2, "images": {NEVER_READY: {"neverReady": True}}},
        "test scenario",
    )
    workloads = WorkloadController(store, scenario, tick_seconds=0.05, route_status_delay=0.2)
    workloads.start()
    try:
        yield workloads
    finally:
        workloads.stop()


def status(store: Store, name: str = "podinfo") -> dict[str, Any]:
    found = store.get("apps/v1", "Deployment", "test", name)
    assert found is not None
    return dict(found.get("status") or {})


def condition(store: Store, kind: str, name: str = "podinfo") -> dict[str, Any]:
    return next(c for c in status(store, name).get("conditions", []) if c["type"] == kind)


def complete(store: Store, name: str = "podinfo") -> bool:
    current = status(store, name)
    return any(
        c["type"] == "Progressing" and c["reason"] == "NewReplicaSetAvailable"
        for c in current.get("conditions", [])
    )


def test_a_rollout_progresses_over_the_configured_time(
    store: Store, controller: WorkloadController
) -> None:
    started = time.monotonic()
    store.apply(deployment(replicas=4))
    wait_for(lambda: status(store).get("observedGeneration") == 1)
    early = status(store)
    assert early.get("readyReplicas", 0) < 4
    assert condition(store, "Progressing")["reason"] == "ReplicaSetUpdated"

    wait_for(lambda: complete(store))

    assert time.monotonic() - started >= 0.9
    done = status(store)
    assert (done["replicas"], done["updatedReplicas"], done["readyReplicas"]) == (4, 4, 4)
    assert done["availableReplicas"] == 4
    assert condition(store, "Available")["status"] == "True"
    pods = controller.ready_pods("test")
    assert len(pods) == 4
    assert all(re.fullmatch(r"podinfo-[0-9a-f]{10}-[0-9a-z]{5}", p.name) for p in pods)


def test_a_template_change_moves_observed_generation_and_replaces_pods(
    store: Store, controller: WorkloadController
) -> None:
    store.apply(deployment())
    wait_for(lambda: complete(store))
    old_pods = {p.name for p in controller.ready_pods("test")}

    store.apply(deployment(image="ghcr.io/stefanprodan/podinfo:6.0.1"))
    wait_for(lambda: status(store).get("observedGeneration") == 2)
    # Old pods keep serving until the new ones are ready.
    assert len(controller.ready_pods("test")) == 2
    wait_for(lambda: complete(store))

    new_pods = controller.ready_pods("test")
    assert {p.image for p in new_pods} == {"ghcr.io/stefanprodan/podinfo:6.0.1"}
    assert not old_pods & {p.name for p in new_pods}


def test_replicas_zero_is_honoured_and_complete(
    store: Store, controller: WorkloadController
) -> None:
    store.apply(deployment())
    wait_for(lambda: complete(store))

    store.apply(deployment(replicas=0))
    wait_for(lambda: status(store).get("observedGeneration") == 2)

    scaled = status(store)
    assert "replicas" not in scaled  # zero counts are omitted, as the API server does
    assert "readyReplicas" not in scaled
    assert complete(store)
    assert controller.ready_pods("test") == []


def test_an_hpa_managed_deployment_without_replicas_runs_the_hpa_minimum(
    store: Store, controller: WorkloadController
) -> None:
    store.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "podinfo",
                },
                "minReplicas": 3,
                "maxReplicas": 4,
            },
        }
    )
    store.apply(deployment(replicas=None))

    wait_for(lambda: complete(store))

    assert status(store)["readyReplicas"] == 3
    hpa = store.get("autoscaling/v2", "HorizontalPodAutoscaler", "test", "podinfo")
    assert hpa is not None
    wait_for(
        lambda: (
            (store.get("autoscaling/v2", "HorizontalPodAutoscaler", "test", "podinfo") or {})
            .get("status", {})
            .get("currentReplicas")
            == 3
        )
    )


def test_a_never_ready_image_exceeds_its_progress_deadline(
    store: Store, controller: WorkloadController
) -> None:
    # progressDeadlineSeconds 2 with time factor 2: the deadline passes after one second.
    store.apply(deployment(image=NEVER_READY, replicas=2, deadline=2))
    wait_for(lambda: status(store).get("observedGeneration") == 1)
    assert condition(store, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert condition(store, "Progressing")["status"] == "True"

    wait_for(lambda: condition(store, "Progressing")["reason"] == "ProgressDeadlineExceeded")

    stuck = status(store)
    assert stuck.get("updatedReplicas", 0) < 2
    assert condition(store, "Progressing")["status"] == "False"
    assert condition(store, "Available")["status"] == "False"
    assert controller.ready_pods("test") == []


def test_a_never_ready_update_keeps_the_old_pods_serving(
    store: Store, controller: WorkloadController
) -> None:
    store.apply(deployment(replicas=2, deadline=2))
    wait_for(lambda: complete(store))

    store.apply(deployment(image=NEVER_READY, replicas=2, deadline=2))
    wait_for(lambda: condition(store, "Progressing")["reason"] == "ProgressDeadlineExceeded")

    assert {p.image for p in controller.ready_pods("test")} == {GOOD}
    assert status(store)["readyReplicas"] == 2


def test_httproute_gets_accepted_parents_shortly_after_each_change(
    store: Store, controller: WorkloadController
) -> None:
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "contour"}
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "a", "port": 1}]}]},
    }
    store.apply(route)

    def accepted_generation() -> int | None:
        found = store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo") or {}
        parents = (found.get("status") or {}).get("parents") or []
        if not parents:
            return None
        assert parents[0]["parentRef"] == parent
        accepted = next(c for c in parents[0]["conditions"] if c["type"] == "Accepted")
        assert accepted["status"] == "True"
        return int(accepted["observedGeneration"])

    wait_for(lambda: accepted_generation() == 1)
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 2
    store.apply(route)
    assert accepted_generation() == 1  # not yet: the gateway takes a moment
    wait_for(lambda: accepted_generation() == 2)


def test_httpproxy_is_reported_valid(store: Store, controller: WorkloadController) -> None:
    store.apply(
        {
            "apiVersion": "projectcontour.io/v1",
            "kind": "HTTPProxy",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"routes": [{"services": [{"name": "podinfo-primary", "port": 9898}]}]},
        }
    )

    def proxy_status() -> dict[str, Any]:
        found = store.get("projectcontour.io/v1", "HTTPProxy", "test", "podinfo") or {}
        return dict(found.get("status") or {})

    wait_for(lambda: proxy_status().get("currentStatus") == "valid")
    assert proxy_status()["description"] == "valid HTTPProxy"
