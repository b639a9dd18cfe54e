"""Gateway API rollouts of the example repository, commit by commit (DESIGN §2).

The example repository as shipped, both canaries: the Gateway API one is promoted to 6.0.1, then
6.0.2 (60 % errors in the playground scenario) is rolled back. One playground serves both runs, as
the rollback starts from a promoted version. Assertions read ``git log`` on the bare remote, the
files at each commit, and the simulator's live objects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e_helpers import (
    CONTOUR,
    GATEWAY,
    GATEWAY_APP,
    ROUTE_FILE,
    OpenWorld,
    World,
    assert_builds_at_every_commit,
    assert_status_matches_trailers,
    route_weights,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PRIMARY = "podinfo-primary"
CANARY_SVC = "podinfo-canary"


def test_gateway_api_promotion_then_rollback(open_playground: OpenWorld, tmp_path: Path) -> None:
    world = open_playground()
    seed = world.git("rev-parse", "main")
    world.initialize(GATEWAY, CONTOUR)
    world.bump(GATEWAY, "6.0.1")
    world.until_phase(GATEWAY, "Succeeded", timeout=120)
    check_promotion(world)

    promoted = world.git("rev-parse", "main")
    world.bump(GATEWAY, "6.0.2")
    world.until_phase(GATEWAY, "Failed", timeout=120)
    check_rollback(world, promoted)

    assert_status_matches_trailers(world, GATEWAY, world.entries(GATEWAY))
    # Every commit of both runs (gitops-canary's and the person's) builds.
    checked = assert_builds_at_every_commit(world, GATEWAY_APP, tmp_path / "trees", seed)
    assert checked >= len(world.entries(GATEWAY)) + 3


def check_promotion(world: World) -> None:

    entries = world.entries(GATEWAY)
    # Flagger's words; the first one may name the canary.
    assert entries[0].subject.startswith("New Deployment detected, starting initialization")
    steps = [(e.phase, e.weight, e.subject) for e in entries[1:]]
    assert [(entries[0].phase, entries[0].weight)] == [("Initializing", 0)]
    assert steps == [
        ("Initialized", 0, "Initialization done! podinfo.test"),
        ("Progressing", 0, "New revision detected! Scaling up podinfo.test"),
        ("Progressing", 10, "Advance podinfo.test canary weight 10"),
        ("Progressing", 20, "Advance podinfo.test canary weight 20"),
        ("Progressing", 30, "Advance podinfo.test canary weight 30"),
        ("Progressing", 40, "Advance podinfo.test canary weight 40"),
        ("Progressing", 50, "Advance podinfo.test canary weight 50"),
        ("Promoting", 50, "Copying podinfo.test template spec to podinfo-primary.test"),
        ("Finalising", 0, "Routing all traffic to primary"),
        ("Succeeded", 0, "Promotion completed! Scaling down podinfo.test"),
    ]
    assert all(e.author.startswith("gitops-canary") for e in entries)

    # The person's commits sit where DESIGN §2 puts them.
    log = world.git("log", "--reverse", "--format=%H|%an|%s", "main").splitlines()
    authors = [line.split("|", 2) for line in log]
    include = next(
        i for i, (_, _, s) in enumerate(authors) if s.endswith("objects for apps/podinfo")
    )
    assert authors[include][1] == "Dana Developer"
    positions = {sha: i for i, (sha, _, _) in enumerate(authors)}
    assert positions[entries[0].sha] < include < positions[entries[1].sha]
    bump = next(i for i, (_, _, s) in enumerate(authors) if "podinfo:6.0.1" in s)
    assert positions[entries[1].sha] < bump < positions[entries[2].sha]

    # Initialized parks the target at zero, the scale-up brings it back: both edit the person's
    # Deployment, and only its replicas.
    deployment = f"{GATEWAY_APP}/deployment.yaml"
    assert deployment in world.changed_files(entries[1].sha)
    assert world.yaml_at(deployment, entries[1].sha)["spec"]["replicas"] == 0
    assert deployment in world.changed_files(entries[2].sha)
    # Scaled up: replicas removed (the HPA decides) or set above zero.
    assert world.yaml_at(deployment, entries[2].sha)["spec"].get("replicas", 1) > 0
    diff = world.git("show", "--format=", entries[1].sha, "--", deployment)
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert changed == ["+  replicas: 0"], diff

    # Each weight step's route, in git, at that step's commit.
    for entry in entries[3:8]:
        route = world.yaml_at(ROUTE_FILE[GATEWAY], entry.sha)
        assert route_weights(route) == [
            [(PRIMARY, 100 - (entry.weight or 0)), (CANARY_SVC, entry.weight)]
        ]
    # The first step follows the pre-rollout hook; every later one, a full interval of metrics.
    assert "pre-rollout smoke-test: ok" in entries[3].summary
    for entry in entries[4:9]:
        assert re.search(r"error-rate: [\d.]+ \(max 1\) ok", entry.summary), entry.summary
        assert re.search(r"latency: [\d.]+ \(max 0.5\) ok", entry.summary), entry.summary

    # The end state: git and the cluster agree.
    assert world.yaml_at(deployment)["spec"]["replicas"] == 0
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY])) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]
    world.drive(
        lambda: world.live_image("test", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.1",
        timeout=20,
        what="the primary running 6.0.1 in the cluster",
    )
    live_route = world.live("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")
    assert route_weights(live_route) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]


def check_rollback(world: World, promoted: str) -> None:
    run = world.entries_since(GATEWAY, promoted)
    assert run[0].subject == "New revision detected! Scaling up podinfo.test"
    assert run[1].subject == "Advance podinfo.test canary weight 10"
    failed = [e for e in run if e.failed_checks and e.phase == "Progressing"]
    assert [e.failed_checks for e in failed] == [1, 2, 3, 4, 5]
    for entry in failed:
        match = re.search(r"error-rate: ([\d.]+) \(max 1\) FAILED", entry.summary)
        assert match is not None, entry.summary
        assert float(match.group(1)) > 1
        assert (entry.weight or 0) > 0, "a failed check keeps the weight"
    rollback = run[-1]
    assert rollback.phase == "Failed"
    assert rollback.weight == 0
    assert "Rolling back podinfo.test failed checks threshold reached 5" in (
        rollback.subject + "\n" + rollback.summary
    )
    assert "Canary failed! Scaling down podinfo.test" in rollback.subject + rollback.summary
    assert all(e.phase in ("Progressing", "Failed") for e in run)

    # One commit rolls back: route 100/0 and target at zero, in git and then in the cluster.
    deployment = f"{GATEWAY_APP}/deployment.yaml"
    assert {ROUTE_FILE[GATEWAY], deployment} <= set(world.changed_files(rollback.sha))
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY])) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]
    assert world.yaml_at(deployment)["spec"]["replicas"] == 0
    world.drive(
        lambda: (
            route_weights(
                world.live("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")
            )
            == [[(PRIMARY, 100), (CANARY_SVC, 0)]]
        ),
        timeout=20,
        what="the rollback route applied",
    )
    assert world.live_image("test", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.1"
    assert world.live("apps/v1", "Deployment", "test", "podinfo")["spec"]["replicas"] == 0
