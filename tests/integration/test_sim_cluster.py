"""The whole simulated cluster: a real git repo in, the real kubernetes client and a real
Prometheus (scraping the simulator) out, with the seeds' MetricTemplate queries."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config

from gitops_canary.sim import prometheus as prometheus_module
from gitops_canary.sim.cluster import SimCluster
from gitops_canary.sim.prometheus import PrometheusServer, PrometheusUnavailable
from gitops_canary.sim.scenario import parse_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"

APPS = {
    "kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: test
resources: [deployments.yaml, services.yaml, httproute.yaml]
""",
    "deployments.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo-primary}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo-primary}}
  template:
    metadata: {labels: {app: podinfo-primary}}
    spec: {containers: [{name: podinfod, image: "ghcr.io/stefanprodan/podinfo:6.0.0"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec: {containers: [{name: podinfod, image: "ghcr.io/stefanprodan/podinfo:6.0.2"}]}
""",
    "services.yaml": """\
apiVersion: v1
kind: Service
metadata: {name: podinfo-primary}
spec: {selector: {app: podinfo-primary}, ports: [{name: http, port: 9898}]}
---
apiVersion: v1
kind: Service
metadata: {name: podinfo-canary}
spec: {selector: {app: podinfo}, ports: [{name: http, port: 9898}]}
""",
    "httproute.yaml": """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: podinfo}
spec:
  parentRefs: [{name: contour, namespace: projectcontour}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {group: "", kind: Service, name: podinfo-primary, port: 9898, weight: 0}
    - {group: "", kind: Service, name: podinfo-canary, port: 9898, weight: 100}
""",
}


def git(*args: str, cwd: Path | None = None) -> str:
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


def make_repo(root: Path) -> tuple[Path, str]:
    """A bare remote holding ``apps/``; returns its path and the pushed sha."""
    remote, work = root / "remote.git", root / "work"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git("init", "--quiet", "--initial-branch=main", str(work))
    for name, text in APPS.items():
        (work / "apps").mkdir(exist_ok=True)
        (work / "apps" / name).write_text(text, encoding="utf-8")
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "podinfo at 100 % canary", cwd=work)
    git("push", "--quiet", str(remote), "main", cwd=work)
    return remote, git("rev-parse", "HEAD", cwd=work)


def seed_template_query(name: str) -> str:
    """The seed's MetricTemplate query, rendered like Flagger for podinfo in test over 10s."""
    text = next(SEEDS.glob("000_*.txt")).read_text(encoding="utf-8")
    start = text.index(f"  name: {name}\n")
    body = text[text.index("query: |\n", start) + len("query: |\n") :]
    lines = []
    for line in body.splitlines():
        if line.strip() in ("---", "```"):
            break
        lines.append(line)
    query = " ".join(" ".join(lines).split())
    return (
        query.replace("{{ namespace }}", "test")
        .replace("{{ target }}", "podinfo")
        .replace("{{ interval }}", "10s")
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[SimCluster, str]]:
    remote, sha = make_repo(tmp_path / "git")
    scenario = parse_scenario(
        {
            "rolloutSeconds": 0.5,
            "requestsPerSecond": 200,
            "images": {
                "ghcr.io/stefanprodan/podinfo:6.0.2": {
                    "errorRate": 0.6,
                    "latencyMs": {"p50": 20, "p99": 80},
                }
            },
        },
        "test scenario",
    )
    sim = SimCluster(
        str(remote), "main", {"apps": "./apps"}, scenario, tmp_path / "sim", applier_interval=0.5
    )
    with sim:
        yield sim, sha


def test_the_kubernetes_client_reads_what_the_applier_applied(
    cluster: tuple[SimCluster, str],
) -> None:
    sim, sha = cluster
    api_client = config.new_client_from_config(config_file=str(sim.kubeconfig))
    try:
        apps = client.AppsV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)

        def applied() -> bool:
            try:
                flux = custom.get_namespaced_custom_object(
                    "kustomize.toolkit.fluxcd.io", "v1", "flux-system", "kustomizations", "apps"
                )
            except client.ApiException:
                return False
            return bool(flux.get("status", {}).get("lastAppliedRevision") == f"main@sha1:{sha}")

        wait_for(applied, 20, "the applier to report the pushed revision")
        wait_for(
            lambda: (
                (apps.read_namespaced_deployment("podinfo", "test").status.ready_replicas or 0) == 2
            ),
            20,
            "the canary Deployment to become ready",
        )
        route = custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "test", "httproutes", "podinfo"
        )
        wait_for(
            lambda: (
                custom.get_namespaced_custom_object(
                    "gateway.networking.k8s.io", "v1", "test", "httproutes", "podinfo"
                )
                .get("status", {})
                .get("parents")
            ),
            10,
            "the route's parent status",
        )
        assert route["spec"]["rules"][0]["backendRefs"][1]["weight"] == 100
    finally:
        api_client.close()


def query(prometheus: PrometheusServer, promql: str) -> float | None:
    response = requests.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    result = response.json()["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: not enough samples yet


def test_real_prometheus_runs_the_seed_templates_against_the_simulator(
    cluster: tuple[SimCluster, str], tmp_path: Path
) -> None:
    sim, _ = cluster
    try:
        prometheus = PrometheusServer([sim.exporter_address], workdir=tmp_path / "prom").start()
    except PrometheusUnavailable as error:
        pytest.fail(str(error))
    try:
        # Let about ten seconds of traffic accumulate, so the rates are not from a handful.
        wait_for(
            lambda: (query(prometheus, "sum(envoy_cluster_upstream_rq)") or 0) > 2000,
            60,
            "Prometheus to scrape canary traffic",
        )
        error_rate = wait_for(
            lambda: query(prometheus, seed_template_query("error-rate")),
            30,
            "the error-rate template to return a value",
        )
        assert error_rate == pytest.approx(60, abs=8)

        latency = query(prometheus, seed_template_query("latency"))
        assert latency is not None
        assert 0.05 <= latency <= 0.1  # p99 is 80 ms; buckets are 50 and 100 ms

        # Flagger's builtin gatewayapi success rate (§5.2) sees only the canary's pods.
        success = query(
            prometheus,
            'sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",'
            'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",status!~"5.*"}[10s])) / '
            'sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",'
            'kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[10s])) * 100',
        )
        assert success == pytest.approx(40, abs=8)
    finally:
        prometheus.stop()


def test_a_missing_prometheus_binary_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(prometheus_module, "_DEFAULT_BINARY", str(tmp_path / "no-prometheus"))

    with pytest.raises(PrometheusUnavailable, match="sudo apt-get install prometheus"):
        PrometheusServer(["127.0.0.1:1"], workdir=tmp_path).start()
