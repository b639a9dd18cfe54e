"""The simulator's store and API server, driven through the real ``kubernetes`` client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.kinds import KINDS, UnknownKind, kind_for
from gitops_canary.sim.store import InvalidObject, Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def deployment(name: str = "podinfo", namespace: str = "test", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
    }


def route(name: str = "podinfo", version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": f"gateway.networking.k8s.io/{version}",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"parentRefs": [{"name": "contour"}]},
    }


@pytest.fixture
def server() -> Iterator[ApiServer]:
    api = ApiServer(Store()).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def api_client(server: ApiServer, tmp_path: Path) -> Any:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    return new_client(kubeconfig)


def new_client(kubeconfig: Path) -> Any:
    """The official client (partly typed: ``Any`` keeps raw ``_preload_content`` answers usable)."""
    return config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]


# -- kinds and store -----------------------------------------------------------------------------


def test_kind_for_unknown_names_the_kind_and_what_is_served() -> None:
    assert kind_for("apps/v1", "Deployment").plural == "deployments"
    assert not kind_for("v1", "Namespace").namespaced
    with pytest.raises(UnknownKind, match=r"'apps/v1' kind 'StatefulSet'.*it serves: v1 Namespace"):
        kind_for("apps/v1", "StatefulSet")
    assert len({(k.api_version, k.kind) for k in KINDS}) == len(KINDS)


def test_store_apply_sets_server_metadata_and_bumps_generation_on_spec_change() -> None:
    store = Store()
    created = store.apply(deployment())
    meta = created["metadata"]
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    first_version = int(meta["resourceVersion"])

    relabelled = deployment()
    relabelled["metadata"]["labels"]["team"] = "a"
    after_labels = store.apply(relabelled)["metadata"]
    assert after_labels["generation"] == 1
    assert int(after_labels["resourceVersion"]) > first_version
    assert after_labels["uid"] == meta["uid"]

    scaled = store.apply(deployment(replicas=3))["metadata"]
    assert scaled["generation"] == 2
    assert "team" not in scaled["labels"]  # replace, not merge


def test_store_keeps_status_across_apply_and_update_status_moves_only_resource_version() -> None:
    store = Store()
    store.apply(deployment())
    with_status = store.update_status("apps/v1", "Deployment", "test", "podinfo", {"replicas": 2})
    assert with_status is not None
    assert with_status["metadata"]["generation"] == 1
    incoming = deployment(replicas=4)
    incoming["status"] = {"replicas": 99}  # a manifest cannot overwrite status
    updated = store.apply(incoming)
    assert updated["status"] == {"replicas": 2}
    assert updated["metadata"]["generation"] == 2
    assert store.update_status("apps/v1", "Deployment", "test", "missing", {}) is None


def test_store_reapplying_identical_content_is_a_no_op() -> None:
    store = Store()
    events: list[str] = []
    store.subscribe(lambda event, obj: events.append(event))
    first = store.apply(deployment())
    again = store.apply(deployment())
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert events == ["ADDED"]


def test_store_copies_in_and_out() -> None:
    store = Store()
    manifest = deployment()
    store.apply(manifest)
    manifest["spec"]["replicas"] = 50
    got = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert got is not None
    got["spec"]["replicas"] = 60
    again = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert again is not None
    assert again["spec"]["replicas"] == 2


def test_store_list_delete_and_events_in_order() -> None:
    store = Store()
    seen: list[tuple[str, str, str | None]] = []

    def record(event: str, obj: dict[str, Any]) -> None:
        # Called outside the lock: reading back from another thread must not block.
        reader = threading.Thread(target=store.all)
        reader.start()
        reader.join(timeout=2)
        assert not reader.is_alive()
        seen.append((event, obj["metadata"]["name"], obj["metadata"].get("namespace")))

    store.subscribe(record)
    store.apply(deployment("b", "test"))
    store.apply(deployment("a", "test"))
    store.apply(deployment("c", "other"))
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}})
    assert [d["metadata"]["name"] for d in store.list("apps/v1", "Deployment")] == ["c", "a", "b"]
    assert [d["metadata"]["name"] for d in store.list("apps/v1", "Deployment", "test")] == [
        "a",
        "b",
    ]
    assert store.delete("apps/v1", "Deployment", "test", "a")
    assert not store.delete("apps/v1", "Deployment", "test", "a")
    assert seen == [
        ("ADDED", "b", "test"),
        ("ADDED", "a", "test"),
        ("ADDED", "c", "other"),
        ("ADDED", "test", None),
        ("DELETED", "a", "test"),
    ]
    assert len(store.all()) == 3


def test_store_httproute_versions_share_storage() -> None:
    store = Store()
    store.apply(route(version="v1"))
    beta = store.get("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "test", "podinfo")
    assert beta is not None
    assert beta["apiVersion"] == "gateway.networking.k8s.io/v1beta1"


def test_store_rejects_bad_manifests_with_the_field_named() -> None:
    store = Store()
    with pytest.raises(InvalidObject, match=r"apps/v1 Deployment \?: metadata.name must be"):
        store.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}})
    with pytest.raises(InvalidObject, match="apiVersion and kind must be strings"):
        store.apply({"kind": "Deployment", "metadata": {"name": "x"}})
    with pytest.raises(UnknownKind):
        store.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})


# -- API server through the real client ----------------------------------------------------------


def test_typed_client_reads_a_deployment_and_the_server_says_it_is_a_simulator(
    server: ApiServer, api_client: Any
) -> None:
    server.store.apply(deployment())
    apps: Any = client.AppsV1Api(api_client)
    response = apps.read_namespaced_deployment("podinfo", "test", _preload_content=False)
    assert response.headers["Server"].startswith("gitops-canary-sim")
    body = json.loads(response.data)
    assert body["apiVersion"] == "apps/v1"
    assert body["metadata"]["generation"] == 1


def test_discovery_lets_the_dynamic_client_find_every_kind(
    server: ApiServer, api_client: Any
) -> None:
    server.store.apply(route())
    dynamic: Any = DynamicClient(api_client)  # type: ignore[no-untyped-call]
    routes = dynamic.resources.get(api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute")
    assert routes.get(namespace="test", name="podinfo").spec.parentRefs[0].name == "contour"
    for kind in KINDS:
        found = dynamic.resources.get(api_version=kind.api_version, kind=kind.kind)
        assert found.namespaced == kind.namespaced
    assert client.VersionApi(api_client).get_code().git_version.endswith("gitops-canary-sim")


def test_list_across_namespaces_with_label_selector(server: ApiServer, api_client: Any) -> None:
    server.store.apply(deployment("podinfo", "test"))
    server.store.apply(deployment("podinfo", "prod"))
    server.store.apply(deployment("other", "test"))
    apps: Any = client.AppsV1Api(api_client)
    raw = apps.list_deployment_for_all_namespaces(
        label_selector="app=podinfo", _preload_content=False
    )
    listed = json.loads(raw.data)
    assert listed["kind"] == "DeploymentList"
    assert int(listed["metadata"]["resourceVersion"]) >= 3
    assert sorted(i["metadata"]["namespace"] for i in listed["items"]) == ["prod", "test"]
    set_based = json.loads(
        apps.list_namespaced_deployment(
            "test", label_selector="app in (other, nope),!team", _preload_content=False
        ).data
    )
    assert [i["metadata"]["name"] for i in set_based["items"]] == ["other"]


def test_missing_object_is_a_real_not_found_status(api_client: Any) -> None:
    custom: Any = client.CustomObjectsApi(api_client)
    with pytest.raises(client.ApiException) as caught:
        custom.get_namespaced_custom_object(
            "projectcontour.io", "v1", "test", "httpproxies", "podinfo"
        )
    assert caught.value.status == 404
    status = json.loads(caught.value.body or "")
    assert status["kind"] == "Status"
    assert status["reason"] == "NotFound"
    assert status["message"] == 'httpproxies.projectcontour.io "podinfo" not found'


def test_write_verbs_create_patch_replace_status_and_delete(
    server: ApiServer, api_client: Any
) -> None:
    custom: Any = client.CustomObjectsApi(api_client)
    group, version, plural = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"path": "./apps", "interval": "1m"},
    }
    created = custom.create_namespaced_custom_object(group, version, "flux-system", plural, body)
    assert created["metadata"]["generation"] == 1
    with pytest.raises(client.ApiException) as conflict:
        custom.create_namespaced_custom_object(group, version, "flux-system", plural, body)
    assert conflict.value.status == 409

    patched = custom.patch_namespaced_custom_object(
        group, version, "flux-system", plural, "apps", {"spec": {"interval": None, "prune": True}}
    )
    assert patched["spec"] == {"path": "./apps", "prune": True}
    assert patched["metadata"]["generation"] == 2

    custom.patch_namespaced_custom_object_status(
        group, version, "flux-system", plural, "apps", {"status": {"observedGeneration": 2}}
    )
    stored = server.store.get(f"{group}/{version}", "Kustomization", "flux-system", "apps")
    assert stored is not None
    assert stored["status"] == {"observedGeneration": 2}

    replaced = custom.replace_namespaced_custom_object(
        group, version, "flux-system", plural, "apps", {**body, "spec": {"path": "./other"}}
    )
    assert replaced["spec"] == {"path": "./other"}
    assert replaced["status"] == {"observedGeneration": 2}

    custom.delete_namespaced_custom_object(group, version, "flux-system", plural, "apps")
    assert server.store.get(f"{group}/{version}", "Kustomization", "flux-system", "apps") is None


def test_injected_forbidden_is_a_real_status_and_faults_clear(
    server: ApiServer, api_client: Any
) -> None:
    server.store.apply(deployment())
    server.set_fault(r"/deployments/podinfo$", status=403)
    apps: Any = client.AppsV1Api(api_client)
    with pytest.raises(client.ApiException) as caught:
        apps.read_namespaced_deployment("podinfo", "test", _preload_content=False)
    status = json.loads(caught.value.body or "")
    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"].startswith(
        'deployments.apps "podinfo" is forbidden: User '
        '"system:serviceaccount:gitops-canary:gitops-canary" cannot get resource "deployments" '
        'in API group "apps" in the namespace "test"'
    )
    server.clear_faults()
    assert apps.read_namespaced_deployment("podinfo", "test", _preload_content=False).status == 200


def test_bearer_token_is_checked_when_configured(tmp_path: Path) -> None:
    api = ApiServer(Store(), token="sim-token").start()  # a test value, not a credential
    try:
        api.store.apply(deployment())
        good = new_client(api.write_kubeconfig(tmp_path / "good", token="sim-token"))
        bad = new_client(api.write_kubeconfig(tmp_path / "bad", token="wrong"))
        ok = client.AppsV1Api(good).read_namespaced_deployment(
            "podinfo", "test", _preload_content=False
        )
        assert ok.status == 200
        with pytest.raises(client.ApiException) as caught:
            client.AppsV1Api(bad).read_namespaced_deployment(
                "podinfo", "test", _preload_content=False
            )
        assert caught.value.status == 401
        assert json.loads(caught.value.body or "")["reason"] == "Unauthorized"
    finally:
        api.stop()


def test_unknown_resource_path_is_not_found(api_client: Any) -> None:
    custom: Any = client.CustomObjectsApi(api_client)
    with pytest.raises(client.ApiException) as caught:
        custom.list_cluster_custom_object("example.com", "v1", "widgets")
    assert caught.value.status == 404
    assert "does not serve resource 'widgets'" in json.loads(caught.value.body or "")["message"]
