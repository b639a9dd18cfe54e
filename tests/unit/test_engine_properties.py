"""Properties of ``decide`` over random specs and random worlds (DESIGN §7).

Hypothesis drives a canary through random sequences of ticks, check outcomes, readiness
changes, applier delays and new revisions, and checks after every decision that:

* weights stay in ``[0, maxWeight]`` (100 only for A/B, blue/green and a failed promotion);
* a failed check never raises the weight;
* terminal phases stay terminal until a new revision;
* ``decide`` is deterministic;
* WAIT and NEED never change the status;
* a traffic step is never judged before a full interval since it was applied and judged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_engine_support import (
    AB_MATCH,
    FAILING_METRICS,
    HEALTHY_METRICS,
    REV_A,
    REV_B,
    REV_C,
    T0,
    group,
    hook,
    make_canary,
)

from gitops_canary.core.decisions import Decision, Kind, NeedMetrics
from gitops_canary.core.engine import decide
from gitops_canary.core.engine.weights import max_weight
from gitops_canary.core.observations import READY, Checks, Observation, Readiness
from gitops_canary.core.specs import Canary, HookType, Strategy
from gitops_canary.core.status import TERMINAL_PHASES, CanaryStatus, Phase

pytestmark = pytest.mark.timeout(60)

HOOK_TYPES = ["confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase",
              "confirm-promotion", "rollback"]  # fmt: skip

GATES = (HookType.CONFIRM_ROLLOUT, HookType.CONFIRM_PROMOTION, HookType.CONFIRM_TRAFFIC_INCREASE)
MOSTLY_TRUE = st.sampled_from([True, True, True, True, True, False])
READINESS = st.sampled_from(
    [
        READY,
        READY,
        READY,
        READY,
        READY,
        READY,
        None,
        Readiness(ready=False, message="waiting for rollout to finish"),
        Readiness(ready=False, retriable=False, message="progress deadline exceeded"),
    ]
)


@st.composite
def canaries(draw: st.DrawFn) -> Canary:
    kind = draw(st.sampled_from(["weight", "weights", "ab", "bg"]))
    analysis: dict[str, Any] = {"threshold": draw(st.integers(1, 4))}
    drop: tuple[str, ...] = ("maxWeight", "stepWeight")
    if kind == "weight":
        analysis |= {"stepWeight": draw(st.integers(1, 60)), "maxWeight": draw(st.integers(1, 120))}
        drop = ()
    elif kind == "weights":
        steps = sorted(draw(st.lists(st.integers(1, 200), min_size=1, max_size=5, unique=True)))
        analysis["stepWeights"] = steps
    else:
        analysis["iterations"] = draw(st.integers(1, 4))
        if kind == "ab":
            analysis["match"] = AB_MATCH
    analysis["mirror"] = draw(st.booleans()) and kind != "ab"
    analysis["stepWeightPromotion"] = draw(st.sampled_from([0, 0, 25, 60]))
    chosen = draw(st.lists(st.sampled_from(HOOK_TYPES), unique=True, max_size=4))
    webhooks = [hook(f"{t}-hook", t) for t in chosen]
    return make_canary(
        analysis,
        drop=drop,
        webhooks=webhooks,
        skipAnalysis=draw(st.booleans()) and draw(st.booleans()),
    )


def allowed_weight(canary: Canary, status: CanaryStatus) -> bool:
    weight = status.canary_weight
    if 0 <= weight <= max_weight(canary.spec.analysis):
        return True
    full_canary = canary.strategy() in (Strategy.AB_TESTING, Strategy.BLUE_GREEN)
    failed_promotion = status.phase in (Phase.FAILED, Phase.WAITING)
    return weight == 100 and (full_canary or failed_promotion)


def revision_is_new(status: CanaryStatus, observation: Observation) -> bool:
    if not status.last_applied_spec:
        return True
    if observation.revision not in (status.last_applied_spec, status.last_promoted_spec):
        return True
    return dict(observation.tracked_configs) != status.tracked_configs


def run_tick(
    canary: Canary, status: CanaryStatus, observation: Observation, data: st.DataObject, now: Any
) -> Decision:
    found = Checks()
    decision = decide(canary, status, observation, found, now)
    for _ in range(10):
        if decision.kind is not Kind.NEED:
            break
        assert decision.status is status, "NEED changed the status"
        for need in decision.needs:
            if isinstance(need, NeedMetrics):
                healthy = data.draw(MOSTLY_TRUE, label="metrics")
                found = found.with_metrics(HEALTHY_METRICS if healthy else FAILING_METRICS)
            else:
                hooks = canary.spec.analysis.hooks(need)
                ok = data.draw(st.booleans() if need in GATES else MOSTLY_TRUE, label=str(need))
                if need is HookType.ROLLBACK:  # success asks for a rollback: make it rare
                    ok = not ok
                found = found.with_hooks(group(need, *((h.name, ok) for h in hooks)))
        decision = decide(canary, status, observation, found, now)
    assert decision.kind is not Kind.NEED, "NEED loop did not end"
    again = decide(canary, status, observation, found, now)
    assert again == decision, "decide is not deterministic"
    return decision


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(canary=canaries(), data=st.data())
def test_random_worlds_keep_the_invariants(canary: Canary, data: st.DataObject) -> None:
    status = CanaryStatus()
    now = T0
    revision = REV_A
    applied, applied_at = True, T0
    interval = timedelta(seconds=canary.spec.analysis.interval_seconds())
    for _ in range(data.draw(st.integers(10, 120), label="ticks")):
        action = data.draw(
            st.sampled_from(["tick"] * 10 + ["revision", "revision", "ready"]), label="action"
        )
        if action == "revision":
            revision = data.draw(st.sampled_from([REV_A, REV_B, REV_C]), label="revision")
            applied = False
        elif not applied and data.draw(MOSTLY_TRUE, label="applier"):
            applied, applied_at = True, now
        # Readiness hiccups last one tick; a dead Deployment stays dead for that tick only too.
        primary: Readiness | None = READY
        target: Readiness | None = READY
        route: Readiness | None = READY
        if action == "ready":
            primary, target, route = (data.draw(READINESS, label="readiness") for _ in range(3))
        observation = Observation(
            revision=revision,
            applied=applied,
            applied_at=applied_at,
            primary=primary,
            canary=target,
            route=route,
            has_autoscaler=True,
        )
        before = status
        decision = run_tick(canary, status, observation, data, now)
        if decision.kind is Kind.WAIT:
            assert decision.status == before
        idle = before.phase in TERMINAL_PHASES and not revision_is_new(before, observation)
        if idle and applied and not canary.spec.suspend:
            assert decision.kind is Kind.WAIT, "a terminal phase moved without a new revision"
        if decision.kind is Kind.CHANGE:
            after = decision.status
            assert allowed_weight(canary, after), (after.phase, after.canary_weight)
            if after.failed_checks > before.failed_checks:
                assert after.canary_weight <= before.canary_weight, (
                    "a failed check raised the weight"
                )
                assert after.failed_checks == before.failed_checks + 1
            judged_step = (
                before.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION)
                and after.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING)
                and after.last_applied_spec == before.last_applied_spec
                and (before.canary_weight > 0 or before.iterations > 0)
                and (
                    after.canary_weight != before.canary_weight
                    or after.iterations != before.iterations
                    or after.phase is not before.phase
                )
            )
            if judged_step and not canary.spec.skip_analysis:
                assert applied
                assert now >= applied_at + interval
                assert (
                    before.last_transition_time is None
                    or now >= before.last_transition_time + interval
                )
            assert after.last_transition_time == now
            event(f"reached {after.phase}")
            status = after
            applied = False
        now += timedelta(seconds=data.draw(st.sampled_from([5, 30, 61, 61, 120]), label="sleep"))


@settings(max_examples=40, deadline=None)
@given(
    weight=st.integers(0, 100),
    phase=st.sampled_from(list(Phase)),
    failed=st.integers(0, 6),
    iterations=st.integers(0, 5),
    revision=st.sampled_from([REV_A, REV_B, REV_C]),
    applied=st.booleans(),
)
def test_wait_and_need_never_change_the_status(
    weight: int, phase: Phase, failed: int, iterations: int, revision: str, applied: bool
) -> None:
    canary = make_canary(webhooks=[hook("gate", "confirm-promotion"), hook("abort", "rollback")])
    start = CanaryStatus(
        phase=phase,
        canary_weight=weight,
        failed_checks=failed,
        iterations=iterations,
        last_applied_spec=REV_B,
        last_promoted_spec=REV_A,
        last_transition_time=T0 - timedelta(minutes=5),
    )
    observation = Observation(
        revision=revision,
        applied=applied,
        applied_at=T0 - timedelta(minutes=2),
        primary=READY,
        canary=READY,
        route=READY,
    )
    decision = decide(canary, start, observation, Checks(), T0)
    assert decision == decide(canary, start, observation, Checks(), T0)
    if decision.kind is not Kind.CHANGE:
        assert decision.status == start
    else:
        assert decision.status.last_transition_time == T0
        assert decision.message
