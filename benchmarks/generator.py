"""A monorepo of N podinfo-like apps with canaries mid-analysis, in a local bare remote.

Owns building the repository the benchmarks run against. Each app ``apps/app-NNNN/`` holds
the podinfo tutorial's Deployment, HPA, Namespace and kustomization, and a Canary (Gateway API,
two MetricTemplates, a pre-rollout and a rollout webhook). The history is what a real
repository would show: the apps are added, gitops-canary's first steps initialise every
canary, a person bumps every image, and every canary starts its analysis.

gitops-canary's own files are produced by the product's engine and renderer (:func:`decide`,
:func:`write_step`) with every check passing, so they are byte for byte what the reconciler
would have committed; only the commits are batched (one per phase) to keep generation fast.
After generation every canary is ``Progressing`` at weight :data:`FIRST_WEIGHT`, its last
step committed :data:`STEP_AGE` before :attr:`Generated.created`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gitops_canary.core.decisions import Decision, Kind, NeedMetrics
from gitops_canary.core.engine import decide
from gitops_canary.core.hashing import derive_uuid, pod_template_hash
from gitops_canary.core.observations import (
    NO_CHECKS,
    READY,
    Checks,
    HookGroup,
    HookResult,
    MetricResult,
    Observation,
)
from gitops_canary.core.specs import HookType
from gitops_canary.core.status import Phase
from gitops_canary.repo import yamlout
from gitops_canary.repo.discovery import DiscoveredCanary, discover
from gitops_canary.steps import write_step

BRANCH = "main"
PATHS = ("apps",)
PROVIDER = "gatewayapi:v1"
OLD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
INTERVAL = timedelta(minutes=1)
STEP_WEIGHT = 5
MAX_WEIGHT = 50
#: The canary weight every canary has after generation (its first analysis step).
FIRST_WEIGHT = STEP_WEIGHT
#: How long before :attr:`Generated.created` the last generated step was committed.
STEP_AGE = timedelta(minutes=10)

AUTHOR = ("Dana Developer", "dana@example.org")
BOT = ("gitops-canary", "gitops-canary@example.org")


@dataclass(frozen=True)
class Generated:
    remote: Path
    count: int
    #: The moment the generated steps are ``STEP_AGE`` old (take it as "now" when benchmarking).
    created: datetime

    @property
    def url(self) -> str:
        return str(self.remote)


def app_name(index: int) -> str:
    return f"app-{index:04d}"


def app_dir(index: int) -> str:
    return f"apps/{app_name(index)}"


def generate(root: Path, count: int) -> Generated:
    """Create ``root/remote.git`` holding ``count`` apps with canaries mid-analysis.

    The product's engine and renderer make two model apps through the four commits; every
    other app is the model with its name (and the revisions, which hash the name) substituted.
    The substitution is checked: the second model app must come out byte for byte.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    root.mkdir(parents=True, exist_ok=True)
    model_dir, work, remote = root / "model", root / "seed", root / "remote.git"
    for leftover in (model_dir, work, remote):
        if leftover.exists():
            shutil.rmtree(leftover)
    created = datetime.now(UTC).replace(microsecond=0)
    steps_at = created - STEP_AGE
    model = _Model.make(model_dir, steps_at)
    model.check_substitution()

    work.mkdir()
    _git(work, "init", "-q", "-b", BRANCH)
    # No background gc: it would still be deleting objects while the seed is removed.
    _git(work, "config", "gc.auto", "0")
    _write_shared(work)
    commits = (
        (f"Add {count} podinfo apps with canaries", AUTHOR, steps_at - timedelta(hours=2)),
        (f"Initialize {count} canaries", BOT, steps_at - timedelta(hours=1)),
        (f"Deploy {NEW_IMAGE} to {count} apps", AUTHOR, steps_at - timedelta(minutes=30)),
        (f"Start the analysis of {count} canaries", BOT, steps_at),
    )
    for phase, (message, who, when) in enumerate(commits):
        for index in range(count):
            for relative, content in model.app_files(phase, index).items():
                target = work / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        _commit(work, message, who, when)

    _git(root, "init", "-q", "--bare", "-b", BRANCH, str(remote))
    _git(work, "push", "-q", str(remote), f"{BRANCH}:{BRANCH}")
    shutil.rmtree(work)
    shutil.rmtree(model_dir)
    return Generated(remote=remote, count=count, created=created)


