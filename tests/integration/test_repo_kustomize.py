"""The kustomize reader against the real ``kubectl kustomize``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.repo.kustomize import (
    KustomizeError,
    build,
    includes,
    kubectl_build,
    rewrite_image,
    split_image,
)

FIXTURES = Path(__file__).parent / "repo_fixtures"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata", {})
    return (obj["kind"], metadata.get("namespace", ""), metadata["name"])


def _assert_same_as_kubectl(directory: Path, repo_root: Path) -> None:
    ours = {_key(r.data): r.data for r in build(directory, repo_root).resources}
    theirs = {_key(obj): obj for obj in kubectl_build(directory)}
    assert ours == theirs


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: written-here
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - name: init
        image: busybox:1.36
      containers:
      - name: web
        image: ghcr.io/acme/web:1.0.0
      - name: pinned
        image: ghcr.io/acme/web@sha256:DIGEST
      - name: other
        image: docker.io/library/nginx
""".replace("DIGEST", "1" * 64)


@needs_kubectl
def test_fixture_podinfo_matches_kubectl() -> None:
    root = FIXTURES / "flux"
    _assert_same_as_kubectl(root / "apps" / "podinfo", root)


@needs_kubectl
def test_namespace_and_images_match_kubectl(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "base/kustomization.yaml": "namespace: inner\nresources: [deployment.yaml, cm.yaml]\n"
            "images:\n- name: busybox\n  newTag: '1.37'\n",
            "base/deployment.yaml": DEPLOYMENT,
            "base/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n"
            ),
            "overlay/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                "namespace: test\nresources:\n- ../base\n- extra.yaml\n"
                "images:\n"
                "- name: ghcr.io/acme/web\n  newTag: 2.0.0\n"
                "- name: busybox\n  newName: mirror.local/busybox\n  digest: sha256:2222\n"
                "- name: docker.io/library/nginx\n  newName: nginx\n  newTag: '1.27'\n"
            ),
            "overlay/extra.yaml": (
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n"
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: something}\n"
            ),
        },
    )
    _assert_same_as_kubectl(tmp_path / "overlay", tmp_path)
    result = build(tmp_path / "overlay", tmp_path)
    deployment = next(r for r in result.resources if r.kind == "Deployment")
    assert deployment.file == "base/deployment.yaml"
    assert deployment.index == 0
    assert deployment.namespace == "test"  # kustomize overrides the manifest's namespace
    images = [c["image"] for c in deployment.data["spec"]["template"]["spec"]["containers"]]
    assert images == ["ghcr.io/acme/web:2.0.0", "ghcr.io/acme/web:2.0.0", "nginx:1.27"]
    assert result.kustomization_files == ["overlay/kustomization.yaml", "base/kustomization.yaml"]
    assert not result.uses_patches


@needs_kubectl
def test_components_match_kubectl(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [deployment.yaml]\ncomponents: [../pin]\n",
            "app/deployment.yaml": DEPLOYMENT,
            "pin/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "resources: [svc.yaml]\nimages:\n- name: ghcr.io/acme/web\n  newTag: 3.0.0\n"
            ),
            "pin/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
            "spec: {ports: [{port: 80}]}\n",
        },
    )
    _assert_same_as_kubectl(tmp_path / "app", tmp_path)


def test_unapplied_fields_are_recorded(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/kustomization.yaml": (
                "resources: [deployment.yaml]\ncommonLabels: {team: web}\n"
                "patches:\n- path: patch.yaml\nreplicas:\n- name: web\n  count: 2\n"
            ),
            "app/deployment.yaml": DEPLOYMENT,
        },
    )
    result = build(tmp_path / "app", tmp_path)
    assert result.uses_patches
    assert result.unapplied == [
        "app/kustomization.yaml: patches",
        "app/kustomization.yaml: replicas",
    ]
    assert result.labels == {"team": "web"}


