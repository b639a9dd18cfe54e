"""Shared inputs for the engine tests: the seeds' podinfo canary, observations, and a driver
that plays the applier, the cluster and the webhooks around ``decide`` tick by tick.

No tests here; the name matches ``test_engine_*`` only so it lives with the tests it serves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gitops_canary.core.decisions import Decision, Kind, Need, NeedMetrics
from gitops_canary.core.engine import decide
from gitops_canary.core.observations import (
    READY,
    Checks,
    HookGroup,
    HookResult,
    MetricResult,
    Observation,
    Readiness,
)
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import CanaryStatus, Phase

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
REV_A = "aaaaaaaaaaaaaaaa"  # the revision promoted at initialisation (image 6.0.0)
REV_B = "bbbbbbbbbbbbbbbb"  # the person's new revision (image 6.0.1)
REV_C = "cccccccccccccccc"  # a third revision, for restarts

#: The Gateway API seed's podinfo Canary (``seeds/000_*``), as Flagger's tutorial writes it.
PODINFO: dict[str, Any] = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "test"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "progressDeadlineSeconds": 60,
        "autoscalerRef": {
            "apiVersion": "autoscaling/v2beta2",
            "kind": "HorizontalPodAutoscaler",
            "name": "podinfo",
        },
        "service": {
            "port": 9898,
            "targetPort": 9898,
            "hosts": ["localproject.contour.io"],
            "gatewayRefs": [{"name": "contour", "namespace": "projectcontour"}],
        },
        "analysis": {
            "interval": "1m",
            "threshold": 5,
            "maxWeight": 50,
            "stepWeight": 10,
            "metrics": [
                {
                    "name": "error-rate",
                    "templateRef": {"name": "error-rate", "namespace": "flagger-system"},
                    "thresholdRange": {"max": 1},
                    "interval": "1m",
                },
                {
                    "name": "latency",
                    "templateRef": {"name": "latency", "namespace": "flagger-system"},
                    "thresholdRange": {"max": 0.5},
                    "interval": "30s",
                },
            ],
            "webhooks": [
                {
                    "name": "smoke-test",
                    "type": "pre-rollout",
                    "url": "http://flagger-loadtester.test/",
                    "timeout": "15s",
                    "metadata": {"type": "bash", "cmd": "curl -sd 'anon' http://podinfo-canary"},
                },
                {
                    "name": "load-test",
                    "url": "http://flagger-loadtester.test/",
                    "timeout": "5s",
                    "metadata": {"cmd": "hey -z 2m -q 10 -c 2 http://envoy.projectcontour/"},
                },
            ],
        },
    },
}

AB_MATCH = [{"headers": {"x-canary": {"exact": "insider"}}}]


def make_canary(
    analysis: dict[str, Any] | None = None,
    *,
    drop: tuple[str, ...] = (),
    webhooks: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Canary:
    """The podinfo canary with ``analysis`` keys replaced (``None`` removes one) and ``drop``ped."""
    doc = copy.deepcopy(PODINFO)
    body = doc["spec"]["analysis"]
    for key in drop:
        body.pop(key, None)
    for key, value in (analysis or {}).items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    if webhooks is not None:
        body["webhooks"] = webhooks
    doc["spec"].update(spec)
    return Canary.model_validate(doc)


def hook(name: str, hook_type: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": hook_type, "url": f"http://hooks.test/{name}", **extra}


def observe(**changes: Any) -> Observation:
    """A healthy, applied cluster running revision B (override any field)."""
    base = Observation(
        revision=REV_B,
        tracked_configs={},
        applied=True,
        applied_at=T0 - timedelta(minutes=10),
        primary=READY,
        canary=READY,
        route=READY,
        primary_replicas=2,
        has_autoscaler=True,
    )
    return replace(base, **changes)


def status(**fields: Any) -> CanaryStatus:
    """A status in the middle of a run of revision B (override any field)."""
    base: dict[str, Any] = {
        "phase": Phase.PROGRESSING,
        "last_applied_spec": REV_B,
        "last_promoted_spec": REV_A,
        "last_transition_time": T0 - timedelta(minutes=10),
    }
    base.update(fields)
    return CanaryStatus(**base)


def group(hook_type: HookType, *results: tuple[str, bool] | tuple[str, bool, str]) -> HookGroup:
    return HookGroup(
        hook_type=hook_type,
        results=tuple(
            HookResult(name=r[0], hook_type=hook_type, ok=r[1], message=r[2] if len(r) > 2 else "")
            for r in results
        ),
    )


def metric(
    name: str, value: float | None, ok: bool = True, threshold: str = "max 1"
) -> MetricResult:
    message = f"{name} ok" if ok else f"Halt podinfo.test advancement {name} {value} > 1"
    return MetricResult(name=name, ok=ok, value=value, threshold=threshold, message=message)


HEALTHY_METRICS = (metric("error-rate", 0.0), metric("latency", 0.231, threshold="max 0.5"))
FAILING_METRICS = (metric("error-rate", 69.17, ok=False), metric("latency", 0.231))


def checks(*groups: HookGroup, metrics: tuple[MetricResult, ...] | None = None) -> Checks:
    result = Checks(metrics=metrics)
    for g in groups:
        result = result.with_hooks(g)
    return result


def names(decision: Decision) -> list[str]:
    return [e.message for e in decision.events]


# --------------------------------------------------------------------------- the driver

HookAnswer = Callable[["World", HookType], HookGroup]
MetricAnswer = Callable[["World"], tuple[MetricResult, ...]]


def all_hooks_pass(world: World, hook_type: HookType) -> HookGroup:
    hooks = world.canary.spec.analysis.hooks(hook_type)
    if hook_type is HookType.ROLLBACK:  # a rollback hook "passes" by failing: no rollback asked
        return group(hook_type, *((h.name, False) for h in hooks))
    return group(hook_type, *((h.name, True) for h in hooks))


@dataclass
class World:
    """A cluster, an applier and webhooks, all well-behaved unless a test says otherwise.

    Each :meth:`tick` calls ``decide`` until it is not NEED, answering the needs; a CHANGE is
    "committed" (the status is replaced) and the applier applies it ``apply_delay`` later.
    """

    canary: Canary
    status: CanaryStatus = field(default_factory=CanaryStatus)
    revision: str = REV_A
    tracked_configs: dict[str, str] = field(default_factory=dict)
    now: datetime = T0
    applied: bool = True
    applied_at: datetime | None = T0
    apply_delay: timedelta = timedelta(seconds=5)
    primary: Readiness | None = READY
    canary_ready: Readiness | None = READY
    route: Readiness | None = READY
    has_autoscaler: bool = True
    hook_answer: HookAnswer = all_hooks_pass
    metric_answer: MetricAnswer = lambda world: HEALTHY_METRICS
    commits: list[Decision] = field(default_factory=list)
    asked: list[list[Need]] = field(default_factory=list)
    pending_since: datetime | None = None

    def observation(self) -> Observation:
        return Observation(
            revision=self.revision,
            tracked_configs=dict(self.tracked_configs),
            applied=self.applied,
            applied_at=self.applied_at,
            primary=self.primary,
            canary=self.canary_ready,
            route=self.route,
            primary_replicas=2,
            has_autoscaler=self.has_autoscaler,
        )

    def decide_once(self) -> tuple[Decision, list[Need]]:
        observation = self.observation()
        found = Checks()
        needs: list[Need] = []
        decision = decide(self.canary, self.status, observation, found, self.now)
        while decision.kind is Kind.NEED:
            assert decision.needs, "a NEED must name what it needs"
            for need in decision.needs:
                assert need not in needs, f"asked twice for {need} in one tick"
                needs.append(need)
                if isinstance(need, NeedMetrics):
                    found = found.with_metrics(self.metric_answer(self))
                else:
                    found = found.with_hooks(self.hook_answer(self, need))
            decision = decide(self.canary, self.status, observation, found, self.now)
        return decision, needs

    def tick(self) -> Decision:
        self.settle()
        decision, needs = self.decide_once()
        self.asked.append(needs)
        if decision.kind is Kind.CHANGE:
            self.status = decision.status
            self.commits.append(decision)
            self.applied = False
            self.pending_since = self.now
        return decision

    def settle(self) -> None:
        """The applier applies the last commit once ``apply_delay`` has passed."""
        if not self.applied and self.pending_since is not None:
            due = self.pending_since + self.apply_delay
            if self.now >= due:
                self.applied = True
                self.applied_at = due

    def run(self, *, until: Callable[[World], bool], max_ticks: int = 200) -> list[Decision]:
        """Tick, sleeping to ``wake_at`` (or 5 s), until ``until`` holds after a tick."""
        decisions = []
        for _ in range(max_ticks):
            decision = self.tick()
            decisions.append(decision)
            if until(self):
                return decisions
            if decision.kind is Kind.WAIT and decision.wake_at is not None:
                self.now = max(self.now + timedelta(seconds=1), decision.wake_at)
            else:
                self.now += timedelta(seconds=5)
        raise AssertionError(f"not done after {max_ticks} ticks; status {self.status}")

    def initialise(self) -> None:
        self.run(until=lambda w: w.status.phase is Phase.INITIALIZED)

    def new_revision(self, revision: str = REV_B) -> None:
        """A person commits a new template; the applier applies it a moment later."""
        self.revision = revision
        self.applied = False
        self.pending_since = self.now


def in_phase(*phases: Phase) -> Callable[[World], bool]:
    return lambda world: world.status.phase in phases


def trail(world: World) -> list[tuple[str, int, str]]:
    """(phase, weight, subject) of every commit so far."""
    return [
        (str(c.status.phase), c.status.canary_weight, c.message.splitlines()[0])
        for c in world.commits
    ]
