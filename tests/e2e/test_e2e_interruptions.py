"""Rollouts that something interrupts: a new revision mid-analysis, a closed promotion gate, a
stuck GitOps agent, and a canary that never becomes ready."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import GATEWAY, GATEWAY_APP, ROUTE_FILE, OpenWorld, route_weights, settled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PRIMARY = "podinfo-primary"
CANARY_SVC = "podinfo-canary"
PROMOTION = [
    "Copying podinfo.test template spec to podinfo-primary.test",
    "Routing all traffic to primary",
    "Promotion completed! Scaling down podinfo.test",
]


def max_weight(weight: int) -> Any:
    """A variant of the example canary that stops stepping at ``weight`` (a shorter run)."""

    def edit(canary: dict[str, Any]) -> None:
        canary["spec"]["analysis"]["maxWeight"] = weight

    return edit


def test_new_revision_mid_analysis_restarts(open_playground: OpenWorld) -> None:
    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: max_weight(30)})
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")
    world.drive(lambda: (world.weight(GATEWAY) or 0) >= 20, 90, "weight 20 with 6.0.1")
    restarted_from = world.git("rev-parse", "main")
    world.bump(GATEWAY, "6.0.3")
    world.until_phase(GATEWAY, "Succeeded", timeout=120)

    run = world.entries_since(GATEWAY, restarted_from)
    restart = run[0]
    assert restart.subject == "New revision detected! Restarting analysis for podinfo.test"
    assert (restart.phase, restart.weight) == ("Progressing", 0)
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY], restart.sha)) == [
        [(PRIMARY, 100), (CANARY_SVC, 0)]
    ]
    assert [e.subject for e in run[1:]] == [
        *[f"Advance podinfo.test canary weight {w}" for w in (10, 20, 30)],
        *PROMOTION,
    ]
    revisions = {e.revision for e in run}
    assert len(revisions) == 1, "the whole restarted run is about 6.0.3"
    before = world.entries(GATEWAY)[-len(run) - 1]
    assert before.revision not in revisions
    world.drive(
        lambda: world.live_image("test", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.3",
        20,
        "the primary running 6.0.3",
    )


def test_confirm_promotion_gate_closed_then_opened(open_playground: OpenWorld) -> None:
    def gated(canary: dict[str, Any]) -> None:
        analysis = canary["spec"]["analysis"]
        analysis["maxWeight"] = 20
        analysis["webhooks"].append(
            {
                "name": "promotion-gate",
                "type": "confirm-promotion",
                "url": "http://flagger-loadtester.test/gate/check",
            }
        )

    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: gated})
    loadtester = world.playground.loadtester
    assert loadtester is not None
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")  # the gate starts closed
    world.until_phase(GATEWAY, "WaitingPromotion", timeout=90)

    waiting = world.entries(GATEWAY)[-1]
    assert waiting.weight == 20, "WaitingPromotion keeps (and reports) the real weight"
    halt = "Halt podinfo.test advancement waiting for promotion approval promotion-gate"
    assert waiting.subject == halt[:69] + "...", "subjects are cut at 72 characters"
    assert halt in waiting.summary
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY])) == [[(PRIMARY, 80), (CANARY_SVC, 20)]]
    commits = world.commit_count()
    world.hold(8)  # more than two analysis intervals (3.6 s each)
    assert world.commit_count() == commits, world.describe()
    assert world.phase(GATEWAY) == "WaitingPromotion"

    loadtester.open_gate("podinfo", "test")
    world.until_phase(GATEWAY, "Succeeded", timeout=60)
    run = world.entries_since(GATEWAY, waiting.sha)
    assert [e.subject for e in run] == PROMOTION
    assert "Confirm-promotion check promotion-gate passed" in run[0].summary


def test_paused_applier_holds_the_rollout(open_playground: OpenWorld) -> None:
    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: max_weight(30)})
    cluster = world.playground.cluster
    assert cluster is not None
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")
    world.drive(lambda: world.weight(GATEWAY) == 10, 60, "weight 10")

    applier = cluster.applier
    applier.pause()
    # pause() lets a cycle already under way finish: wait until the applied revision stays put.
    world.drive(settled(lambda: applier.last_applied_revision("podinfo"), 2.5), 30, "pause")
    applied = applier.last_applied_revision("podinfo")
    # The step judged on the applied commit may still be committed; then gitops-canary waits.
    world.drive(
        lambda: applied != f"main@sha1:{world.git('rev-parse', 'main')}",
        20,
        "a commit the paused applier has not applied",
    )
    held_at = world.commit_count()
    world.hold(8)  # more than two analysis intervals (3.6 s each)
    assert world.commit_count() == held_at, world.describe()
    assert applier.last_applied_revision("podinfo") == applied, "the applier stayed paused"
    # The wait reason is the applier's own words: it names the Kustomization and the commit.
    assert any(
        "waiting for Flux Kustomization flux-system/podinfo to apply" in line
        for line in world.recent
    ), world.recent

    cluster.applier.resume()
    world.until_phase(GATEWAY, "Succeeded", timeout=90)
    weights = [e.weight for e in world.entries(GATEWAY) if e.subject.startswith("Advance")]
    assert weights == [10, 20, 30]


def test_canary_never_ready_rolls_back_at_the_progress_deadline(open_playground: OpenWorld) -> None:
    world = open_playground(apps=[GATEWAY_APP])
    world.initialize(GATEWAY)
    bumped = world.bump(GATEWAY, "9.9.9")  # never ready in the playground scenario
    world.until_phase(GATEWAY, "Failed", timeout=90)

    run = world.entries_since(GATEWAY, bumped)
    assert run[0].subject == "New revision detected! Scaling up podinfo.test"
    rollback = run[-1]
    assert (rollback.phase, rollback.weight) == ("Failed", 0)
    text = rollback.subject + "\n" + rollback.summary
    assert "Rolling back podinfo.test progress deadline exceeded" in text
    assert "exceeded its progress deadline" in text
    assert "Canary failed! Scaling down podinfo.test" in text
    assert not [e for e in run if e.subject.startswith("Advance")], (
        "no traffic to a canary never ready"
    )
    assert world.yaml_at(f"{GATEWAY_APP}/deployment.yaml")["spec"]["replicas"] == 0
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY])) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]
    assert world.live_image("test", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.0"