def test_errors_name_the_file_and_the_entry(tmp_path: Path) -> None:
    _write(
        tmp_path, {"app/kustomization.yaml": "resources:\n- deployment.yaml\n- deploymnt.yaml\n"}
    )
    _write(tmp_path, {"app/deployment.yaml": DEPLOYMENT})
    with pytest.raises(KustomizeError) as error:
        build(tmp_path / "app", tmp_path)
    assert str(error.value) == (
        "app/kustomization.yaml: resources[1] 'deploymnt.yaml': no such file or directory"
    )

    _write(tmp_path, {"bad/kustomization.yaml": "resources: deployment.yaml\n"})
    with pytest.raises(KustomizeError, match=r"^bad/kustomization.yaml: resources must be a list"):
        build(tmp_path / "bad", tmp_path)

    _write(tmp_path, {"yaml/kustomization.yaml": "resources: [a\n"})
    with pytest.raises(KustomizeError, match=r"^yaml/kustomization.yaml: invalid YAML"):
        build(tmp_path / "yaml", tmp_path)

    _write(tmp_path, {"loop/a/kustomization.yaml": "resources: [../b]\n"})
    _write(tmp_path, {"loop/b/kustomization.yaml": "resources: [../a]\n"})
    with pytest.raises(KustomizeError, match="include each other"):
        build(tmp_path / "loop" / "a", tmp_path)

    _write(tmp_path, {"out/kustomization.yaml": "resources: [../../elsewhere]\n"})
    with pytest.raises(KustomizeError, match="outside the repository"):
        build(tmp_path / "out", tmp_path)


def test_includes_lists_files_and_directories(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/kustomization.yml": "resources: [deployment.yaml, gitops-canary/web]\n",
            "app/deployment.yaml": DEPLOYMENT,
            "app/gitops-canary/web/kustomization.yaml": "resources: []\n",
            "app/unlisted.yaml": DEPLOYMENT,
        },
    )
    found = includes(tmp_path / "app", tmp_path)
    assert (tmp_path / "app/gitops-canary/web").resolve() in found
    assert (tmp_path / "app/deployment.yaml").resolve() in found
    assert (tmp_path / "app/unlisted.yaml").resolve() not in found


def test_directory_without_kustomization_reads_like_flux(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "apps/a.yaml": DEPLOYMENT,
            "apps/notes.yaml": "just: data\n",
            "apps/sub/kustomization.yaml": "namespace: sub\nresources: [cm.yaml]\n",
            "apps/sub/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "apps/sub/unlisted.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u}\n",
        },
    )
    result = build(tmp_path / "apps", tmp_path)
    assert sorted((r.file, r.namespace) for r in result.resources) == [
        ("apps/a.yaml", "written-here"),
        ("apps/sub/cm.yaml", "sub"),
    ]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ("nginx", "", "")),
        ("nginx:1.2", ("nginx", "1.2", "")),
        ("localhost:5000/nginx:1.2", ("localhost:5000/nginx", "1.2", "")),
        ("nginx@sha256:ab", ("nginx", "", "sha256:ab")),
        ("reg/nginx:1.2@sha256:ab", ("reg/nginx", "1.2", "sha256:ab")),
    ],
)
def test_split_image(reference: str, expected: tuple[str, str, str]) -> None:
    assert split_image(reference) == expected


def test_rewrite_image_matches_names_exactly() -> None:
    entry = {"name": "nginx", "newTag": "2"}
    assert rewrite_image("nginx:1", entry) == "nginx:2"
    assert rewrite_image("nginx-extra:1", entry) == "nginx-extra:1"
    assert rewrite_image("docker.io/nginx:1", entry) == "docker.io/nginx:1"
    assert rewrite_image("nginx@sha256:ab", {"name": "nginx", "digest": "sha256:cd"}) == (
        "nginx@sha256:cd"
    )


def test_kubectl_build_reports_failures(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    _write(tmp_path, {"kustomization.yaml": "resources: [missing.yaml]\n"})
    with pytest.raises(KustomizeError, match="'kubectl kustomize' failed"):
        kubectl_build(tmp_path)
