"""Discovery on a real git checkout laid out like a Flux repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops_canary.cli import main
from gitops_canary.core.status import CanaryStatus, Phase
from gitops_canary.repo.discovery import ParseCache, blob_ids, discover, git_blob_id
from gitops_canary.repo.layout import write_generated

FLUX = Path(__file__).parent / "repo_fixtures" / "flux"
PROVIDER = "gatewayapi:v1"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    shutil.copytree(FLUX, root)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "seed")
    return root


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _canary(name: str, target: str, *, namespace: str = "test", extra: str = "") -> str:
    return f"""\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
  namespace: {namespace}
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {target}
  service:
    port: 80
    gatewayRefs: [{{name: gw, namespace: gw}}]
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
{extra}"""


def test_finds_the_canary_its_target_hpa_and_templates(repo: Path) -> None:
    found = discover(repo, ["apps"], default_provider=PROVIDER)

    assert found.issues == []
    assert [c.key for c in found.canaries] == ["test/podinfo"]
    canary = found.canaries[0]
    assert canary.runnable, canary.issues
    assert canary.file == "apps/podinfo/canary.yaml"
    assert canary.provider == PROVIDER
    assert canary.target is not None
    assert (canary.target.file, canary.target.index) == ("apps/podinfo/deployment.yaml", 0)
    assert canary.target.data["metadata"]["namespace"] == "test"
    assert canary.hpa is not None
    assert canary.hpa.file == "apps/podinfo/hpa.yaml"
    assert sorted(canary.metric_templates) == [
        "flagger-system/error-rate",
        "flagger-system/latency",
    ]
    assert canary.generated_dir == "apps/podinfo/gitops-canary/podinfo"
    assert canary.generated_included is False
    assert canary.status == CanaryStatus()
    assert canary.template is not None
    assert canary.template["spec"]["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.0.0"
    assert canary.revision is not None
    assert len(canary.revision) == 16


def test_revision_follows_the_image_in_either_file(repo: Path) -> None:
    first = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0].revision

    # Changes outside the pod template are not a new revision.
    _replace(repo / "apps/podinfo/deployment.yaml", "minReadySeconds: 5", "minReadySeconds: 7")
    assert discover(repo, ["apps"], default_provider=PROVIDER).canaries[0].revision == first

    _replace(repo / "apps/podinfo/deployment.yaml", "podinfo:6.0.0", "podinfo:6.0.1")
    bumped_in_deployment = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert bumped_in_deployment.revision != first

    (repo / "apps/podinfo/kustomization.yaml").write_text(
        (repo / "apps/podinfo/kustomization.yaml").read_text()
        + "images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: 6.0.2\n"
    )
    bumped_in_kustomization = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert bumped_in_kustomization.revision not in (first, bumped_in_deployment.revision)
    assert bumped_in_kustomization.template is not None
    image = bumped_in_kustomization.template["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/stefanprodan/podinfo:6.0.2"
    # The replicas edit still goes to the person's deployment.yaml.
    assert bumped_in_kustomization.target is not None
    assert bumped_in_kustomization.target.file == "apps/podinfo/deployment.yaml"


def test_bad_canaries_are_reported_one_by_one(repo: Path) -> None:
    bad = repo / "apps" / "bad"
    bad.mkdir()
    (bad / "missing-target.yaml").write_text(_canary("ghost", "ghost"))
    (bad / "missing-template.yaml").write_text(
        _canary(
            "needs-template",
            "other",
            extra="    metrics:\n    - name: x\n      templateRef: {name: nope}\n"
            "      thresholdRange: {max: 1}\n",
        )
    )
    (bad / "other.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other, namespace: test}\n"
        "spec: {template: {spec: {containers: [{name: a, image: a}]}}}\n"
    )
    (bad / "invalid.yaml").write_text(_canary("invalid", "podinfo").replace("port: 80", "port: x"))
    (bad / "second.yaml").write_text(_canary("second", "podinfo"))
    (bad / "wrong-ns.yaml").write_text(_canary("wrong-ns", "podinfo", namespace="prod"))

    found = discover(repo, ["apps"], default_provider=PROVIDER)
    by_key = {c.key: c for c in found.canaries}

    assert sorted(by_key) == [
        "prod/wrong-ns",
        "test/ghost",
        "test/invalid",
        "test/needs-template",
        "test/podinfo",
        "test/second",
    ]
    assert by_key["test/ghost"].issues == [
        "apps/bad/missing-target.yaml: Canary test/ghost: spec.targetRef: Deployment test/ghost "
        "not found under apps/ (looked in apps/podinfo/kustomization.yaml, apps/bad/other.yaml)"
    ]
    assert by_key["test/needs-template"].target is not None
    assert by_key["test/needs-template"].issues == [
        "apps/bad/missing-template.yaml: Canary test/needs-template: "
        "spec.analysis.metrics[0].templateRef: MetricTemplate test/nope not found under apps/"
    ]
    assert by_key["test/invalid"].canary is None
    assert any("spec.service.port" in issue for issue in by_key["test/invalid"].issues)
    assert "in namespace test" in by_key["prod/wrong-ns"].issues[0]
    assert "its own namespace" in by_key["prod/wrong-ns"].issues[0]
    for key in ("test/podinfo", "test/second"):
        assert any("target of several canaries" in issue for issue in by_key[key].issues)
    assert not any(c.runnable for c in found.canaries)

    (bad / "second.yaml").unlink()
    found = discover(repo, ["apps"], default_provider=PROVIDER)
    assert [c.key for c in found.canaries if c.runnable] == ["test/podinfo"]


def test_broken_kustomization_blames_only_its_canaries(repo: Path) -> None:
    other = repo / "apps" / "other"
    other.mkdir()
    (other / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (other / "canary.yaml").write_text(_canary("other", "other"))

    found = discover(repo, ["apps"], default_provider=PROVIDER)
    by_key = {c.key: c for c in found.canaries}
    assert by_key["test/podinfo"].runnable
    assert (
        "apps/other/canary.yaml: Canary test/other: apps/other/kustomization.yaml: "
        "resources[0] 'deployment.yaml': no such file or directory"
    ) in by_key["test/other"].issues


def test_config_tracking(repo: Path) -> None:
    _replace(
        repo / "apps/podinfo/deployment.yaml",
        "        env:\n",
        "        envFrom:\n"
        "        - configMapRef: {name: podinfo-config}\n"
        "        - secretRef: {name: podinfo-pull}\n"
        "        - secretRef: {name: podinfo-token}\n"
        "        - configMapRef: {name: untracked}\n"
        "        - configMapRef: {name: maybe, optional: true}\n"
        "        - configMapRef: {name: elsewhere}\n"
        "        env:\n",
    )
    (repo / "apps/podinfo/configs.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo-config}\ndata: {color: blue}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: podinfo-pull}\n"
        "type: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: e30=}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: podinfo-token}\n"
        "stringData: {token: s3cr3t}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: untracked\n"
        "  annotations: {flagger.app/config-tracking: disabled}\ndata: {a: b}\n"
    )
    _replace(
        repo / "apps/podinfo/kustomization.yaml",
        "  - deployment.yaml\n",
        "  - deployment.yaml\n  - configs.yaml\n",
    )

    canary = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert sorted(canary.tracked_configs) == ["configmap/podinfo-config", "secret/podinfo-token"]
    assert canary.configs["configmap/podinfo-config"].file == "apps/podinfo/configs.yaml"
    assert [w for w in canary.warnings if "elsewhere" in w]
    assert not [w for w in canary.warnings if "maybe" in w]
    before = dict(canary.tracked_configs)

    _replace(repo / "apps/podinfo/configs.yaml", "color: blue", "color: red")
    after = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert after.tracked_configs["configmap/podinfo-config"] != before["configmap/podinfo-config"]
    assert after.tracked_configs["secret/podinfo-token"] == before["secret/podinfo-token"]
    assert after.revision == canary.revision  # a config change is not a template change


def test_reads_the_owned_directory(repo: Path) -> None:
    status = CanaryStatus(phase=Phase.PROGRESSING, canary_weight=30, failed_checks=2)
    template = {"spec": {"containers": [{"name": "podinfod", "image": "x:1"}]}}
    primary = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo-primary", "namespace": "test"},
        "spec": {"template": template},
    }
    write_generated(
        repo,
        "apps/podinfo",
        "podinfo",
        [("deployment-podinfo-primary.yaml", primary)],
        status,
        "apps/podinfo/canary.yaml",
    )
    canary = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert canary.status == status
    assert canary.primary_template() == template
    assert canary.generated_included is False
    assert any("is not listed in any kustomization" in w for w in canary.warnings)

    _replace(
        repo / "apps/podinfo/kustomization.yaml",
        "  - deployment.yaml\n",
        "  - deployment.yaml\n  - gitops-canary/podinfo\n",
    )
    canary = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert canary.generated_included is True
    assert not any("is not listed" in w for w in canary.warnings)
    assert canary.runnable, canary.issues


def test_cache_parses_only_what_changed(repo: Path) -> None:
    cache = ParseCache()
    discover(repo, ["apps"], default_provider=PROVIDER, cache=cache)
    first = cache.parses
    assert first >= 5  # every YAML file under apps/

    discover(repo, ["apps"], default_provider=PROVIDER, cache=cache)
    assert cache.parses == first

    _replace(repo / "apps/podinfo/deployment.yaml", "podinfo:6.0.0", "podinfo:6.0.1")
    discover(repo, ["apps"], default_provider=PROVIDER, cache=cache)
    assert cache.parses == first + 1


def test_blob_ids_are_git_blob_ids(repo: Path) -> None:
    ids = blob_ids(repo)
    path = "apps/podinfo/deployment.yaml"
    assert ids[path] == git_blob_id((repo / path).read_bytes())
    assert ids[path] == _git(repo, "rev-parse", f"HEAD:{path}").strip()
    assert blob_ids(repo.parent) == {}  # not a git repository


def test_status_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_generated(
        repo,
        "apps/podinfo",
        "podinfo",
        [],
        CanaryStatus(phase=Phase.PROGRESSING, canary_weight=20, failed_checks=1),
        "apps/podinfo/canary.yaml",
        namespace="test",
    )
    assert main(["status", "--repo", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "STATUS",
        "WEIGHT",
        "FAILEDCHECKS",
        "LASTTRANSITIONTIME",
    ]
    assert lines[1].split() == ["test", "podinfo", "Progressing", "20", "1"]

    assert main(["status", "--repo", str(repo), "-o", "json", "--path", "apps"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "podinfo"
    assert rows[0]["status"] == "Progressing"
    assert rows[0]["weight"] == 20

    assert main(["status", "--repo", str(repo), "--path", "nope"]) == 2
    assert "'nope' does not exist" in capsys.readouterr().err


def test_warns_when_kustomization_images_would_rewrite_the_primary(repo: Path) -> None:
    primary = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo-primary", "namespace": "test"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}
                    ]
                }
            }
        },
    }
    write_generated(
        repo,
        "apps/podinfo",
        "podinfo",
        [("deployment-podinfo-primary.yaml", primary)],
        CanaryStatus(),
        "apps/podinfo/canary.yaml",
    )
    kustomization = repo / "apps/podinfo/kustomization.yaml"
    _replace(
        kustomization, "  - deployment.yaml\n", "  - deployment.yaml\n  - gitops-canary/podinfo\n"
    )
    canary = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert not any("rewrites the images" in w for w in canary.warnings)

    kustomization.write_text(
        kustomization.read_text()
        + "images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: 6.0.2\n"
    )
    canary = discover(repo, ["apps"], default_provider=PROVIDER).canaries[0]
    assert any("rewrites the images" in w for w in canary.warnings), canary.warnings
