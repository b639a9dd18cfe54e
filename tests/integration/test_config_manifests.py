"""The manifests people apply: ``config/`` (gitops-canary in the cluster) and ``examples/repo``.

``config/`` must build with ``kubectl kustomize`` into objects the API server would accept, grant
read-only access only, run the container locked down (non-root, read-only root filesystem, no
privilege escalation, no capabilities, probes on ``/healthz`` and ``/readyz``), and carry a
``config.yaml`` that the reconciler accepts and that names its secrets instead of holding them.
The example repository's app paths must build, and its Flux Kustomizations and Argo CD
Applications must be valid for the real CRDs in ``../shared/schemas/crds`` (beside the repository).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gitops_canary.config import Config, parse_config
from gitops_canary.repo.manifests import load_file

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "config"
EXAMPLES = ROOT / "examples" / "repo"
SHARED = ROOT.parent / "shared"
CRD_DIR = SHARED / "schemas" / "crds"
K8S_VERSION = kubernetes_validate.latest_version()
READ_VERBS = frozenset({"get", "list", "watch"})
EXAMPLE_PATHS = (
    "apps/podinfo",
    "apps/podinfo-contour",
    "apps/loadtester",
    "infrastructure/gateway",
)
#: Kinds of the example repository's cluster objects, and the CRD file that defines each.
APPLIER_CRDS = {
    "Kustomization": "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    "Application": "argoproj.io_applications.yaml",
}
#: Custom resources that may appear in built app paths, and the CRD file for each.
APP_CRDS = {
    "Gateway": "gateway.networking.k8s.io_gateways.yaml",
    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
    "HTTPProxy": "projectcontour.io_httpproxies.yaml",
}
#: Keys whose value would be a credential if it were a plain string.
SECRET_KEY = re.compile(r"token|password|secret|apikey|api_key|privatekey", re.IGNORECASE)


# -- helpers ------------------------------------------------------------------------------------


def require_shared() -> Path:
    """The shared schemas; their absence is a broken checkout, not a reason to skip."""
    if not CRD_DIR.is_dir():
        pytest.fail(f"{CRD_DIR} is missing: the CRD schemas live next to the repository")
    return CRD_DIR


@cache
def kustomize_build(directory: Path) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize DIR`` as a tuple of objects; fails the test with kubectl's message."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr.strip()}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@cache
def crd_validators(filename: str) -> dict[str, jsonschema.protocols.Validator]:
    """``group/version`` -> validator for each served version of one CRD file."""
    crd = yaml.safe_load((require_shared() / filename).read_text(encoding="utf-8"))
    validators: dict[str, jsonschema.protocols.Validator] = {}
    for version in crd["spec"]["versions"]:
        if version.get("served"):
            # A CRD's openAPIV3Schema is OpenAPI 3.0, i.e. JSON Schema draft 4.
            schema = version["schema"]["openAPIV3Schema"]
            validators[f"{crd['spec']['group']}/{version['name']}"] = jsonschema.Draft4Validator(
                schema
            )
    return validators


def crd_problems(obj: dict[str, Any], filename: str) -> list[str]:
    validators = crd_validators(filename)
    validator = validators.get(obj.get("apiVersion", ""))
    if validator is None:
        return [
            f"apiVersion {obj.get('apiVersion')!r} is not served (served: {sorted(validators)})"
        ]
    return [
        f"{'.'.join(map(str, error.path)) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    ]


def one(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def write_rule_problems(role: dict[str, Any]) -> list[str]:
    """Everything in a Role/ClusterRole beyond get/list/watch on named resources."""
    problems = []
    for position, rule in enumerate(role.get("rules") or []):
        where = f"{role['kind']} {role['metadata']['name']} rules[{position}]"
        extra = set(rule.get("verbs") or []) - READ_VERBS
        if extra:
            problems.append(f"{where}: verbs beyond get/list/watch: {sorted(extra)}")
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            if "*" in (rule.get(field) or []):
                problems.append(f"{where}: wildcard in {field}")
        if rule.get("nonResourceURLs"):
            problems.append(f"{where}: nonResourceURLs")
    return problems


def container_hardening_problems(pod_spec: dict[str, Any]) -> list[str]:
    """What keeps a pod from running non-root with a read-only root filesystem and no privileges."""
    problems = []
    pod_context = pod_spec.get("securityContext") or {}
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        name = container["name"]
        context = {**pod_context, **(container.get("securityContext") or {})}
        if context.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities.drop does not include ALL")
        if (context.get("capabilities") or {}).get("add"):
            problems.append(f"{name}: capabilities.add is set")
    return problems


def inline_secret_problems(node: Any, where: str = "") -> Iterator[str]:
    """Credentials written as values instead of ``{env: NAME}`` or ``{file: PATH}``."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if SECRET_KEY.search(str(key)) and not (
                isinstance(value, dict) and set(value) in ({"env"}, {"file"})
            ):
                yield f"{path}: holds a value; name an environment variable or a file instead"
            else:
                yield from inline_secret_problems(value, path)
    elif isinstance(node, list):
        for position, item in enumerate(node):
            yield from inline_secret_problems(item, f"{where}[{position}]")
    elif isinstance(node, str) and re.match(r"^[a-z+]+://[^/@\s]+:[^/@\s]+@", node):
        yield f"{where}: a URL with a user and password in it"


