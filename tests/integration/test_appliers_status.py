"""Has Flux / Argo CD / the live cluster applied a commit? Objects come from the simulator's API
server through the real client; ancestry comes from a real git repository."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.observe.appliers import (
    AppliedState,
    ArgoApplicationApplier,
    CompareLiveApplier,
    FluxKustomizationApplier,
    parse_flux_revision,
)
from gitops_canary.observe.cluster import ClusterError, ClusterReader
from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FLUX = "kustomize.toolkit.fluxcd.io/v1"
ARGO = "argoproj.io/v1alpha1"
APPLIED_AT = "2025-06-01T12:00:00Z"


@dataclass(frozen=True)
class History:
    """main: first -> second -> third; side branches off first."""

    first: str
    second: str
    third: str
    side: str
    is_ancestor: Callable[[str, str], bool]


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo),
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    repo = tmp_path_factory.mktemp("config-repo")
    _git(repo, "init", "-q", "-b", "main")
    shas = []
    for step in ("first", "second", "third"):
        _git(repo, "commit", "-q", "--allow-empty", "-m", step)
        shas.append(_git(repo, "rev-parse", "HEAD"))
    _git(repo, "checkout", "-q", "-b", "side", shas[0])
    _git(repo, "commit", "-q", "--allow-empty", "-m", "side")
    side = _git(repo, "rev-parse", "HEAD")

    def is_ancestor(ancestor: str, descendant: str) -> bool:
        done = subprocess.run(
            ["git", "-C", str(repo), "merge-base", "--is-ancestor", ancestor, descendant],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    return History(shas[0], shas[1], shas[2], side, is_ancestor)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, ClusterReader]]:
    api = ApiServer(Store()).start()
    reader = ClusterReader.from_kubeconfig(api.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield api.store, reader
    finally:
        reader.close()
        api.stop()


def put(store: Store, manifest: dict[str, Any], status: dict[str, Any]) -> None:
    created = store.apply(manifest)
    meta = created["metadata"]
    store.update_status(
        created["apiVersion"], created["kind"], meta["namespace"], meta["name"], status
    )


# -- Flux ------------------------------------------------------------------------------------------


def kustomization(
    store: Store,
    revision: str | None,
    *,
    ready: str = "True",
    observed: int = 1,
    reason: str = "ReconciliationSucceeded",
    message: str = "Applied",
) -> None:
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "conditions": [
            {
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "message": message,
                "lastTransitionTime": APPLIED_AT,
            }
        ],
    }
    if revision is not None:
        status["lastAppliedRevision"] = revision
    put(
        store,
        {
            "apiVersion": FLUX,
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": "./apps", "interval": "1m", "prune": True},
        },
        status,
    )


def flux(reader: ClusterReader) -> FluxKustomizationApplier:
    return FluxKustomizationApplier(reader, "flux-system", "apps")


@pytest.mark.parametrize("form", ["main@sha1:{}", "sha1:{}", "main/{}", "v1.0.0@sha1:{}"])
def test_flux_applied_for_every_revision_form(
    served: tuple[Store, ClusterReader], history: History, form: str
) -> None:
    store, reader = served
    kustomization(store, form.format(history.second))
    state = flux(reader).applied(history.second, history.is_ancestor)
    assert state == AppliedState(
        True,
        datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        history.second,
        f"Flux Kustomization flux-system/apps has applied {history.second[:7]} and is Ready",
    )


def test_flux_applied_descendant_counts_and_side_branch_does_not(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    kustomization(store, f"main/{history.third}")  # legacy form
    assert flux(reader).applied(history.first, history.is_ancestor).applied
    side = flux(reader).applied(history.side, history.is_ancestor)
    assert not side.applied
    assert side.message == (
        f"waiting for Flux Kustomization flux-system/apps to apply {history.side[:7]} "
        f"(it has applied {history.third[:7]})"
    )


def test_flux_not_applied_yet(served: tuple[Store, ClusterReader], history: History) -> None:
    store, reader = served
    kustomization(store, f"main@sha1:{history.second}")
    state = flux(reader).applied(history.third, history.is_ancestor)
    assert state == AppliedState(
        False,
        None,
        history.second,
        f"waiting for Flux Kustomization flux-system/apps to apply {history.third[:7]} "
        f"(it has applied {history.second[:7]})",
    )


def test_flux_requires_ready(served: tuple[Store, ClusterReader], history: History) -> None:
    store, reader = served
    kustomization(
        store,
        f"main@sha1:{history.third}",
        ready="False",
        reason="HealthCheckFailed",
        message="timeout waiting for: [Deployment/test/podinfo status: 'InProgress']",
    )
    state = flux(reader).applied(history.third, history.is_ancestor)
    assert not state.applied
    assert state.message == (
        f"waiting for Flux Kustomization flux-system/apps to apply {history.third[:7]} (it has "
        f"applied {history.third[:7]} but has Ready is False: HealthCheckFailed: timeout waiting "
        "for: [Deployment/test/podinfo status: 'InProgress'])"
    )


def test_flux_health_check_failure_of_an_attempted_revision_counts_as_applied(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    # With wait: true Flux keeps lastAppliedRevision back while a Deployment is unhealthy; the
    # objects are applied, so the engine must see the step and let the progress deadline act.
    store, reader = served
    kustomization(
        store,
        f"main@sha1:{history.first}",
        ready="False",
        reason="HealthCheckFailed",
        message="timeout waiting for: [Deployment/test/podinfo status: 'InProgress']",
    )
    status = store.get(FLUX, "Kustomization", "flux-system", "apps")
    assert status is not None
    store.update_status(
        FLUX,
        "Kustomization",
        "flux-system",
        "apps",
        {**status["status"], "lastAttemptedRevision": f"main@sha1:{history.third}"},
    )
    state = flux(reader).applied(history.second, history.is_ancestor)
    assert state.applied
    assert state.revision == history.third
    assert state.applied_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert "health check fails" in state.message


def test_flux_requires_current_observed_generation(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    kustomization(store, f"main@sha1:{history.third}", observed=0)
    state = flux(reader).applied(history.third, history.is_ancestor)
    assert not state.applied
    assert "observed generation 0, current generation 1" in state.message


def test_flux_missing_or_never_applied(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    missing = flux(reader).applied(history.first, history.is_ancestor)
    assert missing.message == "Flux Kustomization flux-system/apps does not exist in the cluster"
    kustomization(store, None)
    never = flux(reader).applied(history.first, history.is_ancestor)
    assert never.message.endswith("(it has not applied anything yet)")


def test_parse_flux_revision_forms() -> None:
    sha = "0f9e8d7c6b5a49382716" + "0f9e8d7c6b5a49382716"
    assert parse_flux_revision(f"main@sha1:{sha}") == sha
    assert parse_flux_revision(f"refs/heads/main@sha1:{sha.upper()}") == sha
    assert parse_flux_revision(f"HEAD/{sha}") == sha
    assert parse_flux_revision("main@sha256:not-hex") is None
    assert parse_flux_revision(None) is None


def test_flux_cluster_errors_propagate_with_the_object_named(
    tmp_path: Path, history: History
) -> None:
    api = ApiServer(Store()).start()
    try:
        reader = ClusterReader.from_kubeconfig(api.write_kubeconfig(tmp_path / "kubeconfig"))
        api.set_fault("kustomizations", status=403)
        with pytest.raises(ClusterError, match=r"^cannot get kustomizations flux-system/apps: 403"):
            flux(reader).applied(history.first, history.is_ancestor)
        reader.close()
    finally:
        api.stop()


# -- Argo CD ---------------------------------------------------------------------------------------


def application(
    store: Store, status: dict[str, Any], operation: dict[str, Any] | None = None
) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": ARGO,
        "kind": "Application",
        "metadata": {"name": "apps", "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://git.example.com/config", "path": "apps"}},
    }
    if operation is not None:
        manifest["operation"] = operation
    put(store, manifest, status)


def argo_status(sync_revision: str, op_revision: str, **changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "sync": {"status": "Synced", "revision": sync_revision},
        "health": {"status": "Healthy"},
        "reconciledAt": "2025-06-01T12:00:30Z",
        "operationState": {
            "phase": "Succeeded",
            "finishedAt": APPLIED_AT,
            "syncResult": {"revision": op_revision},
        },
    }
    status.update(changes)
    return status


def argo(reader: ClusterReader) -> ArgoApplicationApplier:
    return ArgoApplicationApplier(reader, "argocd", "apps")


def test_argo_applied_with_descendant_revision(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    application(store, argo_status(history.third, history.third))
    state = argo(reader).applied(history.second, history.is_ancestor)
    assert state == AppliedState(
        True,
        datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        history.third,
        f"Argo CD Application argocd/apps has synced {history.third[:7]} and is Healthy",
    )


def test_argo_multi_source_revisions(served: tuple[Store, ClusterReader], history: History) -> None:
    store, reader = served
    status = argo_status(history.third, history.third)
    status["sync"] = {
        "status": "Synced",
        "revisions": ["ffffffffffffffffffffffffffffffffffffffff", history.third],
    }
    application(store, status)
    assert argo(reader).applied(history.third, history.is_ancestor).applied


def test_argo_sync_that_predates_the_commit_gives_no_time(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    # The app is Synced at the new commit but its last sync operation ran for an older one.
    application(store, argo_status(history.third, history.first))
    state = argo(reader).applied(history.third, history.is_ancestor)
    assert state.applied
    assert state.applied_at is None


@pytest.mark.parametrize(
    ("changes", "operation", "why"),
    [
        (
            {"sync": {"status": "OutOfSync", "revision": "{third}"}},
            None,
            "sync status is OutOfSync, not Synced",
        ),
        ({"health": {"status": "Progressing"}}, None, "health is Progressing, not Healthy"),
        ({}, {"sync": {"revision": "{third}"}}, "a sync operation is queued or running"),
        (
            {"reconciledAt": "2025-06-01T11:59:59Z"},
            None,
            "it has not compared the cluster since its last sync finished",
        ),
        (
            {"conditions": [{"type": "ComparisonError", "message": "rpc error: repo not found"}]},
            None,
            "ComparisonError: rpc error: repo not found",
        ),
    ],
)
def test_argo_not_applied_until_synced_healthy_and_settled(
    served: tuple[Store, ClusterReader],
    history: History,
    changes: dict[str, Any],
    operation: dict[str, Any] | None,
    why: str,
) -> None:
    store, reader = served
    status = argo_status(history.third, history.third)
    for key, value in changes.items():
        status[key] = (
            {
                k: v.format(third=history.third) if isinstance(v, str) else v
                for k, v in value.items()
            }
            if isinstance(value, dict)
            else value
        )
    application(store, status, operation)
    state = argo(reader).applied(history.third, history.is_ancestor)
    assert not state.applied
    assert state.message == (
        f"waiting for Argo CD Application argocd/apps to apply {history.third[:7]} ({why})"
    )


def test_argo_older_revision(served: tuple[Store, ClusterReader], history: History) -> None:
    store, reader = served
    application(store, argo_status(history.second, history.second))
    state = argo(reader).applied(history.third, history.is_ancestor)
    assert state == AppliedState(
        False,
        None,
        history.second,
        f"waiting for Argo CD Application argocd/apps to apply {history.third[:7]} "
        f"(it has synced {history.second[:7]})",
    )


# -- compare live ----------------------------------------------------------------------------------


def committed_primary(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podinfo-primary",
            "namespace": "test",
            "labels": {"app.kubernetes.io/managed-by": "gitops-canary"},
        },
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}},
        },
    }


def test_compare_live_ignores_server_added_fields(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    live = committed_primary("podinfo:6.0.1")
    live["spec"]["progressDeadlineSeconds"] = 600  # a server default the commit does not have
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    put(store, live, {"replicas": 2})
    state = CompareLiveApplier(reader).applied(
        history.third, history.is_ancestor, [committed_primary("podinfo:6.0.1")]
    )
    assert state == AppliedState(
        True, None, history.third, f"the cluster matches commit {history.third[:7]} (compared live)"
    )


def test_compare_live_reports_the_first_difference_and_missing_objects(
    served: tuple[Store, ClusterReader], history: History
) -> None:
    store, reader = served
    put(store, committed_primary("podinfo:6.0.0"), {})
    differs = CompareLiveApplier(reader).applied(
        history.third, history.is_ancestor, [committed_primary("podinfo:6.0.1")]
    )
    assert not differs.applied
    assert differs.message == (
        f"waiting for the cluster to match commit {history.third[:7]} (Deployment "
        "test/podinfo-primary differs at spec.template.spec.containers[0].image)"
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "podinfo-canary", "namespace": "test"},
        "spec": {},
    }
    missing = CompareLiveApplier(reader).applied(
        history.third, history.is_ancestor, [committed_primary("podinfo:6.0.0"), service]
    )
    assert missing.message.endswith("(Service test/podinfo-canary does not exist)")