@dataclass
class _Model:
    """Apps 0 and 1 after each of the four commits, made by the product's own code."""

    #: phase -> app index -> repo-relative path -> content
    phases: list[dict[int, dict[str, bytes]]]
    #: app index -> (revision before the image bump, revision after)
    revisions: dict[int, tuple[str, str]]
    template: dict[str, Any]  # app 0's pod template before the bump

    @classmethod
    def make(cls, work: Path, steps_at: datetime) -> _Model:
        work.mkdir(parents=True)
        _git(work, "init", "-q", "-b", BRANCH)
        _git(work, "config", "gc.auto", "0")
        _write_shared(work)
        apps = (0, 1)
        phases: list[dict[int, dict[str, bytes]]] = []
        for index in apps:
            _write_app(work, index, OLD_IMAGE)
        phases.append(_snapshot(work, apps))
        before = discover(work, PATHS, default_provider=PROVIDER).canaries
        _advance_all(work, steps_at - timedelta(hours=1), until=Phase.INITIALIZED)
        phases.append(_snapshot(work, apps))
        for index in apps:
            _bump_app(work, index, NEW_IMAGE)
        phases.append(_snapshot(work, apps))
        after = discover(work, PATHS, default_provider=PROVIDER).canaries
        _advance_all(work, steps_at, until=Phase.PROGRESSING, weight=FIRST_WEIGHT)
        phases.append(_snapshot(work, apps))
        revisions = {
            index: (before[index].revision or "", after[index].revision or "") for index in apps
        }
        assert before[0].template is not None
        return cls(phases, revisions, before[0].template)

    def app_files(self, phase: int, index: int) -> dict[str, bytes]:
        if index in self.phases[phase]:
            return self.phases[phase][index]
        name = app_name(index)
        old, new = self._revisions_of(index)
        model_old, model_new = self.revisions[0]
        # The primary's flagger-id derives from the revision, which hashes the name. Values are
        # swapped as YAML writes them: a revision of digits only is quoted, "6c5e..." is not.
        swaps = (
            (app_name(0), name),
            (_scalar(model_old), _scalar(old)),
            (_scalar(model_new), _scalar(new)),
            (_scalar(derive_uuid(model_old)), _scalar(derive_uuid(old))),
            (_scalar(derive_uuid(model_new)), _scalar(derive_uuid(new))),
        )
        files: dict[str, bytes] = {}
        for relative, content in self.phases[phase][0].items():
            text = content.decode("utf-8")
            for was, becomes in swaps:
                text = text.replace(was, becomes)
            files[relative.replace(app_name(0), name)] = text.encode("utf-8")
        return files

    def _revisions_of(self, index: int) -> tuple[str, str]:
        old_template = _renamed(self.template, app_name(0), app_name(index))
        new_template = _renamed(old_template, OLD_IMAGE, NEW_IMAGE)
        return pod_template_hash(old_template), pod_template_hash(new_template)

    def check_substitution(self) -> None:
        if self._revisions_of(1) != self.revisions[1]:
            raise RuntimeError("generator: app-0001's revisions differ from the model's")
        for phase, apps in enumerate(self.phases):
            made = dict(apps[1])
            apps_without_model = {k: v for k, v in apps.items() if k != 1}
            self.phases[phase] = apps_without_model
            try:
                substituted = self.app_files(phase, 1)
            finally:
                self.phases[phase] = apps
            if substituted != made:
                differing = sorted(set(made.items()) ^ set(substituted.items()))[:1]
                raise RuntimeError(
                    f"generator: substituting names does not reproduce app-0001 after commit "
                    f"{phase + 1}: {differing}"
                )


