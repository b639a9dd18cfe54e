"""Whole rollouts driven tick by tick through ``decide``: the DESIGN §2 commit sequence, a
rollback after the failed-checks threshold, A/B and blue/green runs, and Flagger's scheduler
test sequences (``flagger-behaviour.md`` §8.4, §8.5, §8.7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from test_engine_support import (
    AB_MATCH,
    FAILING_METRICS,
    REV_A,
    REV_B,
    REV_C,
    World,
    hook,
    in_phase,
    make_canary,
    trail,
)

from gitops_canary.core.decisions import Kind, NeedMetrics, ReplicaEdit, Severity
from gitops_canary.core.messages import parse_trailers
from gitops_canary.core.observations import Readiness
from gitops_canary.core.specs import HookType
from gitops_canary.core.status import Phase

pytestmark = pytest.mark.timeout(30)

PRE = HookType.PRE_ROLLOUT
ROLLOUT = HookType.ROLLOUT
METRICS = NeedMetrics.METRICS


def test_podinfo_seed_commit_sequence_matches_design_section_2() -> None:
    world = World(make_canary())
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))

    assert trail(world) == [
        ("Initializing", 0, "New Deployment detected, starting initialization of podinfo.test"),
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
    commits = world.commits
    assert [c.promote for c in commits] == [True] + [False] * 7 + [True, False, False]
    assert [c.target_replicas for c in commits] == [
        None,
        ReplicaEdit(0),
        ReplicaEdit(None),  # an HPA manages the target: hand the count back to it
        *[None] * 7,
        ReplicaEdit(0),
    ]
    assert commits[-1].post_rollout is Phase.SUCCEEDED
    final = world.status
    assert final.last_applied_spec == final.last_promoted_spec == REV_B
    assert final.failed_checks == 0
    # Flagger's alerts on the way: initialised, new revision, succeeded.
    alerts = [(e.alert, e.alert_message) for c in commits for e in c.events if e.alert]
    assert alerts == [
        (Severity.INFO, "New Deployment detected, initialization completed."),
        (Severity.INFO, "New revision detected, progressing canary analysis."),
        (Severity.INFO, "Canary analysis completed successfully, promotion finished."),
    ]
    # The checks asked for in each committing tick, in Flagger's order.
    asked = [needs for needs in world.asked if needs]
    assert asked == [[PRE]] + [[ROLLOUT, METRICS]] * 5
    # Metric values travel in the message body, trailers say where the rollout stands.
    step_20 = commits[4].message
    assert "error-rate: 0.00 (max 1) ok" in step_20
    assert "latency: 0.231 (max 0.5) ok" in step_20
    assert parse_trailers(step_20) == {
        "Canary": "test/podinfo",
        "Canary-Phase": "Progressing",
        "Canary-Weight": "20",
        "Canary-Revision": REV_B,
        "Canary-Failed-Checks": "0",
    }


def test_no_traffic_step_is_judged_before_a_full_interval_since_it_was_applied() -> None:
    world = World(make_canary(), apply_delay=timedelta(seconds=40))
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    judged = [
        c
        for c in world.commits
        if c.status.phase in (Phase.PROGRESSING, Phase.PROMOTING) and c.status.canary_weight > 10
    ]
    assert judged
    for before, after in zip(world.commits, world.commits[1:], strict=False):
        if after in judged:
            applied = before.status.last_transition_time + timedelta(seconds=40)  # type: ignore[operator]
            assert after.status.last_transition_time >= applied + timedelta(minutes=1)  # type: ignore[operator]


def test_failing_revision_rolls_back_one_interval_after_the_threshold() -> None:
    world = World(make_canary())
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=lambda w: w.status.canary_weight == 10)
    world.metric_answer = lambda w: FAILING_METRICS
    world.run(until=in_phase(Phase.FAILED))

    subjects = [subject for _, _, subject in trail(world)]
    failures = subjects[4:9]
    assert failures == ["Halt podinfo.test advancement error-rate 69.17 > 1"] * 5
    assert [c.status.failed_checks for c in world.commits[4:9]] == [1, 2, 3, 4, 5]
    assert {c.status.canary_weight for c in world.commits[4:9]} == {10}
    rollback = world.commits[-1]
    assert len(world.commits) == 10
    assert [e.message for e in rollback.events] == [
        "Rolling back podinfo.test failed checks threshold reached 5",
        "Canary failed! Scaling down podinfo.test",
    ]
    assert rollback.events[0].alert is Severity.ERROR
    assert rollback.events[0].alert_message == "Failed checks threshold reached 5"
    assert rollback.target_replicas == ReplicaEdit(0)
    assert rollback.post_rollout is Phase.FAILED
    assert (rollback.status.canary_weight, rollback.status.failed_checks) == (0, 0)
    # The failing value is on record in git: the status keeps the last analysis.
    assert any(not r.ok and r.value == 69.17 for r in rollback.status.last_checks)
    gap = rollback.status.last_transition_time - world.commits[-2].status.last_transition_time  # type: ignore[operator]
    assert gap >= timedelta(minutes=1)
    # Failed is terminal for this revision; a fix starts a new run.
    world.run(until=lambda w: True)
    assert world.commits[-1] is rollback
    world.metric_answer = lambda w: ()
    world.new_revision(REV_C)
    world.run(until=in_phase(Phase.PROGRESSING))
    assert world.status.last_applied_spec == REV_C


def test_ab_seed_runs_ten_iterations_then_promotes() -> None:
    canary = make_canary({"iterations": 10, "match": AB_MATCH}, drop=("maxWeight", "stepWeight"))
    world = World(canary)
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    subjects = [s for _, _, s in trail(world)][2:]
    assert subjects == [
        "New revision detected! Scaling up podinfo.test",
        *[f"Advance podinfo.test canary iteration {i}/10" for i in range(1, 11)],
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test",
    ]
    weights = [c.status.canary_weight for c in world.commits[2:]]
    assert weights == [0] + [100] * 11 + [0, 0]


def test_blue_green_with_mirroring_matches_flagger_phases() -> None:
    canary = make_canary({"iterations": 2, "mirror": True}, drop=("maxWeight", "stepWeight"))
    world = World(canary)
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    rows = [
        (p, w, s, c.status.mirrored)
        for (p, w, s), c in zip(trail(world), world.commits, strict=True)
    ][2:]
    assert rows == [
        ("Progressing", 0, "New revision detected! Scaling up podinfo.test", False),
        ("Progressing", 0, "Advance podinfo.test canary iteration 1/2", True),
        ("Progressing", 0, "Advance podinfo.test canary iteration 2/2", True),
        ("Progressing", 100, "Stop traffic mirroring and route all traffic to canary", False),
        ("Promoting", 100, "Copying podinfo.test template spec to podinfo-primary.test", False),
        ("Finalising", 0, "Routing all traffic to primary", False),
        ("Succeeded", 0, "Promotion completed! Scaling down podinfo.test", False),
    ]


def test_blue_green_analysis_phases_without_mirror() -> None:
    """``TestScheduler_DeploymentBlueGreenAnalysisPhases`` (iterations 1)."""
    world = World(make_canary({"iterations": 1}, drop=("maxWeight", "stepWeight")))
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    assert [p for p, _, _ in trail(world)] == [
        "Initializing", "Initialized", "Progressing", "Progressing", "Progressing",
        "Promoting", "Finalising", "Succeeded",
    ]  # fmt: skip
    assert trail(world)[4][2] == "Routing all traffic to canary"


def test_deployment_analysis_phases_with_step_weight_promotion() -> None:
    """``TestScheduler_DeploymentAnalysisPhases``: stepWeight 100, stepWeightPromotion 50."""
    canary = make_canary({"stepWeight": 100, "stepWeightPromotion": 50}, drop=("maxWeight",))
    world = World(canary)
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    assert [(p, w) for p, w, _ in trail(world)][1:] == [
        ("Initialized", 0),
        ("Progressing", 0),
        ("Progressing", 100),
        ("Promoting", 100),
        ("Promoting", 50),
        ("Finalising", 0),
        ("Succeeded", 0),
    ]
    assert [s for _, _, s in trail(world)][5:7] == [
        "Advance podinfo.test primary weight 50",
        "Advance podinfo.test primary weight 100",
    ]


@pytest.mark.parametrize(
    ("analysis", "weights"),
    [
        ({"stepWeight": 10, "maxWeight": 50}, [10, 20, 30, 40, 50]),
        # TestScheduler_ServicePromotion overshoots to 60; D8 stops at maxWeight.
        ({"stepWeight": 20, "maxWeight": 50}, [20, 40, 50]),
        ({"stepWeight": 50, "maxWeight": 100}, [50, 100]),
        ({"stepWeights": [1, 2, 10, 80], "stepWeight": None, "maxWeight": None}, [1, 2, 10, 80]),
        ({"stepWeights": [1, 2, 10, 200], "stepWeight": None, "maxWeight": None}, [1, 2, 10, 100]),
    ],
)
def test_weight_sequences_never_overshoot_max_weight(
    analysis: dict[str, Any], weights: list[int]
) -> None:
    world = World(make_canary(analysis))
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    progressing = [w for p, w, _ in trail(world) if p == "Progressing"]
    assert progressing == [0, *weights]
    assert trail(world)[-3][:2] == ("Promoting", weights[-1])


def test_webhooks_canary_event_order() -> None:
    """``events_test.go TestWebhooks/canary``: stepWeight 100, stepWeightPromotion 50."""
    canary = make_canary(
        {"stepWeight": 100, "stepWeightPromotion": 50, "metrics": []},
        drop=("maxWeight",),
        webhooks=[
            hook("confirm-rollout-webhook", "confirm-rollout"),
            hook("pre-rollout-webhook", "pre-rollout"),
            hook("confirm-traffic-increase-webhook", "confirm-traffic-increase"),
            hook("rollout-webhook", "rollout"),
            hook("confirm-promotion-webhook", "confirm-promotion"),
            hook("post-rollout-webhook", "post-rollout"),
        ],
    )
    world = World(canary)
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.SUCCEEDED))
    events = [(str(e.phase), e.message) for c in world.commits[2:] for e in c.events]
    assert events == [
        ("Initialized", "Confirm-rollout check confirm-rollout-webhook passed"),
        ("Progressing", "New revision detected! Scaling up podinfo.test"),
        ("Progressing", "Starting canary analysis for podinfo.test"),
        ("Progressing", "Pre-rollout check pre-rollout-webhook passed"),
        ("Progressing", "Confirm-traffic-increase check confirm-traffic-increase-webhook passed"),
        ("Progressing", "Advance podinfo.test canary weight 100"),
        ("Progressing", "Confirm-traffic-increase check confirm-traffic-increase-webhook passed"),
        ("Progressing", "Confirm-promotion check confirm-promotion-webhook passed"),
        ("Progressing", "Copying podinfo.test template spec to podinfo-primary.test"),
        ("Promoting", "Advance podinfo.test primary weight 50"),
        ("Promoting", "Advance podinfo.test primary weight 100"),
        ("Succeeded", "Promotion completed! Scaling down podinfo.test"),
    ]
    calls = [n for needs in world.asked for n in needs]
    assert calls == [
        HookType.CONFIRM_ROLLOUT,
        HookType.PRE_ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.CONFIRM_PROMOTION,
    ]
    assert world.commits[-1].post_rollout is Phase.SUCCEEDED


def test_skip_analysis_promotes_once_the_canary_is_ready() -> None:
    """``TestScheduler_DeploymentSkipAnalysis`` and ``TestWebhooks/skip-analysis``."""
    canary = make_canary(
        webhooks=[hook("confirm-rollout-webhook", "confirm-rollout")], skipAnalysis=True
    )
    world = World(canary, primary=Readiness(ready=False, message="not ready yet"))
    world.initialise()  # no primary readiness wait with skipAnalysis
    world.new_revision(REV_B)
    world.canary_ready = Readiness(ready=False, message="canary deployment podinfo.test not ready")
    world.run(until=in_phase(Phase.PROGRESSING))
    world.tick()
    assert world.status.phase is Phase.PROGRESSING  # waits for the canary
    world.canary_ready = Readiness(ready=True)
    world.run(until=in_phase(Phase.SUCCEEDED))
    last = world.commits[-1]
    assert [e.message for e in last.events] == [
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Canary analysis was skipped for podinfo.test",
    ]
    assert last.events[1].alert_message == "Canary analysis was skipped, promotion finished."
    assert last.promote
    assert last.target_replicas == ReplicaEdit(0)
    assert last.post_rollout is Phase.SUCCEEDED
    assert world.status.last_promoted_spec == REV_B


def test_new_revision_mid_analysis_restarts_at_weight_zero() -> None:
    """``TestScheduler_DeploymentNewRevisionReset``."""
    world = World(make_canary())
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=lambda w: w.status.canary_weight == 20)
    world.new_revision(REV_C)
    world.run(until=lambda w: w.status.last_applied_spec == REV_C)
    restart = world.commits[-1]
    assert restart.message.startswith("New revision detected! Restarting analysis for podinfo.test")
    assert (restart.status.canary_weight, restart.status.failed_checks) == (0, 0)
    assert restart.target_replicas is None
    world.run(until=in_phase(Phase.SUCCEEDED))
    assert world.status.last_promoted_spec == REV_C


def test_revert_to_the_promoted_revision_starts_nothing() -> None:
    world = World(make_canary())
    world.initialise()
    world.new_revision(REV_A)
    decisions = world.run(until=lambda w: w.applied, max_ticks=5)
    assert world.tick().kind is Kind.WAIT
    assert all(d.kind is Kind.WAIT for d in decisions)
    assert world.status.phase is Phase.INITIALIZED


def test_primary_deadline_during_promotion_fails_with_all_traffic_on_the_canary() -> None:
    """``TestScheduler_DeploymentPromotionPrimaryNotReady``."""
    world = World(make_canary())
    world.initialise()
    world.new_revision(REV_B)
    world.run(until=in_phase(Phase.PROMOTING))
    world.primary = Readiness(
        ready=False,
        retriable=False,
        message='deployment "podinfo-primary" exceeded its progress deadline',
    )
    world.run(until=in_phase(Phase.FAILED))
    last = world.commits[-1]
    assert last.message.startswith(
        "Promotion of podinfo.test failed, primary not ready: deployment"
    )
    assert last.status.canary_weight == 100
    assert last.target_replicas is None  # the canary keeps serving
    assert last.post_rollout is Phase.FAILED


def test_changed_config_starts_a_run_for_the_same_template() -> None:
    world = World(make_canary(), tracked_configs={"configmap/podinfo-config": "1111111111111111"})
    world.initialise()
    world.tracked_configs = {"configmap/podinfo-config": "2222222222222222"}
    world.new_revision(REV_A)
    world.run(until=in_phase(Phase.PROGRESSING))
    assert world.status.tracked_configs == {"configmap/podinfo-config": "2222222222222222"}
    assert world.status.last_applied_spec == REV_A
