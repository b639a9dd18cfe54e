"""ClusterReader against the simulator's API server: reads, and every way a read can fail."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.observe.cluster import ClusterError, ClusterReader
from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def deployment(name: str, namespace: str = "test", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": 1},
    }


@pytest.fixture
def server() -> Iterator[ApiServer]:
    api = ApiServer(Store()).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def reader(server: ApiServer, tmp_path: Path) -> Iterator[ClusterReader]:
    cluster = ClusterReader.from_kubeconfig(server.write_kubeconfig(tmp_path / "kubeconfig"))
    yield cluster
    cluster.close()


def test_get_returns_plain_dicts_for_core_apps_and_custom_kinds(
    server: ApiServer, reader: ClusterReader
) -> None:
    server.store.apply(deployment("podinfo"))
    server.store.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "podinfo", "namespace": "test"},
        }
    )
    server.store.apply(
        {
            "apiVersion": "projectcontour.io/v1",
            "kind": "HTTPProxy",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"routes": []},
        }
    )
    dep = reader.get("apps/v1", "Deployment", "test", "podinfo")
    assert dep is not None
    assert dep["spec"] == {"replicas": 1}
    svc = reader.get("v1", "Service", "test", "podinfo")
    assert svc is not None
    assert svc["kind"] == "Service"
    proxy = reader.get("projectcontour.io/v1", "HTTPProxy", "test", "podinfo")
    assert proxy is not None
    assert proxy["spec"] == {"routes": []}


def test_get_missing_object_is_none(reader: ClusterReader) -> None:
    assert reader.get("apps/v1", "Deployment", "test", "podinfo") is None
    assert reader.get("argoproj.io/v1alpha1", "Application", "argocd", "apps") is None


def test_list_in_one_namespace_all_namespaces_and_by_label(
    server: ApiServer, reader: ClusterReader
) -> None:
    server.store.apply(deployment("podinfo", "test", app="podinfo"))
    server.store.apply(deployment("podinfo", "prod", app="podinfo"))
    server.store.apply(deployment("other", "test", app="other"))
    names = [d["metadata"]["name"] for d in reader.list("apps/v1", "Deployment", "test")]
    assert names == ["other", "podinfo"]
    everywhere = reader.list("apps/v1", "Deployment", label_selector="app=podinfo")
    assert sorted(d["metadata"]["namespace"] for d in everywhere) == ["prod", "test"]


def test_forbidden_names_verb_object_and_server_text(
    server: ApiServer, reader: ClusterReader
) -> None:
    server.store.apply(deployment("podinfo"))
    server.set_fault(r"/namespaces/test/deployments/podinfo$", status=403)
    with pytest.raises(ClusterError) as caught:
        reader.get("apps/v1", "Deployment", "test", "podinfo")
    assert str(caught.value) == (
        'cannot get deployments test/podinfo: 403 Forbidden: deployments.apps "podinfo" is '
        'forbidden: User "system:serviceaccount:gitops-canary:gitops-canary" cannot get '
        'resource "deployments" in API group "apps" in the namespace "test"'
    )
    assert caught.value.__cause__ is None  # reported as one line, not a chained traceback


def test_forbidden_list_of_secrets(server: ApiServer, reader: ClusterReader) -> None:
    server.set_fault(r"/api/v1/namespaces/test/secrets$", status=403)
    with pytest.raises(
        ClusterError, match=r"^cannot list secrets in namespace test: 403 Forbidden: "
    ):
        reader.list("v1", "Secret", "test")


def test_server_error_with_a_raw_body(server: ApiServer, reader: ClusterReader) -> None:
    server.set_fault("kustomizations", status=500, body="etcdserver: request timed out")
    with pytest.raises(ClusterError) as caught:
        reader.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "apps")
    assert str(caught.value) == (
        "cannot get kustomizations flux-system/apps: 500 Internal Server Error: "
        "etcdserver: request timed out"
    )


def test_server_error_as_status(server: ApiServer, reader: ClusterReader) -> None:
    server.set_fault("httproutes", status=503)
    with pytest.raises(ClusterError, match=r"^cannot get httproutes test/podinfo: 503 Service"):
        reader.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")


def test_not_json_answer(server: ApiServer, reader: ClusterReader) -> None:
    server.set_fault("deployments", status=200, body="<html>proxy login</html>")
    with pytest.raises(ClusterError, match=r"cannot get deployments test/podinfo: .*not JSON"):
        reader.get("apps/v1", "Deployment", "test", "podinfo")


def test_a_slow_server_times_out_quickly(server: ApiServer, tmp_path: Path) -> None:
    slow = ClusterReader.from_kubeconfig(
        server.write_kubeconfig(tmp_path / "kubeconfig"), timeout_seconds=0.3
    )
    server.set_fault("deployments", delay=5.0)
    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        slow.get("apps/v1", "Deployment", "test", "podinfo")
    assert time.monotonic() - started < 2.0  # one attempt, no retries
    assert str(caught.value) == (
        f"cannot get deployments test/podinfo: {server.url} did not answer within 0.3s"
    )
    slow.close()


def test_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = ApiServer(Store(), port=port)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.stop()  # never started: the port is free again and nobody answers
    cluster = ClusterReader.from_kubeconfig(kubeconfig, timeout_seconds=1)
    with pytest.raises(ClusterError, match=r"^cannot get services test/podinfo: cannot reach "):
        cluster.get("v1", "Service", "test", "podinfo")
    cluster.close()


def test_unreadable_kubeconfig_and_unknown_context(server: ApiServer, tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"^cannot load kubeconfig .*missing"):
        ClusterReader.from_kubeconfig(tmp_path / "missing")
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    with pytest.raises(ClusterError, match=r"\(context 'prod'\)"):
        ClusterReader.from_kubeconfig(kubeconfig, context="prod")


def test_a_kind_it_does_not_read_is_refused_without_asking(reader: ClusterReader) -> None:
    with pytest.raises(
        ClusterError, match="gitops-canary does not read apiVersion 'v1' kind 'Pod'"
    ):
        reader.get("v1", "Pod", "test", "podinfo")


def test_in_cluster_outside_a_pod_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="in-cluster service account"):
        ClusterReader.in_cluster()
