"""The seed podinfo rollout, commit by commit (DESIGN §2), on a real bare remote, no cluster.

The cluster, the applier, Prometheus and the webhooks are replaced by in-process answers that
say "applied, ready, healthy", and the clock jumps one analysis interval per tick, so this test
checks what gitops-canary writes to git and nothing else: the sequence of commits, that every
commit builds with ``kubectl kustomize``, that the person's file changes by one line, and that
people pushing to the same branch at the same time lose nothing.
"""

from __future__ import annotations

import multiprocessing
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.config import parse_config
from gitops_canary.core.observations import HookGroup, HookResult
from gitops_canary.core.promql import MetricQuery
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import Phase
from gitops_canary.core.verdicts import QueryOutcome
from gitops_canary.observe.appliers import AppliedState
from gitops_canary.playground import EXAMPLES, git, seed_remote
from gitops_canary.reconciler import Reconciler
from gitops_canary.repo.discovery import ParseCache, discover
from gitops_canary.repo.gitrepo import GitRepo, Identity
from gitops_canary.repo.history import history
from gitops_canary.repo.pushing import commit_and_push
from gitops_canary.telemetry import Recorder

READY_STATUS = {
    "observedGeneration": 1,
    "replicas": 2,
    "updatedReplicas": 2,
    "readyReplicas": 2,
    "availableReplicas": 2,
}


class WorldThatSaysYes:
    """Every Deployment is rolled out, every route accepted, every commit applied."""

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        if kind == "Deployment":
            return {
                "metadata": {"name": name, "namespace": namespace, "generation": 1},
                "spec": {"replicas": 2},
                "status": READY_STATUS,
            }
        parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "contour"}
        parent["namespace"] = "projectcontour"
        return {
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"parentRefs": [parent]},
            "status": {
                "parents": [
                    {
                        "parentRef": parent,
                        "conditions": [
                            {"type": "Accepted", "status": "True", "observedGeneration": 1}
                        ],
                    }
                ]
            },
        }


@dataclass
class Healthy:
    queries: list[str] = field(default_factory=list)

    def evaluate(self, queries: Sequence[MetricQuery]) -> list[QueryOutcome]:
        self.queries.extend(q.query for q in queries)
        return [QueryOutcome.of(0.0) for _ in queries]


@dataclass
class HooksPass:
    calls: list[tuple[str, str]] = field(default_factory=list)

    def run_group(
        self, canary: Canary, hook_type: HookType, status_phase: Phase, checksum: str
    ) -> HookGroup:
        hooks = canary.spec.analysis.hooks(hook_type)
        self.calls.extend((hook_type.value, h.name) for h in hooks)
        return HookGroup(hook_type, tuple(HookResult(h.name, hook_type, True, "") for h in hooks))

    def send_event(self, *_: Any) -> None:
        return None