def load_config() -> tuple[dict[str, Any], Config]:
    (document,) = load_file(CONFIG_DIR / "config.yaml", display="config/config.yaml")
    # An empty environment: GITOPS_CANARY_* variables of whoever runs the tests must not leak in.
    return document.data, parse_config(document.data, "config/config.yaml", env={})


def example_cluster_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((EXAMPLES / "clusters").rglob("*.yaml")):
        for document in load_file(path, display=str(path.relative_to(EXAMPLES))):
            found.append((f"{document.file}#{document.index}", document.data))
    return found


# -- config/: the build -------------------------------------------------------------------------


def test_config_builds_into_the_expected_objects() -> None:
    kinds = sorted(obj["kind"] for obj in kustomize_build(CONFIG_DIR))
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    )


def test_every_built_object_is_valid_kubernetes() -> None:
    for obj in kustomize_build(CONFIG_DIR):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {error}")


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = one(kustomize_build(CONFIG_DIR), "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_namespaced_objects_land_in_the_gitops_canary_namespace() -> None:
    objects = kustomize_build(CONFIG_DIR)
    namespace = one(objects, "Namespace")["metadata"]["name"]
    for obj in objects:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace") == namespace, obj["kind"]
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


# -- config/: read-only RBAC --------------------------------------------------------------------


def test_roles_grant_only_get_list_watch_without_wildcards() -> None:
    roles = [obj for obj in kustomize_build(CONFIG_DIR) if obj["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        assert role.get("rules"), f"{role['metadata']['name']} has no rules"
        assert not role.get("aggregationRule"), "an aggregated role can grow behind our back"
        assert write_rule_problems(role) == []


def test_the_rbac_check_catches_write_verbs_and_wildcards() -> None:
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "too-much"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["*"], "verbs": ["*"]},
        ],
    }
    problems = write_rule_problems(role)
    assert any("patch" in p for p in problems)
    assert any("wildcard in apiGroups" in p for p in problems)
    assert any("wildcard in resources" in p for p in problems)
    assert any("wildcard in verbs" in p for p in problems)


# -- config/: the Deployment --------------------------------------------------------------------


def test_the_container_is_locked_down() -> None:
    pod_spec = one(kustomize_build(CONFIG_DIR), "Deployment")["spec"]["template"]["spec"]
    assert container_hardening_problems(pod_spec) == []
    assert pod_spec.get("hostNetwork") is not True
    assert pod_spec.get("hostPID") is not True


