"""The simulator's Flux-like applier against real git repos (bare remotes in tmp dirs)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.sim.applier import KUSTOMIZATION_API_VERSION, FluxLikeApplier
from gitops_canary.sim.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: podinfo
spec:
  selector: {app: podinfo}
  ports:
  - {name: http, port: 9898}
"""
HTTPROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
spec:
  parentRefs:
  - {name: contour, namespace: projectcontour}
  rules:
  - backendRefs:
    - {group: "", kind: Service, name: podinfo, port: 9898, weight: 100}
"""
KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: test
resources:
- deployment.yaml
- service.yaml
- httproute.yaml
"""


class GitRepo:
    """A working clone of a bare remote in a tmp dir, to commit and push like a person does."""

    def __init__(self, root: Path) -> None:
        self.remote = root / "remote.git"
        self.work = root / "work"
        self._git("init", "--quiet", "--bare", "--initial-branch=main", str(self.remote))
        self._git("clone", "--quiet", str(self.remote), str(self.work))
        self._git("checkout", "--quiet", "-b", "main", cwd=self.work)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or, with None, delete) files, commit, push; returns the new sha."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
        self._git("add", "--all", cwd=self.work)
        self._git("commit", "--quiet", "-m", message, cwd=self.work)
        self._git("push", "--quiet", "origin", "main", cwd=self.work)
        return self._git("rev-parse", "HEAD", cwd=self.work)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "git")
    repo.commit(
        {
            "apps/kustomization.yaml": KUSTOMIZATION,
            "apps/deployment.yaml": DEPLOYMENT,
            "apps/service.yaml": SERVICE,
            "apps/httproute.yaml": HTTPROUTE,
        },
        "initial",
    )
    return repo


def make_applier(store: Store, repo: GitRepo, tmp_path: Path, **kwargs: Any) -> FluxLikeApplier:
    return FluxLikeApplier(
        store,
        str(repo.remote),
        "main",
        {"apps": "./apps"},
        workdir=tmp_path / "applier",
        **kwargs,
    )


@pytest.fixture
def store() -> Store:
    return Store()