def _snapshot(work: Path, apps: tuple[int, ...]) -> dict[int, dict[str, bytes]]:
    snapshot: dict[int, dict[str, bytes]] = {}
    for index in apps:
        directory = work / app_dir(index)
        snapshot[index] = {
            path.relative_to(work).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }
    return snapshot


def _scalar(value: str) -> str:
    """``value`` as the generated files write it after a key (``key: <this>``)."""
    return ": " + yamlout.dump({"k": value}).removeprefix("k: ").rstrip("\n")


def _renamed(value: Any, was: str, becomes: str) -> Any:
    if isinstance(value, str):
        return value.replace(was, becomes)
    if isinstance(value, dict):
        return {key: _renamed(item, was, becomes) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, was, becomes) for item in value]
    return value


# --------------------------------------------------------------------------- stepping canaries


def passing_checks(found: DiscoveredCanary, decision: Decision, checks: Checks) -> Checks:
    """The checks ``decision`` asks for, all passing (rollback hooks do not signal a rollback)."""
    assert found.canary is not None
    analysis = found.canary.spec.analysis
    for need in decision.needs:
        if isinstance(need, NeedMetrics):
            checks = checks.with_metrics(
                tuple(MetricResult(m.name, True, 0.0, "", "ok") for m in analysis.metrics)
            )
        else:
            results = tuple(
                HookResult(hook.name, need, need is not HookType.ROLLBACK)
                for hook in analysis.hooks(need)
            )
            checks = checks.with_hooks(HookGroup(need, results))
    return checks


def _advance_all(work: Path, now: datetime, *, until: Phase, weight: int = 0) -> None:
    found_all = discover(work, PATHS, default_provider=PROVIDER).canaries
    for found in found_all:
        if not found.runnable or found.canary is None:
            problems = "; ".join(found.issues) or "not runnable"
            raise RuntimeError(f"generated canary {found.key} is broken: {problems}")
        last = _step_until(found, now, until, weight)
        write_step(work, found, last)


def _step_until(found: DiscoveredCanary, now: datetime, until: Phase, weight: int) -> Decision:
    assert found.canary is not None
    assert found.revision is not None
    observation = Observation(
        revision=found.revision,
        tracked_configs=found.tracked_configs,
        applied=True,
        applied_at=now - timedelta(days=1),
        primary=READY,
        canary=READY,
        route=READY,
        primary_replicas=2,
        has_autoscaler=found.hpa is not None,
    )
    status = found.status
    last: Decision | None = None
    for _ in range(10):
        checks = NO_CHECKS
        decision = decide(found.canary, status, observation, checks, now)
        while decision.kind is Kind.NEED:
            checks = passing_checks(found, decision, checks)
            decision = decide(found.canary, status, observation, checks, now)
        if decision.kind is not Kind.CHANGE:
            raise RuntimeError(f"{found.key}: the engine waits while generating: {decision.reason}")
        last = decision
        status = decision.status
        if status.phase is until and status.canary_weight >= weight:
            return last
    raise RuntimeError(f"{found.key}: did not reach {until.value} at weight {weight}")


# --------------------------------------------------------------------------- files


_METRIC_TEMPLATES = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: flagger-system
spec:
  provider:
    type: prometheus
    address: http://flagger-prometheus:9090
  query: |
    histogram_quantile(0.99,
      sum(
        rate(
          envoy_cluster_upstream_rq_time_bucket{
            envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",
          }[{{ interval }}]
        )
      ) by (le)
    )/1000
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: error-rate
  namespace: flagger-system
spec:
  provider:
    type: prometheus
    address: http://flagger-prometheus:9090
  query: |
    100 - sum(
      rate(
        envoy_cluster_upstream_rq{
          envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",
          envoy_response_code!~"5.*"
        }[{{ interval }}]
      )
    )
    /
    sum(
      rate(
        envoy_cluster_upstream_rq{
          envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",
        }[{{ interval }}]
      )
    )
    * 100