def test_the_hardening_check_catches_a_root_container() -> None:
    pod_spec = {
        "securityContext": {"runAsUser": 0},
        "containers": [
            {"name": "app", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
        ],
    }
    problems = container_hardening_problems(pod_spec)
    assert len(problems) == 6, problems


def test_probes_hit_healthz_and_readyz_on_the_metrics_port() -> None:
    _, config = load_config()
    pod_spec = one(kustomize_build(CONFIG_DIR), "Deployment")["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path, probe_name
        port = ports.get(probe["port"], probe["port"])
        assert port == config.metrics.port, f"{probe_name} port {port} != metrics.port"
    service = one(kustomize_build(CONFIG_DIR), "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_the_container_reads_the_built_config_and_writes_only_to_volumes() -> None:
    objects = kustomize_build(CONFIG_DIR)
    _, config = load_config()
    pod_spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

    # --config names a file in the mounted ConfigMap, which is the one the generator built.
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mount = mounts[str(config_path.parent)]
    config_map = one(objects, "ConfigMap")
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_path.name in config_map["data"]
    assert yaml.safe_load(config_map["data"][config_path.name]) == load_config()[0]

    # With a read-only root filesystem the working copy and git's temp files need volumes.
    writable = {path for path, m in mounts.items() if not m.get("readOnly")}
    workdir = config.repository.workdir
    assert any(workdir == Path(path) or Path(path) in workdir.parents for path in writable), (
        f"repository.workdir {workdir} is not on a writable volume (writable: {sorted(writable)})"
    )
    assert "/tmp" in writable


def test_every_secret_the_config_names_is_provided_by_reference() -> None:
    objects = kustomize_build(CONFIG_DIR)
    _, config = load_config()
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container.get("env", [])}
    sources = [config.repository.credentials.token]
    if config.push.pull_requests is not None:
        sources.append(config.push.pull_requests.token)
    secret_names = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Secret"}
    for source in sources:
        if source is None or source.env is None:
            continue
        assert source.env in env, f"config names ${source.env}, which the Deployment does not set"
        assert "value" not in env[source.env], f"${source.env} is written in the Deployment"
        ref = env[source.env]["valueFrom"]["secretKeyRef"]
        secret = secret_names[ref["name"]]
        assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}


# -- config/config.yaml -------------------------------------------------------------------------


def test_config_yaml_is_accepted_by_the_reconciler() -> None:
    _, config = load_config()
    assert config.repository.credentials.token is not None
    assert config.cluster.in_cluster
    assert not config.simulator
    assert config.appliers, "the example configuration should show how appliers are set"


def test_config_yaml_holds_no_secret_values() -> None:
    data, config = load_config()
    assert list(inline_secret_problems(data)) == []
    token = config.repository.credentials.token
    assert token is not None
    assert token.env is not None or token.file is not None


def test_the_secret_check_catches_inline_credentials() -> None:
    data = {
        "repository": {
            "url": "https://bot:hunter2@git.example.org/config.git",
            "credentials": {"token": "ghp_not-a-real-token", "password": {"env": "OK"}},
        },
        "push": {"pullRequests": {"token": {"value": "x"}}},
    }
    problems = list(inline_secret_problems(data))
    assert len(problems) == 3, problems


def test_config_appliers_match_the_example_flux_kustomizations() -> None:
    """config.yaml is written for examples/repo: each Flux applier names a Kustomization there
    that applies exactly that path."""
    _, config = load_config()
    flux = {
        (obj["metadata"]["namespace"], obj["metadata"]["name"]): obj["spec"]["path"]
        for _, obj in example_cluster_objects()
        if obj["kind"] == "Kustomization"
    }
    for applier in config.appliers:
        if applier.flux is None:
            continue
        key = (applier.flux.namespace, applier.flux.name)
        assert key in flux, f"appliers path {applier.path}: no Kustomization {key[0]}/{key[1]}"
        assert flux[key].removeprefix("./").strip("/") == applier.path.strip("/")
        assert (EXAMPLES / applier.path).is_dir()


# -- examples/repo ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PATHS)
def test_example_path_builds_into_valid_objects(path: str) -> None:
    objects = kustomize_build(EXAMPLES / path)
    assert objects
    for obj in objects:
        kind = obj["kind"]
        assert not obj["apiVersion"].startswith("flagger.app/"), (
            f"{path}: {kind} {obj['metadata']['name']} is applied; Flagger objects are read "
            "from git and must not be listed in a kustomization"
        )
        if kind in APP_CRDS:
            assert crd_problems(obj, APP_CRDS[kind]) == [], f"{path}: {kind}"
        else:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{path}: {kind} {obj['metadata']['name']}: {error}")


def test_example_cluster_objects_are_valid_for_their_crds() -> None:
    objects = example_cluster_objects()
    kinds = {obj["kind"] for _, obj in objects}
    assert kinds == set(APPLIER_CRDS), f"unexpected kinds in examples/repo/clusters: {kinds}"
    for where, obj in objects:
        assert crd_problems(obj, APPLIER_CRDS[obj["kind"]]) == [], where


def test_example_cluster_objects_point_at_paths_that_exist() -> None:
    for where, obj in example_cluster_objects():
        spec = obj["spec"]
        path = spec["path"] if obj["kind"] == "Kustomization" else spec["source"]["path"]
        directory = EXAMPLES / path.removeprefix("./")
        assert (directory / "kustomization.yaml").is_file(), f"{where}: {path} has no kustomization"


def test_the_crd_check_catches_a_broken_kustomization_and_application() -> None:
    objects = {obj["kind"]: obj for _, obj in example_cluster_objects()}
    kustomization = objects["Kustomization"]
    broken = {**kustomization, "spec": {**kustomization["spec"], "prune": "yes"}}
    broken["spec"].pop("sourceRef")
    problems = crd_problems(broken, APPLIER_CRDS["Kustomization"])
    assert any("sourceRef" in p for p in problems), problems
    assert any("prune" in p for p in problems), problems

    application = objects["Application"]
    broken_app = {**application, "spec": {**application["spec"]}}
    broken_app["spec"].pop("destination")
    assert crd_problems(broken_app, APPLIER_CRDS["Application"])
    assert crd_problems(
        {**application, "apiVersion": "argoproj.io/v9"}, "argoproj.io_applications.yaml"
    )
