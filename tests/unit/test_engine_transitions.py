"""The engine's transition table: one ``decide`` call per row, from a given status and
observation to the expected decision (``flagger-behaviour.md`` §2.3, §3.1, §8.4, §8.7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_engine_support import (
    AB_MATCH,
    HEALTHY_METRICS,
    REV_A,
    REV_B,
    REV_C,
    T0,
    checks,
    group,
    hook,
    make_canary,
    metric,
    names,
    observe,
    status,
)

from gitops_canary.core.decisions import Kind, NeedMetrics, ReplicaEdit, Severity
from gitops_canary.core.engine import decide
from gitops_canary.core.observations import NO_CHECKS, Checks, MetricResult, Observation, Readiness
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import CanaryStatus, Condition, Phase

SEED = make_canary()
GATED = make_canary(
    webhooks=[
        hook("approve", "confirm-rollout"),
        hook("smoke-test", "pre-rollout"),
        hook("gate", "confirm-traffic-increase"),
        hook("load-test", "rollout"),
        hook("promote-gate", "confirm-promotion"),
        hook("abort", "rollback"),
    ]
)
MUTED = make_canary(
    webhooks=[
        hook("approve", "confirm-rollout", muteAlert=True),
        hook("gate", "confirm-traffic-increase", muteAlert=True),
        hook("promote-gate", "confirm-promotion", muteAlert=True),
    ]
)
NO_HOOKS = make_canary(webhooks=[])
AB = make_canary({"iterations": 10, "match": AB_MATCH}, drop=("maxWeight", "stepWeight"))
BG = make_canary(
    {"iterations": 3},
    drop=("maxWeight", "stepWeight"),
    webhooks=[hook("promote-gate", "confirm-promotion")],
)
MIRROR = make_canary({"mirror": True}, webhooks=[hook("gate", "confirm-traffic-increase")])
SKIP = make_canary(skipAnalysis=True)
STEP_PROMOTION = make_canary({"stepWeightPromotion": 30})
NO_STEP = make_canary({"stepWeight": 0})

DEADLINE = Readiness(
    ready=False, retriable=False, message='deployment "podinfo" exceeded its progress deadline'
)
ROLLING = Readiness(
    ready=False, message="waiting for rollout to finish: 0 of 1 updated replicas are available"
)
PASS_ROLLBACK = group(HookType.ROLLBACK, ("abort", False))
PASS_ROLLOUT = group(HookType.ROLLOUT, ("load-test", True))
ANALYSED = checks(PASS_ROLLBACK, PASS_ROLLOUT, metrics=HEALTHY_METRICS)
SAME = object()  # "target_replicas not asserted"


@dataclass(frozen=True)
class Case:
    name: str
    start: CanaryStatus
    kind: Kind
    phase: Phase | None = None
    weight: int | None = None
    failed: int | None = None
    events: tuple[str, ...] | None = None
    needs: tuple[Any, ...] = ()
    target: Any = SAME
    reason: str = ""
    canary: Canary = SEED
    obs: Observation = field(default_factory=observe)
    checks: Checks = NO_CHECKS
    now: datetime = T0


CASES = [
    # -- initialisation (§2.3, DESIGN §2 rows 1-2)
    Case(
        "first sight initialises",
        CanaryStatus(),
        Kind.CHANGE,
        Phase.INITIALIZING,
        0,
        events=(),
        target=None,
    ),
    Case(
        "initializing waits for the applier",
        status(phase=Phase.INITIALIZING),
        Kind.WAIT,
        obs=observe(applied=False),
        reason="waiting for the applier",
    ),
    Case(
        "initializing waits for the primary to exist",
        status(phase=Phase.INITIALIZING),
        Kind.WAIT,
        obs=observe(primary=None),
        reason="is gitops-canary/podinfo listed in the resources",
    ),
    Case(
        "initializing waits for the primary rollout",
        status(phase=Phase.INITIALIZING),
        Kind.WAIT,
        obs=observe(primary=ROLLING),
        reason="waiting for rollout to finish",
    ),
    Case(
        "initialization fails on the primary deadline",
        status(phase=Phase.INITIALIZING),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        0,
        obs=observe(primary=DEADLINE),
        target=ReplicaEdit(0),
        events=(
            "Rolling back podinfo.test progress deadline exceeded "
            'deployment "podinfo" exceeded its progress deadline',
            "Canary failed! Scaling down podinfo.test",
        ),
    ),
    Case(
        "initialized once the primary is ready",
        status(phase=Phase.INITIALIZING),
        Kind.CHANGE,
        Phase.INITIALIZED,
        0,
        0,
        events=("Initialization done! podinfo.test",),
        target=ReplicaEdit(0),
    ),
    Case(
        "skipAnalysis does not wait for the primary",
        status(phase=Phase.INITIALIZING),
        Kind.CHANGE,
        Phase.INITIALIZED,
        canary=SKIP,
        obs=observe(primary=ROLLING),
        target=ReplicaEdit(0),
    ),
    # -- suspended and unhandled phases
    Case(
        "suspended",
        status(),
        Kind.WAIT,
        canary=make_canary(suspend=True),
        reason="skipping canary run as object is suspended",
    ),
    Case(
        "terminating is not ours", status(phase=Phase.TERMINATING), Kind.WAIT, reason="does not act"
    ),
    # -- idle and new revisions (§3.2, §3.11 confirm-rollout)
    Case(
        "initialized idles without a new revision",
        status(phase=Phase.INITIALIZED, last_promoted_spec=REV_B),
        Kind.WAIT,
        reason="no new revision",
    ),
    Case(
        "succeeded asks confirm-rollout for a new revision",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.NEED,
        canary=GATED,
        needs=(HookType.CONFIRM_ROLLOUT,),
    ),
    Case(
        "confirm-rollout closed: Waiting",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.CHANGE,
        Phase.WAITING,
        0,
        canary=GATED,
        checks=checks(group(HookType.CONFIRM_ROLLOUT, ("approve", False))),
        events=("Halt podinfo.test advancement waiting for approval approve",),
        target=None,
    ),
    Case(
        "still closed while Waiting: no commit",
        status(phase=Phase.WAITING, last_applied_spec=REV_A),
        Kind.WAIT,
        canary=GATED,
        checks=checks(group(HookType.CONFIRM_ROLLOUT, ("approve", False))),
        reason="waiting for approval approve",
    ),
    Case(
        "confirm-rollout open: scale up and Progressing",
        status(phase=Phase.WAITING, last_applied_spec=REV_A),
        Kind.CHANGE,
        Phase.PROGRESSING,
        0,
        0,
        canary=GATED,
        checks=checks(group(HookType.CONFIRM_ROLLOUT, ("approve", True))),
        target=ReplicaEdit(None),
        events=(
            "Confirm-rollout check approve passed",
            "New revision detected! Scaling up podinfo.test",
        ),
    ),
    Case(
        "scale up without HPA to the primary's replicas",
        status(phase=Phase.FAILED, last_applied_spec=REV_A),
        Kind.CHANGE,
        Phase.PROGRESSING,
        canary=NO_HOOKS,
        obs=observe(has_autoscaler=False),
        target=ReplicaEdit(2),
    ),
    Case(
        "scale up without HPA to at least 1",
        status(phase=Phase.FAILED, last_applied_spec=REV_A),
        Kind.CHANGE,
        Phase.PROGRESSING,
        canary=NO_HOOKS,
        obs=observe(has_autoscaler=False, primary_replicas=0),
        target=ReplicaEdit(1),
    ),
    Case(
        "legacy status without a revision starts a run",
        status(phase=Phase.SUCCEEDED, last_applied_spec=""),
        Kind.CHANGE,
        Phase.PROGRESSING,
        canary=NO_HOOKS,
    ),
    Case(
        "new revision waits for the primary to exist",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.WAIT,
        obs=observe(primary=None),
        reason="to exist",
    ),
    Case(
        "new revision waits for a rolling primary",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.WAIT,
        obs=observe(primary=ROLLING),
        reason="waiting for rollout",
    ),
    Case(
        "nothing to roll back before a run: a dead primary waits",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.WAIT,
        obs=observe(primary=DEADLINE),
        reason="progress deadline",
    ),
    Case(
        "new revision waits for the route to exist",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.WAIT,
        obs=observe(route=None),
        reason="route podinfo.test",
    ),
    Case(
        "new revision waits for the route to be accepted",
        status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A),
        Kind.WAIT,
        obs=observe(
            route=Readiness(
                ready=False, message="HTTPRoute podinfo.test parent contour is not ready"
            )
        ),
        reason="parent contour is not ready",
    ),
    # -- Progressing: readiness, restart (§3.1 steps 18-19)
    Case(
        "progressing waits for the applier",
        status(canary_weight=10),
        Kind.WAIT,
        obs=observe(applied=False),
        reason="waiting for the applier",
    ),
    Case(
        "canary not created yet",
        status(),
        Kind.WAIT,
        obs=observe(canary=None),
        reason="podinfo.test to exist",
    ),
    Case(
        "canary rolling out",
        status(),
        Kind.WAIT,
        obs=observe(canary=ROLLING),
        reason="0 of 1 updated",
    ),
    Case(
        "canary deadline rolls back",
        status(canary_weight=20, failed_checks=1),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        0,
        obs=observe(canary=DEADLINE),
        target=ReplicaEdit(0),
    ),
    Case(
        "primary deadline while progressing rolls back",
        status(canary_weight=20),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        obs=observe(primary=DEADLINE),
        target=ReplicaEdit(0),
    ),
    Case(
        "new revision mid-analysis restarts",
        status(canary_weight=30, failed_checks=2, last_applied_spec=REV_C),
        Kind.CHANGE,
        Phase.PROGRESSING,
        0,
        0,
        events=("New revision detected! Restarting analysis for podinfo.test",),
        target=None,
        canary=GATED,
    ),
    Case(
        "new revision while WaitingPromotion restarts",
        status(phase=Phase.WAITING_PROMOTION, canary_weight=50, last_applied_spec=REV_C),
        Kind.CHANGE,
        Phase.PROGRESSING,
        0,
        0,
    ),
    Case(
        "revert to the promoted revision mid-analysis does not restart",
        status(canary_weight=30, last_applied_spec=REV_C, last_promoted_spec=REV_B),
        Kind.NEED,
        needs=(HookType.ROLLOUT,),
    ),
    # -- the first analysis tick (§3.1 step 26, §8.7)
    Case(
        "first tick asks rollback hooks first",
        status(),
        Kind.NEED,
        canary=GATED,
        needs=(HookType.ROLLBACK,),
    ),
    Case(
        "first tick then pre-rollout",
        status(),
        Kind.NEED,
        canary=GATED,
        checks=checks(PASS_ROLLBACK),
        needs=(HookType.PRE_ROLLOUT,),
    ),
    Case(
        "pre-rollout failure counts a failed check",
        status(),
        Kind.CHANGE,
        Phase.PROGRESSING,
        0,
        1,
        checks=checks(group(HookType.PRE_ROLLOUT, ("smoke-test", False, "exit 1"))),
        events=(
            "Starting canary analysis for podinfo.test",
            "Halt podinfo.test advancement pre-rollout check smoke-test failed exit 1",
        ),
    ),
    Case(
        "pre-rollout retry waits an interval",
        status(failed_checks=1, last_transition_time=T0),
        Kind.WAIT,
        now=T0 + timedelta(seconds=30),
        reason="full analysis interval",
    ),
    Case(
        "pre-rollout retry after the interval",
        status(failed_checks=1, last_transition_time=T0),
        Kind.NEED,
        now=T0 + timedelta(seconds=61),
        needs=(HookType.PRE_ROLLOUT,),
    ),
    Case(
        "pre-rollout passes, traffic gate asked",
        status(),
        Kind.NEED,
        canary=GATED,
        checks=checks(PASS_ROLLBACK, group(HookType.PRE_ROLLOUT, ("smoke-test", True))),
        needs=(HookType.CONFIRM_TRAFFIC_INCREASE,),
    ),
    Case(
        "first step to stepWeight",
        status(),
        Kind.CHANGE,
        Phase.PROGRESSING,
        10,
        0,
        checks=checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))),
        events=(
            "Starting canary analysis for podinfo.test",
            "Pre-rollout check smoke-test passed",
            "Advance podinfo.test canary weight 10",
        ),
    ),
    # -- analysed steps (§3.1 steps 21-28, D4)
    Case(
        "step not judged before applied_at + interval",
        status(canary_weight=10),
        Kind.WAIT,
        obs=observe(applied_at=T0 - timedelta(seconds=30)),
        reason="full analysis interval",
    ),
    Case(
        "step not judged before the last judgement + interval",
        status(canary_weight=10, last_transition_time=T0 - timedelta(seconds=59)),
        Kind.WAIT,
        obs=observe(applied_at=None),
    ),
    Case(
        "a status without a transition time is judged on applied_at",
        status(canary_weight=10, last_transition_time=None),
        Kind.NEED,
        needs=(HookType.ROLLOUT,),
    ),
    Case(
        "manual rollback webhook",
        status(canary_weight=30, failed_checks=1),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        0,
        canary=GATED,
        checks=checks(group(HookType.ROLLBACK, ("abort", True))),
        target=ReplicaEdit(0),
        events=(
            "Rollback check abort passed",
            "Rolling back podinfo.test manual webhook invoked",
            "Canary failed! Scaling down podinfo.test",
        ),
    ),
    Case(
        "threshold reached rolls back at the next tick",
        status(canary_weight=30, failed_checks=5),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        0,
        target=ReplicaEdit(0),
        events=(
            "Rolling back podinfo.test failed checks threshold reached 5",
            "Canary failed! Scaling down podinfo.test",
        ),
    ),
    Case(
        "threshold also rolls back WaitingPromotion",
        status(phase=Phase.WAITING_PROMOTION, canary_weight=50, failed_checks=7),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        0,
    ),
    Case(
        "rollout hook failure",
        status(canary_weight=30, failed_checks=1),
        Kind.CHANGE,
        Phase.PROGRESSING,
        30,
        2,
        checks=checks(group(HookType.ROLLOUT, ("load-test", False, "500 boom"))),
        events=("Halt podinfo.test advancement external check load-test failed 500 boom",),
    ),
    Case(
        "metrics asked after rollout hooks",
        status(canary_weight=30),
        Kind.NEED,
        checks=checks(PASS_ROLLOUT),
        needs=(NeedMetrics.METRICS,),
    ),
    Case(
        "metric failure keeps the weight",
        status(canary_weight=30),
        Kind.CHANGE,
        Phase.PROGRESSING,
        30,
        1,
        checks=checks(PASS_ROLLOUT, metrics=(metric("error-rate", 5.0, ok=False),)),
        events=("Halt podinfo.test advancement error-rate 5.0 > 1",),
    ),
    Case(
        "metric failure without a message",
        status(canary_weight=30),
        Kind.CHANGE,
        Phase.PROGRESSING,
        30,
        1,
        checks=checks(
            PASS_ROLLOUT, metrics=(MetricResult("latency", False, None, "max 0.5", "", True),)
        ),
        events=("Halt podinfo.test advancement latency check failed",),
    ),
    Case(
        "rollback hook not signalling, then a step",
        status(canary_weight=30),
        Kind.CHANGE,
        Phase.PROGRESSING,
        40,
        canary=GATED,
        checks=checks(
            PASS_ROLLBACK,
            PASS_ROLLOUT,
            group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", True)),
            metrics=HEALTHY_METRICS,
        ),
        events=(
            "Rollback hook abort not signaling a rollback",
            "Confirm-traffic-increase check gate passed",
            "Advance podinfo.test canary weight 40",
        ),
    ),
    Case(
        "traffic gate closed: no commit",
        status(canary_weight=30),
        Kind.WAIT,
        canary=GATED,
        checks=checks(
            PASS_ROLLBACK,
            PASS_ROLLOUT,
            group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", False)),
            metrics=HEALTHY_METRICS,
        ),
        reason="Halt podinfo.test advancement waiting for traffic increase approval gate",
    ),
    Case(
        "muted traffic gate closed",
        status(canary_weight=30),
        Kind.WAIT,
        canary=MUTED,
        checks=checks(
            group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", False)), metrics=HEALTHY_METRICS
        ),
    ),
    Case(
        "no usable step never advances",
        status(canary_weight=0, iterations=0),
        Kind.WAIT,
        canary=NO_STEP,
        checks=checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))),
        reason="cannot advance",
    ),
    # -- promotion (§3.5, §3.7, §3.8)
    Case(
        "at maxWeight asks confirm-promotion",
        status(canary_weight=50),
        Kind.NEED,
        canary=GATED,
        checks=checks(
            PASS_ROLLBACK,
            PASS_ROLLOUT,
            group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", True)),
            metrics=HEALTHY_METRICS,
        ),
        needs=(HookType.CONFIRM_PROMOTION,),
    ),
    Case(
        "confirm-promotion closed: WaitingPromotion at the real weight",
        status(canary_weight=50),
        Kind.CHANGE,
        Phase.WAITING_PROMOTION,
        50,
        0,
        canary=make_canary(webhooks=[hook("promote-gate", "confirm-promotion")]),
        checks=checks(
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)), metrics=HEALTHY_METRICS
        ),
        events=("Halt podinfo.test advancement waiting for promotion approval promote-gate",),
    ),
    Case(
        "still closed while WaitingPromotion: no commit",
        status(phase=Phase.WAITING_PROMOTION, canary_weight=50),
        Kind.WAIT,
        canary=MUTED,
        checks=checks(
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)), metrics=HEALTHY_METRICS
        ),
    ),
    Case(
        "muted confirm-promotion",
        status(canary_weight=50),
        Kind.CHANGE,
        Phase.WAITING_PROMOTION,
        canary=MUTED,
        checks=checks(
            group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", True)),
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)),
            metrics=HEALTHY_METRICS,
        ),
    ),
    Case(
        "approved while WaitingPromotion: promote",
        status(phase=Phase.WAITING_PROMOTION, canary_weight=50),
        Kind.CHANGE,
        Phase.PROMOTING,
        50,
        canary=GATED,
        checks=checks(
            PASS_ROLLBACK,
            PASS_ROLLOUT,
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", True)),
            metrics=HEALTHY_METRICS,
        ),
        events=(
            "Rollback hook abort not signaling a rollback",
            "Confirm-promotion check promote-gate passed",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ),
    ),
    Case(
        "promoting waits for the primary rollout",
        status(phase=Phase.PROMOTING, canary_weight=50),
        Kind.WAIT,
        obs=observe(primary=ROLLING),
    ),
    Case(
        "promotion fails when the primary never gets ready",
        status(phase=Phase.PROMOTING, canary_weight=50),
        Kind.CHANGE,
        Phase.FAILED,
        100,
        0,
        obs=observe(primary=DEADLINE),
        target=None,
        events=(
            "Promotion of podinfo.test failed, primary not ready: "
            'deployment "podinfo" exceeded its progress deadline',
        ),
    ),
    Case(
        "promotion fails after the traffic shift",
        status(phase=Phase.FINALISING),
        Kind.CHANGE,
        Phase.FAILED,
        100,
        obs=observe(primary=DEADLINE),
    ),
    Case(
        "canary deadline while promoting rolls back",
        status(phase=Phase.PROMOTING, canary_weight=50),
        Kind.CHANGE,
        Phase.FAILED,
        0,
        obs=observe(canary=DEADLINE),
    ),
    Case(
        "promoting in one step",
        status(phase=Phase.PROMOTING, canary_weight=50),
        Kind.CHANGE,
        Phase.FINALISING,
        0,
        events=("Routing all traffic to primary",),
    ),
    Case(
        "promoting by stepWeightPromotion",
        status(phase=Phase.PROMOTING, canary_weight=50),
        Kind.CHANGE,
        Phase.PROMOTING,
        20,
        canary=STEP_PROMOTION,
        events=("Advance podinfo.test primary weight 80",),
    ),
    Case(
        "last promotion step finalises",
        status(phase=Phase.PROMOTING, canary_weight=20),
        Kind.CHANGE,
        Phase.FINALISING,
        0,
        canary=STEP_PROMOTION,
        events=("Advance podinfo.test primary weight 100",),
    ),
    Case(
        "promoting at weight 0 does not stall",
        status(phase=Phase.PROMOTING, canary_weight=0),
        Kind.CHANGE,
        Phase.FINALISING,
        0,
        canary=STEP_PROMOTION,
    ),
    Case(
        "finalising ignores the canary's readiness",
        status(phase=Phase.FINALISING, failed_checks=2),
        Kind.CHANGE,
        Phase.SUCCEEDED,
        0,
        2,
        obs=observe(canary=DEADLINE),
        target=ReplicaEdit(0),
        events=("Promotion completed! Scaling down podinfo.test",),
    ),
    # -- skipAnalysis (§3.12)
    Case(
        "skipAnalysis promotes",
        status(canary_weight=0),
        Kind.CHANGE,
        Phase.SUCCEEDED,
        0,
        canary=SKIP,
        target=ReplicaEdit(0),
        obs=observe(primary=ROLLING),
    ),
    Case(
        "skipAnalysis still rolls back at the threshold",
        status(failed_checks=5),
        Kind.CHANGE,
        Phase.FAILED,
        canary=SKIP,
    ),
    # -- A/B and blue/green (§3.9, §3.10)
    Case(
        "A/B first tick: pre-rollout and iteration 1",
        status(),
        Kind.CHANGE,
        Phase.PROGRESSING,
        100,
        canary=AB,
        checks=checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))),
        events=(
            "Starting canary analysis for podinfo.test",
            "Pre-rollout check smoke-test passed",
            "Advance podinfo.test canary iteration 1/10",
        ),
    ),
    Case(
        "A/B last iteration promotes",
        status(iterations=10, canary_weight=100),
        Kind.CHANGE,
        Phase.PROMOTING,
        100,
        canary=AB,
        checks=ANALYSED,
    ),
    Case(
        "blue/green final iteration waits for promotion approval",
        status(iterations=3),
        Kind.CHANGE,
        Phase.WAITING_PROMOTION,
        0,
        canary=BG,
        checks=checks(
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)), metrics=HEALTHY_METRICS
        ),
    ),
    Case(
        "blue/green approved routes all traffic to the canary",
        status(phase=Phase.WAITING_PROMOTION, iterations=3),
        Kind.CHANGE,
        Phase.WAITING_PROMOTION,
        100,
        canary=BG,
        checks=checks(
            group(HookType.CONFIRM_PROMOTION, ("promote-gate", True)), metrics=HEALTHY_METRICS
        ),
        events=("Confirm-promotion check promote-gate passed", "Routing all traffic to canary"),
    ),
    Case(
        "blue/green promotes after a tick at 100",
        status(iterations=4, canary_weight=100),
        Kind.CHANGE,
        Phase.PROMOTING,
        100,
        canary=BG,
        checks=checks(metrics=HEALTHY_METRICS),
    ),
    # -- canary-strategy mirroring (D8: no endless loop at weight 0)
    Case(
        "mirror step before the first weight",
        status(),
        Kind.CHANGE,
        Phase.PROGRESSING,
        0,
        canary=MIRROR,
        checks=checks(group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", True))),
        events=(
            "Starting canary analysis for podinfo.test",
            "Confirm-traffic-increase check gate passed",
            "Advance podinfo.test canary weight 0",
        ),
    ),
    Case(
        "mirrored tick is analysed, then weights",
        status(mirrored=True),
        Kind.CHANGE,
        Phase.PROGRESSING,
        10,
        canary=MIRROR,
        checks=checks(PASS_ROLLOUT, metrics=HEALTHY_METRICS),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transition(case: Case) -> None:
    decision = decide(case.canary, case.start, case.obs, case.checks, case.now)
    assert decision.kind is case.kind, decision.reason or decision.message
    assert case.reason in decision.reason
    if case.kind is not Kind.CHANGE:
        assert decision.status == case.start
        assert decision.needs == case.needs
        return
    got = decision.status
    assert got.last_transition_time == case.now
    assert decision.message.splitlines()[0] == got.message[:72] or len(got.message) > 72
    if case.phase is not None:
        assert got.phase is case.phase
    if case.weight is not None:
        assert got.canary_weight == case.weight
    if case.failed is not None:
        assert got.failed_checks == case.failed
    if case.events is not None:
        assert tuple(names(decision)) == case.events
    if case.target is not SAME:
        assert decision.target_replicas == case.target


def test_alerts_follow_flagger_and_mute_alert() -> None:
    start = status(phase=Phase.SUCCEEDED, last_applied_spec=REV_A)
    closed = checks(group(HookType.CONFIRM_ROLLOUT, ("approve", False)))
    loud = decide(GATED, start, observe(), closed, T0)
    assert [(e.alert, e.alert_message) for e in loud.events] == [
        (Severity.WARN, "Canary is waiting for approval.")
    ]
    quiet = decide(MUTED, start, observe(), closed, T0)
    assert [e.alert for e in quiet.events] == [None]
    gate = checks(
        group(HookType.CONFIRM_TRAFFIC_INCREASE, ("gate", False)), metrics=HEALTHY_METRICS
    )
    held = decide(
        GATED,
        status(canary_weight=30),
        observe(),
        checks(PASS_ROLLBACK, PASS_ROLLOUT)
        .with_hooks(gate.hooks[HookType.CONFIRM_TRAFFIC_INCREASE])
        .with_metrics(HEALTHY_METRICS),
        T0,
    )
    assert held.events[-1].alert_message == "Canary traffic increase is waiting for approval."
    assert held.wake_at == T0 + timedelta(minutes=1)
    manual = decide(
        GATED,
        status(canary_weight=30),
        observe(),
        checks(group(HookType.ROLLBACK, ("abort", True))),
        T0,
    )
    assert [e.alert_message for e in manual.events if e.alert] == [
        "Rolling back manual webhook invoked"
    ]
    deadline = decide(SEED, status(canary_weight=30), observe(canary=DEADLINE), NO_CHECKS, T0)
    assert deadline.events[0].alert is Severity.ERROR
    assert deadline.events[0].alert_message.startswith("Progress deadline exceeded deployment")
    assert deadline.post_rollout is Phase.FAILED


def test_session_affinity_cookies_follow_the_weight() -> None:
    canary = make_canary(
        {"sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary"}}
    )
    first = decide(
        canary, status(), observe(), checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))), T0
    )
    cookie = first.status.session_affinity_cookie
    assert cookie is not None
    assert cookie.startswith("flagger-cookie=")
    assert len(cookie.split("=")[1]) == 10
    assert cookie.split("=")[1].isalpha()
    assert first.status.primary_session_affinity_cookie.startswith("primary=")  # type: ignore[union-attr]
    again = decide(
        canary, status(), observe(), checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))), T0
    )
    assert again.status.session_affinity_cookie == cookie  # derived, not drawn
    other_run = decide(
        canary,
        status(last_applied_spec=REV_C),
        observe(revision=REV_C),
        checks(group(HookType.PRE_ROLLOUT, ("smoke-test", True))),
        T0,
    )
    assert other_run.status.session_affinity_cookie != cookie
    # Kept while the weight moves, moved aside when it returns to 0.
    moving = decide(
        canary,
        first.status.model_copy(update={"last_transition_time": T0 - timedelta(hours=1)}),
        observe(),
        ANALYSED,
        T0,
    )
    assert moving.status.session_affinity_cookie == cookie
    restarted = decide(canary, moving.status, observe(revision=REV_C), NO_CHECKS, T0)
    assert restarted.status.session_affinity_cookie is None
    assert restarted.status.previous_session_affinity_cookie == cookie
    assert (
        restarted.status.primary_session_affinity_cookie
        == first.status.primary_session_affinity_cookie
    )


def test_promoted_condition_keeps_its_transition_time_while_the_status_is_unchanged() -> None:
    before = T0 - timedelta(hours=1)
    start = status(
        canary_weight=30,
        conditions=[
            Condition(
                status="Unknown",
                reason="Progressing",
                message="New revision detected, progressing canary analysis.",
                last_transition_time=before,
                last_update_time=before,
            )
        ],
    )
    step = decide(SEED, start, observe(), checks(PASS_ROLLOUT, metrics=HEALTHY_METRICS), T0)
    assert step.status.conditions == start.conditions
    hold = decide(
        make_canary(webhooks=[hook("promote-gate", "confirm-promotion")]),
        start.model_copy(update={"canary_weight": 50}),
        observe(),
        checks(group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)), metrics=HEALTHY_METRICS),
        T0,
    )
    (condition,) = hold.status.conditions
    assert (condition.status, condition.reason, condition.message) == (
        "Unknown",
        "WaitingPromotion",
        "Waiting for approval.",
    )
    assert condition.last_transition_time == before
    assert condition.last_update_time == T0
    done = decide(
        SEED,
        status(phase=Phase.FINALISING, conditions=hold.status.conditions),
        observe(),
        NO_CHECKS,
        T0,
    )
    assert [(c.status, c.reason, c.last_transition_time) for c in done.status.conditions] == [
        ("True", "Succeeded", T0)
    ]
    failed = decide(SEED, status(failed_checks=5, canary_weight=10), observe(), NO_CHECKS, T0)
    assert (
        failed.status.conditions[0].message == "Canary analysis failed, Deployment scaled to zero."
    )


def test_initialisation_records_the_promoted_revision() -> None:
    first = decide(
        SEED,
        CanaryStatus(),
        observe(revision=REV_A, tracked_configs={"secret/s": "1"}),
        NO_CHECKS,
        T0,
    )
    assert first.promote
    assert first.status.last_applied_spec == REV_A
    # The target changed before initialisation completed: the primary runs A, so A is promoted
    # and B will be analysed as a new revision.
    done = decide(SEED, first.status, observe(revision=REV_B), NO_CHECKS, T0 + timedelta(minutes=1))
    assert (done.status.last_applied_spec, done.status.last_promoted_spec) == (REV_A, REV_A)
    assert done.status.tracked_configs == {"secret/s": "1"}
    legacy = decide(
        SEED, CanaryStatus(phase=Phase.INITIALIZING), observe(revision=REV_B), NO_CHECKS, T0
    )
    assert legacy.status.last_promoted_spec == REV_B
    nxt = decide(
        make_canary(webhooks=[]),
        done.status,
        observe(revision=REV_B),
        NO_CHECKS,
        T0 + timedelta(minutes=2),
    )
    assert nxt.status.phase is Phase.PROGRESSING


def test_naive_times_and_interval_scale() -> None:
    naive_now = T0.replace(tzinfo=None)
    start = status(canary_weight=10, last_transition_time=naive_now - timedelta(seconds=20))
    obs = observe(applied_at=naive_now - timedelta(seconds=20))
    assert decide(SEED, start, obs, NO_CHECKS, naive_now).kind is Kind.WAIT
    fast = decide(SEED, start, obs, NO_CHECKS, naive_now, interval_scale=0.25)
    assert fast.kind is Kind.NEED
    # Out-of-range scales are read as 1.
    assert decide(SEED, start, obs, NO_CHECKS, naive_now, interval_scale=0).kind is Kind.WAIT


def test_change_keeps_last_checks_when_none_ran() -> None:
    start = status(phase=Phase.PROMOTING, canary_weight=50)
    analysed = decide(
        SEED, status(canary_weight=40), observe(), checks(PASS_ROLLOUT, metrics=HEALTHY_METRICS), T0
    )
    assert [r.name for r in analysed.status.last_checks] == ["load-test", "error-rate", "latency"]
    assert analysed.metrics == (("error-rate", 0.0), ("latency", 0.231))
    promoting = decide(
        SEED,
        start.model_copy(update={"last_checks": analysed.status.last_checks}),
        observe(),
        NO_CHECKS,
        T0,
    )
    assert promoting.status.last_checks == analysed.status.last_checks


def test_decide_ignores_results_it_did_not_ask_for() -> None:
    extra = checks(
        group(HookType.CONFIRM_PROMOTION, ("promote-gate", False)), metrics=HEALTHY_METRICS
    )
    decision = decide(SEED, status(canary_weight=10), observe(), extra.with_hooks(PASS_ROLLOUT), T0)
    assert decision.kind is Kind.CHANGE
    assert decision.status.canary_weight == 20
    assert [r.name for r in decision.status.last_checks] == ["load-test", "error-rate", "latency"]


def test_waiting_keeps_status_and_weight_after_failed_promotion() -> None:
    start = status(phase=Phase.FAILED, canary_weight=100, last_applied_spec=REV_B)
    closed = checks(group(HookType.CONFIRM_ROLLOUT, ("approve", False)))
    waiting = decide(GATED, start, observe(revision=REV_C), closed, T0)
    assert waiting.status.phase is Phase.WAITING
    assert waiting.status.canary_weight == 100
    assert waiting.status.last_applied_spec == REV_B
    assert waiting.wake_at == T0 + timedelta(minutes=1)


def test_need_decisions_keep_status_and_say_what_they_need() -> None:
    start = status(canary_weight=10)
    decision = decide(SEED, start, observe(), NO_CHECKS, T0)
    assert decision.kind is Kind.NEED
    assert decision.status is start
    assert decision.needs == (HookType.ROLLOUT,)
    assert "rollout" in decision.reason
    assert not decision.events
    assert not decision.message
    assert decide(SEED, start, observe(), checks(PASS_ROLLOUT), T0).needs == (NeedMetrics.METRICS,)
    assert decide(SEED, start, observe(), checks(PASS_ROLLOUT, metrics=()), T0).kind is Kind.CHANGE
    assert (
        decide(make_canary({"metrics": []}), start, observe(), checks(PASS_ROLLOUT), T0).kind
        is Kind.CHANGE
    )