"""

_NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {name}
"""

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  minReadySeconds: 5
  revisionHistoryLimit: 5
  progressDeadlineSeconds: 60
  strategy:
    rollingUpdate:
      maxUnavailable: 1
    type: RollingUpdate
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9797"
      labels:
        app: {name}
    spec:
      containers:
      - name: podinfod
        image: {image}
        imagePullPolicy: IfNotPresent
        ports:
        - name: http
          containerPort: 9898
          protocol: TCP
        - name: http-metrics
          containerPort: 9797
          protocol: TCP
        command:
        - ./podinfo
        - --port=9898
        - --port-metrics=9797
        - --level=info
        env:
        - name: PODINFO_UI_COLOR
          value: "#34577c"
        readinessProbe:
          exec:
            command:
            - podcli
            - check
            - http
            - localhost:9898/readyz
          initialDelaySeconds: 5
          timeoutSeconds: 5
        resources:
          limits:
            cpu: 2000m
            memory: 512Mi
          requests:
            cpu: 100m
            memory: 64Mi
"""

_HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 99
"""

_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {name}
resources:
  - namespace.yaml
  - hpa.yaml
  - deployment.yaml
"""

_CANARY = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
  namespace: {name}
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  progressDeadlineSeconds: 60
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: {name}
  service:
    port: 9898
    targetPort: 9898
    hosts:
     - {name}.example.org
    gatewayRefs:
      - name: contour
        namespace: projectcontour
  analysis:
    interval: {interval}
    threshold: 5
    maxWeight: {max_weight}
    stepWeight: {step_weight}
    metrics:
    - name: error-rate
      templateRef:
        name: error-rate
        namespace: flagger-system
      thresholdRange:
        max: 1
      interval: 1m
    - name: latency
      templateRef:
        name: latency
        namespace: flagger-system
      thresholdRange:
         max: 0.5
      interval: 30s
    webhooks:
      - name: smoke-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 15s
        metadata:
          type: bash
          cmd: "curl -sd 'anon' http://{name}-canary.{name}:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 -host {name}.example.org http://envoy.projectcontour/"
"""


def _write_shared(work: Path) -> None:
    templates = work / "apps" / "metric-templates"
    templates.mkdir(parents=True)
    (templates / "metric-templates.yaml").write_text(_METRIC_TEMPLATES, encoding="utf-8")
    (work / "README.md").write_text("A generated benchmark monorepo.\n", encoding="utf-8")


def _write_app(work: Path, index: int, image: str) -> None:
    name = app_name(index)
    directory = work / app_dir(index)
    directory.mkdir(parents=True)
    files = {
        "namespace.yaml": _NAMESPACE.format(name=name),
        "deployment.yaml": _DEPLOYMENT.format(name=name, image=image),
        "hpa.yaml": _HPA.format(name=name),
        "kustomization.yaml": _KUSTOMIZATION.format(name=name),
        "canary.yaml": _CANARY.format(
            name=name,
            interval=f"{int(INTERVAL.total_seconds())}s",
            max_weight=MAX_WEIGHT,
            step_weight=STEP_WEIGHT,
        ),
    }
    for file_name, text in files.items():
        (directory / file_name).write_text(text, encoding="utf-8")


def _bump_app(work: Path, index: int, image: str) -> None:
    """A person's edit: list the generated directory, change the image (nothing else)."""
    directory = work / app_dir(index)
    kustomization = directory / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    kustomization.write_text(text + f"  - gitops-canary/{app_name(index)}\n", encoding="utf-8")
    deployment = directory / "deployment.yaml"
    text = deployment.read_text(encoding="utf-8")
    deployment.write_text(text.replace(OLD_IMAGE, image), encoding="utf-8")


# --------------------------------------------------------------------------- git


def _commit(work: Path, message: str, who: tuple[str, str], when: datetime) -> None:
    stamp = when.isoformat()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": who[0],
        "GIT_AUTHOR_EMAIL": who[1],
        "GIT_COMMITTER_NAME": who[0],
        "GIT_COMMITTER_EMAIL": who[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    _git(work, "add", "-A", env=env)
    _git(work, "-c", "commit.gpgSign=false", "commit", "-q", "-m", message, env=env)


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {result.stderr.strip()}")
    return result.stdout