@dataclass
class Clock:
    now: datetime = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _people_push(remote: str, worker: int, count: int) -> None:
    """One person pushing small commits, some into the canary's app directory."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "c"
        git(Path(scratch), "clone", "-q", remote, str(clone))
        for i in range(count):
            folder = "apps/podinfo/notes" if i % 2 else f"docs/worker-{worker}"
            for _ in range(20):
                git(clone, "fetch", "-q", "origin")
                git(clone, "reset", "-q", "--hard", "origin/main")
                note = clone / folder / f"note-{worker}-{i}.txt"
                note.parent.mkdir(parents=True, exist_ok=True)
                note.write_text(f"{worker} {i}\n")
                git(clone, "add", "-A")
                ident = ["-c", f"user.name=Person {worker}", "-c", "user.email=p@example.org"]
                git(clone, *ident, "commit", "-q", "-m", f"note {worker}-{i}")
                try:
                    git(clone, "push", "-q", "origin", "HEAD:main")
                    break
                except RuntimeError:
                    continue


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    seed_remote(EXAMPLES, remote)
    git(remote, "config", "receive.denyNonFastForwards", "true")
    git(remote, "config", "core.logAllRefUpdates", "true")
    return remote


@pytest.fixture
def person(tmp_path: Path, remote: Path) -> Path:
    clone = tmp_path / "person"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    return clone


def person_commit(clone: Path, message: str, path: str, old: str, new: str) -> None:
    for _ in range(20):
        git(clone, "fetch", "-q", "origin")
        git(clone, "reset", "-q", "--hard", "origin/main")
        file = clone / path
        file.write_text(file.read_text().replace(old, new))
        git(
            clone,
            "-c",
            "user.name=Dana",
            "-c",
            "user.email=d@example.org",
            "commit",
            "-qam",
            message,
        )
        try:
            git(clone, "push", "-q", "origin", "HEAD:main")
            return
        except RuntimeError:
            continue
    raise AssertionError(f"could not push {message}")


@pytest.fixture
def reconciler(tmp_path: Path, remote: Path) -> Iterator[tuple[Reconciler, Clock]]:
    config = parse_config(
        {
            "repository": {"url": str(remote), "paths": ["apps/podinfo", "apps/metric-templates"]},
            "appliers": [{"path": "apps", "compareLive": True}],
            "cluster": {"inCluster": True},  # answered in-process below
            "defaults": {"provider": "gatewayapi:v1"},
            "timing": {"poll": "1s"},
        },
        "<test>",
        env={},
    )
    repo = GitRepo.open_or_clone(
        str(remote),
        "main",
        tmp_path / "work",
        author=Identity("gitops-canary", "gc@example.org"),
        committer=Identity("gitops-canary", "gc@example.org"),
    )
    clock = Clock()
    cache = ParseCache()

    def applied(commit: str) -> AppliedState:
        return AppliedState(True, clock.now - timedelta(minutes=5), commit, "applied")

    def notify(*_: Any) -> None:
        return None

    reconciler = Reconciler(
        config,
        repo=repo,
        discover=lambda root: discover(
            root, config.repository.paths, default_provider="gatewayapi:v1", cache=cache
        ),
        cluster=WorldThatSaysYes(),
        applier_for=lambda _path: applied,
        metrics=Healthy(),
        hooks=HooksPass(),
        notify=notify,
        push=commit_and_push,
        recorder=Recorder(),
        clock=clock,
    )
    yield reconciler, clock
    repo.close()


def tick(reconciler: Reconciler, clock: Clock) -> list[str]:
    """One analysis interval later, one tick; a step that lost every push race to the people
    pushing at full speed is recomputed by the next tick, as in production."""
    clock.now += timedelta(seconds=61)
    for _ in range(10):
        report = reconciler.tick()
        errors = [o.message for o in report.outcomes if o.kind == "error"]
        if not any("could not push" in e for e in errors):
            break
        clock.now += timedelta(seconds=1)
    assert not errors, errors
    return [o.message for o in report.outcomes if o.kind == "commit"]


def builds(remote: Path, sha: str, tmp: Path) -> None:
    tree = tmp / f"tree-{sha[:8]}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(remote), "archive", sha], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    result = subprocess.run(
        ["kubectl", "kustomize", str(tree / "apps" / "podinfo")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{sha[:8]}: {result.stderr}"


def test_seed_rollout_commit_by_commit_with_people_pushing(
    tmp_path: Path, remote: Path, person: Path, reconciler: tuple[Reconciler, Clock]
) -> None:
    rec, clock = reconciler
    workers = [
        multiprocessing.get_context("spawn").Process(target=_people_push, args=(str(remote), w, 10))
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        # 1: a Canary and no generated objects yet.
        assert tick(rec, clock) == [
            "New Deployment detected, starting initialization of podinfo.test"
        ]
        person_commit(
            person,
            "Include gitops-canary's objects",
            "apps/podinfo/kustomization.yaml",
            "  - deployment.yaml\n",
            "  - deployment.yaml\n  - gitops-canary/podinfo\n",
        )
        # 2: applied, primary ready: park the target.
        assert tick(rec, clock) == ["Initialization done! podinfo.test"]
        assert tick(rec, clock) == []  # nothing new: an idle tick commits nothing
        person_commit(
            person,
            "Deploy podinfo 6.0.1",
            "apps/podinfo/deployment.yaml",
            "podinfo:6.0.0",
            "podinfo:6.0.1",
        )
        subjects: list[str] = []
        for _ in range(12):
            subjects.extend(tick(rec, clock))
            if subjects and subjects[-1].startswith("Promotion completed!"):
                break
    finally:
        for worker in workers:
            worker.join(timeout=120)
    assert subjects == [
        "New revision detected! Scaling up podinfo.test",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 20",
        "Advance podinfo.test canary weight 30",
        "Advance podinfo.test canary weight 40",
        "Advance podinfo.test canary weight 50",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test",
    ]

    steps = list(reversed(history(remote, "test/podinfo", rev="main")))
    assert [(s.phase, s.weight) for s in steps] == [
        ("Initializing", 0),
        ("Initialized", 0),
        ("Progressing", 0),
        ("Progressing", 10),
        ("Progressing", 20),
        ("Progressing", 30),
        ("Progressing", 40),
        ("Progressing", 50),
        ("Promoting", 50),
        ("Finalising", 0),
        ("Succeeded", 0),
    ]
    # Every human commit is on the branch, and nothing was ever forced.
    log = git(remote, "log", "--format=%s", "main")
    for worker in range(3):
        for i in range(10):
            assert f"note {worker}-{i}" in log
    reflog = git(remote, "reflog", "show", "--format=%gs", "main")
    assert "forced" not in reflog
    # Each step builds (from the moment the person included the generated directory).
    included = git(remote, "log", "-1", "--format=%H", "--grep=Include gitops-canary", "main")
    for step in steps[1:]:
        if git(remote, "merge-base", "--is-ancestor", included, step.sha) == "":
            builds(remote, step.sha, tmp_path)
    # The person's Deployment changed by exactly the replicas line in the parking commit.
    parked = steps[1].sha
    diff = git(remote, "show", "--format=", "-U0", parked, "--", "apps/podinfo/deployment.yaml")
    changed = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == ["+  replicas: 0"]
    # The primary runs 6.0.1 now, and the target is parked.
    primary = git(
        remote, "show", "main:apps/podinfo/gitops-canary/podinfo/deployment-podinfo-primary.yaml"
    )
    assert "podinfo:6.0.1" in primary
    target = git(remote, "show", "main:apps/podinfo/deployment.yaml")
    assert "replicas: 0" in target