def kustomization(store: Store, name: str = "apps") -> dict[str, Any]:
    found = store.get(KUSTOMIZATION_API_VERSION, "Kustomization", "flux-system", name)
    assert found is not None
    return found


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_applies_the_repo_and_reports_the_revision(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    sha = repo._git("rev-parse", "HEAD", cwd=repo.work)
    applier = make_applier(store, repo, tmp_path)

    assert applier.apply_now() == f"main@sha1:{sha}"

    deployment = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":6.0.0")
    assert deployment["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "apps"
    assert store.get("v1", "Service", "test", "podinfo") is not None
    assert store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo") is not None
    flux = kustomization(store)
    assert flux["spec"]["path"] == "./apps"
    assert flux["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    assert flux["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert flux["status"]["lastAttemptedRevision"] == f"main@sha1:{sha}"
    assert flux["status"]["observedGeneration"] == flux["metadata"]["generation"]
    condition = ready(flux)
    assert (condition["status"], condition["reason"]) == ("True", "ReconciliationSucceeded")
    assert condition["message"] == f"Applied revision: main@sha1:{sha}"
    source = store.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert source is not None
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{sha}"


def test_a_new_commit_is_applied_and_the_ready_message_moves(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    applier = make_applier(store, repo, tmp_path)
    applier.apply_now()
    first = ready(kustomization(store))
    sha = repo.commit({"apps/deployment.yaml": DEPLOYMENT.replace("6.0.0", "6.0.1")})
    time.sleep(1.1)  # lastTransitionTime has one-second resolution

    applier.apply_now()

    deployment = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert deployment is not None
    assert deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":6.0.1")
    second = ready(kustomization(store))
    assert second["message"] == f"Applied revision: main@sha1:{sha}"
    assert second["lastTransitionTime"] > first["lastTransitionTime"]


def test_prunes_an_object_removed_from_the_repo(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    applier = make_applier(store, repo, tmp_path)
    applier.apply_now()
    assert store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo") is not None

    repo.commit(
        {
            "apps/httproute.yaml": None,
            "apps/kustomization.yaml": KUSTOMIZATION.replace("- httproute.yaml\n", ""),
        }
    )
    applier.apply_now()

    assert store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo") is None
    assert store.get("apps/v1", "Deployment", "test", "podinfo") is not None
    entries = [e["id"] for e in kustomization(store)["status"]["inventory"]["entries"]]
    assert entries == ["test_podinfo__Service", "test_podinfo_apps_Deployment"]


def test_a_broken_kustomization_is_ready_false_and_keeps_the_last_applied_objects(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    applier = make_applier(store, repo, tmp_path)
    good = applier.apply_now()
    bad_sha = repo.commit(
        {"apps/kustomization.yaml": KUSTOMIZATION + "- missing-file.yaml\n"}, "broken"
    )

    applier.apply_now()

    flux = kustomization(store)
    condition = ready(flux)
    assert (condition["status"], condition["reason"]) == ("False", "BuildFailed")
    assert "missing-file.yaml" in condition["message"]
    assert flux["status"]["lastAppliedRevision"] == good
    assert flux["status"]["lastAttemptedRevision"] == f"main@sha1:{bad_sha}"
    assert store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo") is not None


def test_an_unknown_kind_fails_the_whole_apply(store: Store, repo: GitRepo, tmp_path: Path) -> None:
    applier = make_applier(store, repo, tmp_path)
    applier.apply_now()
    repo.commit(
        {
            "apps/sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: podinfo}\n",
            "apps/deployment.yaml": DEPLOYMENT.replace("6.0.0", "6.0.1"),
            "apps/kustomization.yaml": KUSTOMIZATION + "- sa.yaml\n",
        }
    )

    applier.apply_now()

    condition = ready(kustomization(store))
    assert (condition["status"], condition["reason"]) == ("False", "ReconciliationFailed")
    assert "ServiceAccount/podinfo" in condition["message"]
    deployment = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":6.0.0")


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture
def running(store: Store, repo: GitRepo, tmp_path: Path) -> Iterator[FluxLikeApplier]:
    applier = make_applier(store, repo, tmp_path, interval=0.2)
    applier.start()
    try:
        yield applier
    finally:
        applier.stop()


def test_the_thread_follows_the_branch_and_a_paused_applier_does_not_move(
    store: Store, repo: GitRepo, running: FluxLikeApplier
) -> None:
    first = f"main@sha1:{repo._git('rev-parse', 'HEAD', cwd=repo.work)}"
    wait_for(lambda: running.last_applied_revision("apps") == first)

    running.pause()
    time.sleep(0.3)  # let a cycle that was already running finish
    second = repo.commit({"apps/deployment.yaml": DEPLOYMENT.replace("6.0.0", "6.0.1")})
    time.sleep(1.0)  # five intervals
    assert kustomization(store)["status"]["lastAppliedRevision"] == first

    running.resume()
    wait_for(lambda: kustomization(store)["status"]["lastAppliedRevision"] == f"main@sha1:{second}")


def test_without_kubectl_the_subset_reader_handles_namespace_and_images(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    repo.commit(
        {
            "apps/kustomization.yaml": KUSTOMIZATION
            + "images:\n- name: ghcr.io/stefanprodan/podinfo\n  newTag: 6.0.3\n"
        }
    )
    applier = make_applier(store, repo, tmp_path, kubectl=None)
    assert "subset reader" in applier.builder

    applier.apply_now()

    deployment = store.get("apps/v1", "Deployment", "test", "podinfo")
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/stefanprodan/podinfo:6.0.3"
    assert ready(kustomization(store))["status"] == "True"


def test_the_subset_reader_names_a_field_it_does_not_support(
    store: Store, repo: GitRepo, tmp_path: Path
) -> None:
    repo.commit({"apps/kustomization.yaml": KUSTOMIZATION + "commonLabels: {team: a}\n"})
    applier = make_applier(store, repo, tmp_path, kubectl=None)

    applier.apply_now()

    condition = ready(kustomization(store))
    assert condition["reason"] == "BuildFailed"
    assert "commonLabels" in condition["message"]
    assert "apps/kustomization.yaml" in condition["message"]


def test_an_unreachable_repo_reports_on_the_git_repository(store: Store, tmp_path: Path) -> None:
    applier = FluxLikeApplier(
        store, str(tmp_path / "nope.git"), "main", {"apps": "./apps"}, workdir=tmp_path / "a"
    )

    assert applier.apply_now() is None

    source = store.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert source is not None
    condition = source["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "GitOperationFailed")
    assert "nope.git" in condition["message"]
