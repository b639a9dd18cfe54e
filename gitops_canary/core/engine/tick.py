"""One tick of Flagger's ``advanceCanary``, as a pure function of what was observed.

The order of the steps is Flagger's (``flagger-behaviour.md`` §3.1, steps 13-28): readiness,
revision detection, restart, rollback webhooks, promotion traffic, finalising, the failed-checks
threshold, pre-rollout or analysis, then the strategy (canary weights, A/B, blue/green). What
changes for GitOps is *when* a step may be judged (DESIGN D4): only after the applier applied
the last commit, and for an analysed traffic step only after a full ``analysis.interval`` of
traffic since it was applied and since the last judgement.

External checks are asked for, not performed: when the tick reaches a webhook group or the
metrics whose results are not in ``checks`` yet, it stops with a NEED decision naming exactly
that group. The caller runs it and calls again, so webhooks with side effects (load tests,
gates) run only when, and in the order that, Flagger would run them.

Pure: no I/O, no clock (``now`` is a parameter), no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gitops_canary.core.decisions import (
    Decision,
    Event,
    EventType,
    Kind,
    Need,
    NeedMetrics,
    ReplicaEdit,
    Severity,
)
from gitops_canary.core.engine import wording
from gitops_canary.core.engine.weights import max_weight, next_step, next_weight, promotion_step
from gitops_canary.core.engine.writes import (
    finished_fields,
    promoted_condition,
    sync_fields,
    with_cookies,
)
from gitops_canary.core.messages import commit_message
from gitops_canary.core.observations import Checks, HookGroup, HookResult, Observation, Readiness
from gitops_canary.core.specs import Canary, HookType, Strategy
from gitops_canary.core.status import TERMINAL_PHASES, CanaryStatus, CheckRecord, Phase

_RUN_PHASES = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION})
_PROMOTION_PHASES = frozenset({Phase.PROMOTING, Phase.FINALISING})


class _NeedChecks(Exception):
    """Raised inside a tick when it reaches checks whose results are not known yet."""

    def __init__(self, needs: tuple[Need, ...]) -> None:
        super().__init__(", ".join(str(n) for n in needs))
        self.needs = needs


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so mixing them with aware ones never raises."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def decide(
    canary: Canary,
    status: CanaryStatus,
    observation: Observation,
    checks: Checks,
    now: datetime,
    *,
    interval_scale: float = 1.0,
) -> Decision:
    """The next step for ``canary``: WAIT, NEED some checks, or CHANGE the status and files.

    ``interval_scale`` shortens the analysis interval (the simulator runs rollouts in
    seconds); values outside ``(0, 1]`` are read as 1.
    """
    scale = interval_scale if 0 < interval_scale <= 1 else 1.0
    tick = _Tick(canary, status, observation, checks, _utc(now), scale)
    try:
        return tick.run()
    except _NeedChecks as need:
        names = ", ".join(str(n) for n in need.needs)
        return Decision(
            kind=Kind.NEED,
            status=status,
            needs=need.needs,
            reason=f"canary {canary.key} needs the results of: {names}",
        )


class _Tick:
    """The state of one ``decide`` call: inputs, and the events and checks gathered so far."""

    def __init__(  # noqa: PLR0917 - one call site, the arguments of decide()
        self,
        canary: Canary,
        status: CanaryStatus,
        observation: Observation,
        checks: Checks,
        now: datetime,
        interval_scale: float,
    ) -> None:
        self.canary = canary
        self.analysis = canary.spec.analysis
        self.status = status
        self.phase = status.phase
        self.obs = observation
        self.checks = checks
        self.now = now
        self.interval = timedelta(seconds=self.analysis.interval_seconds() * interval_scale)
        self.events: list[Event] = []
        self.records: list[CheckRecord] = []
        self.metric_values: list[tuple[str, float | None]] = []

    # ------------------------------------------------------------------ the tick

    def run(self) -> Decision:
        phase = self.phase
        if self.canary.spec.suspend:
            return self.wait(wording.SUSPENDED)
        if phase is None:
            return self.begin_initialization()
        if not self.obs.applied:
            return self.wait(wording.not_applied(self.canary))
        if phase is Phase.INITIALIZING:
            return self.initialize()
        if phase in (Phase.TERMINATING, Phase.TERMINATED):
            return self.wait(wording.not_handled(self.canary, phase.value))
        # No run under way: a new revision (or a pending approval) may start one.
        starting = phase in TERMINAL_PHASES or phase is Phase.WAITING
        if phase in TERMINAL_PHASES and not self.revision_changed():
            return self.wait(wording.idle(self.canary, phase.value))
        if not self.canary.skips_analysis():
            held = self.check_primary(starting=starting)
            if held is not None:
                return held
        route = self.obs.route
        if route is None:
            return self.wait(wording.route_missing(self.canary))
        if not route.ready:
            return self.wait(route.message or wording.route_missing(self.canary))
        if starting:
            return self.start_run()
        if phase in _RUN_PHASES and self.revision_changed():
            return self.restart()
        # Finalising routes nothing to the canary any more: its readiness no longer matters.
        if phase is not Phase.FINALISING:
            held = self.check_canary()
            if held is not None:
                return held
        if self.canary.skips_analysis():
            return self.skip_analysis()
        if phase is Phase.PROMOTING:
            return self.shift_to_primary()
        if phase is Phase.FINALISING:
            return self.finalise()
        return self.analyse()

    # ------------------------------------------------------------------ initialisation

    def begin_initialization(self) -> Decision:
        """First commit: primary (a copy of the target), Services, route 100/0, ``Initializing``.

        The revision copied to the primary is recorded now, so that a change of the target
        before initialisation completes is analysed as a new revision instead of being taken
        as already promoted.
        """
        fields = {
            "phase": Phase.INITIALIZING,
            "last_applied_spec": self.obs.revision,
            "tracked_configs": dict(self.obs.tracked_configs),
        }
        return self.change(fields, main=wording.initializing(self.canary), promote=True)

    def initialize(self) -> Decision:
        if not self.canary.skips_analysis():
            primary = self.obs.primary
            if primary is None:
                return self.wait(wording.primary_missing_at_init(self.canary))
            if not primary.ready:
                if primary.retriable:
                    return self.wait(self.readiness_text(primary, self.primary_name()))
                return self.rollback(deadline=self.readiness_text(primary, self.primary_name()))
        revision = self.status.last_applied_spec or self.obs.revision
        configs: Mapping[str, str] = (
            self.status.tracked_configs
            if self.status.last_applied_spec
            else self.obs.tracked_configs
        )
        fields = sync_fields(Phase.INITIALIZED, revision, configs)
        fields["last_promoted_spec"] = revision
        main = wording.initialization_done(self.canary)
        self.event(
            EventType.NORMAL,
            main,
            phase=Phase.INITIALIZED,
            alert=Severity.INFO,
            alert_message=wording.ALERT_INITIALIZED,
        )
        return self.change(fields, main=main, target=ReplicaEdit(0), fresh_checks=True)

    # ------------------------------------------------------------------ readiness

    def primary_name(self) -> str:
        return f"the primary Deployment {self.canary.target_name}-primary.{self.canary.namespace}"

    def target_name(self) -> str:
        return f"the canary Deployment {self.canary.target_name}.{self.canary.namespace}"

    @staticmethod
    def readiness_text(readiness: Readiness, what: str) -> str:
        return readiness.message or f"{what} is not ready"

    def check_primary(self, *, starting: bool) -> Decision | None:
        primary = self.obs.primary
        if primary is None:
            return self.wait(wording.missing(self.primary_name()))
        if primary.ready:
            return None
        text = self.readiness_text(primary, self.primary_name())
        # Without a run under way there is nothing to roll back: wait for the primary.
        if primary.retriable or starting:
            return self.wait(text)
        if self.phase in _PROMOTION_PHASES:
            return self.failed_promotion(text)
        return self.rollback(deadline=text)

    def check_canary(self) -> Decision | None:
        target = self.obs.canary
        if target is None:
            return self.wait(wording.missing(self.target_name()))
        if target.ready:
            return None
        text = self.readiness_text(target, self.target_name())
        if target.retriable:
            return self.wait(text)
        return self.rollback(deadline=text)

    # ------------------------------------------------------------------ revisions

    def revision_changed(self) -> bool:
        """Flagger's ``HasTargetChanged || HaveDependenciesChanged`` (§3.2).

        A revert to the promoted template is not a change; any config checksum change is.
        """
        status, revision = self.status, self.obs.revision
        if not status.last_applied_spec:
            return True
        if revision not in (status.last_applied_spec, status.last_promoted_spec):
            return True
        return dict(self.obs.tracked_configs) != dict(status.tracked_configs)

    def start_run(self) -> Decision:
        """Confirm-rollout gate, then scale the target up and enter ``Progressing``."""
        failure = self.pass_events(self.hooks(HookType.CONFIRM_ROLLOUT))
        if failure is not None:
            main = wording.waiting_for_approval(self.canary, failure.name)
            wake = self.now + self.interval
            if self.phase is Phase.WAITING:
                return self.wait(main, wake_at=wake)
            self.gate_event(main, HookType.CONFIRM_ROLLOUT, failure, wording.ALERT_WAITING)
            return self.change({"phase": Phase.WAITING}, main=main, wake_at=wake)
        main = wording.new_revision(self.canary)
        self.event(
            EventType.NORMAL,
            main,
            phase=Phase.PROGRESSING,
            alert=Severity.INFO,
            alert_message=wording.ALERT_NEW_REVISION,
        )
        fields = sync_fields(Phase.PROGRESSING, self.obs.revision, self.obs.tracked_configs)
        replicas = None if self.obs.has_autoscaler else max(1, self.obs.primary_replicas)
        return self.change(fields, main=main, target=ReplicaEdit(replicas), fresh_checks=True)

    def restart(self) -> Decision:
        """A new revision mid-analysis: weight 0, a fresh run; confirm-rollout is not re-run."""
        main = wording.restarting(self.canary)
        self.event(EventType.NORMAL, main)
        fields = sync_fields(Phase.PROGRESSING, self.obs.revision, self.obs.tracked_configs)
        return self.change(fields, main=main, fresh_checks=True)

    # ------------------------------------------------------------------ promotion

    def skip_analysis(self) -> Decision:
        """§3.12: promote and finish in one commit once the canary is ready."""
        if self.status.failed_checks >= self.analysis.threshold_value():
            return self.rollback()
        self.event(EventType.NORMAL, wording.copying(self.canary))
        main = wording.promotion_skipped(self.canary)
        self.event(
            EventType.NORMAL,
            main,
            phase=Phase.SUCCEEDED,
            alert=Severity.INFO,
            alert_message=wording.ALERT_SKIPPED,
        )
        return self.change(
            finished_fields(self.status, Phase.SUCCEEDED),
            main=main,
            promote=True,
            target=ReplicaEdit(0),
            post_rollout=Phase.SUCCEEDED,
        )

    def shift_to_primary(self) -> Decision:
        """§3.8: the primary runs the promoted template; move traffic back to it."""
        step = self.analysis.step_weight_promotion or 0
        weight = self.status.canary_weight
        finalising = {
            "phase": Phase.FINALISING,
            "canary_weight": 0,
            "iterations": 0,
            "mirrored": False,
        }
        if step <= 0 or weight <= 0:
            self.event(EventType.NORMAL, wording.ROUTING_TO_PRIMARY)
            return self.change(finalising, main=wording.ROUTING_TO_PRIMARY)
        primary, canary_weight = promotion_step(step, weight)
        main = wording.advance_primary(self.canary, primary)
        self.event(EventType.NORMAL, main)
        if primary >= 100:
            return self.change(finalising, main=main)
        return self.change({"canary_weight": canary_weight}, main=main)

    def finalise(self) -> Decision:
        """§3.1 step 23: all traffic is on the primary; park the target and finish."""
        main = wording.promotion_completed(self.canary)
        self.event(
            EventType.NORMAL,
            main,
            phase=Phase.SUCCEEDED,
            alert=Severity.INFO,
            alert_message=wording.ALERT_SUCCEEDED,
        )
        return self.change(
            finished_fields(self.status, Phase.SUCCEEDED),
            main=main,
            target=ReplicaEdit(0),
            post_rollout=Phase.SUCCEEDED,
        )

    def confirm_promotion(self) -> Decision | None:
        """The confirm-promotion gate: ``None`` when approved, else the hold decision."""
        failure = self.pass_events(self.hooks(HookType.CONFIRM_PROMOTION))
        if failure is None:
            return None
        main = wording.waiting_for_promotion(self.canary, failure.name)
        wake = self.now + self.interval
        if self.phase is Phase.WAITING_PROMOTION:
            return self.wait(main, wake_at=wake)
        self.gate_event(main, HookType.CONFIRM_PROMOTION, failure, wording.ALERT_WAITING_PROMOTION)
        return self.change({"phase": Phase.WAITING_PROMOTION}, main=main, wake_at=wake)

    def promote(self) -> Decision:
        main = wording.copying(self.canary)
        self.event(EventType.NORMAL, main)
        return self.change({"phase": Phase.PROMOTING}, main=main, promote=True)

    def promote_when_confirmed(self) -> Decision:
        held = self.confirm_promotion()
        return held if held is not None else self.promote()

    # ------------------------------------------------------------------ rollback

    def rollback(self, *, main: str | None = None, deadline: str | None = None) -> Decision:
        """Flagger's ``rollback()``: all traffic to the primary, target parked, ``Failed``."""
        if deadline is not None:
            text = wording.rolling_back_deadline(self.canary, deadline)
            self.event(
                EventType.WARNING,
                text,
                alert=Severity.ERROR,
                alert_message=wording.alert_deadline(deadline),
            )
            main = main or text
        failed_checks = self.status.failed_checks
        if failed_checks >= self.analysis.threshold_value():
            text = wording.rolling_back_threshold(self.canary, failed_checks)
            self.event(
                EventType.WARNING,
                text,
                alert=Severity.ERROR,
                alert_message=wording.alert_threshold(failed_checks),
            )
            main = main or text
        failed = wording.canary_failed(self.canary)
        self.event(EventType.WARNING, failed)
        fields = {
            "phase": Phase.FAILED,
            "canary_weight": 0,
            "failed_checks": 0,
            "iterations": 0,
            "mirrored": False,
        }
        return self.change(
            fields, main=main or failed, target=ReplicaEdit(0), post_rollout=Phase.FAILED
        )

    def failed_promotion(self, error: str) -> Decision:
        """Primary not ready for good while promoting: keep serving from the canary (§2.3)."""
        main = wording.promotion_failed(self.canary, error)
        self.event(
            EventType.WARNING,
            main,
            alert=Severity.ERROR,
            alert_message=wording.alert_promotion_failed(error),
        )
        fields = {
            "phase": Phase.FAILED,
            "canary_weight": 100,
            "failed_checks": 0,
            "iterations": 0,
            "mirrored": False,
        }
        return self.change(fields, main=main, post_rollout=Phase.FAILED)

    # ------------------------------------------------------------------ analysis

    def analysis_due(self, first_step: bool) -> datetime | None:
        """When this step may be judged; ``None`` when it may be judged now (D4).

        The step before any traffic reaches the canary (weight 0, iteration 0) judges no
        traffic, so it only waits an interval when it is a retry after a failed check.
        """
        if first_step and self.status.failed_checks == 0:
            return None
        moments = []
        if self.obs.applied_at is not None:
            moments.append(_utc(self.obs.applied_at) + self.interval)
        if self.status.last_transition_time is not None:
            moments.append(_utc(self.status.last_transition_time) + self.interval)
        return max(moments, default=None)

    def analyse(self) -> Decision:
        """Progressing or WaitingPromotion: rollback hooks, threshold, checks, then a step."""
        status = self.status
        first_step = (
            status.canary_weight == 0
            and status.iterations == 0
            and not (self.analysis.mirror and status.mirrored)
        )
        due = self.analysis_due(first_step)
        if due is not None and self.now < due:
            reason = wording.analysis_due(self.canary, status.canary_weight, due.isoformat())
            return self.wait(reason, wake_at=due)
        for result in self.hooks(HookType.ROLLBACK).results:
            if result.ok:
                self.event(EventType.WARNING, f"Rollback check {result.name} passed")
                main = wording.rolling_back_manual(self.canary)
                self.event(
                    EventType.WARNING,
                    main,
                    alert=Severity.WARN,
                    alert_message=wording.ALERT_MANUAL_ROLLBACK,
                )
                return self.rollback(main=main)
            self.event(EventType.NORMAL, wording.rollback_not_signalled(result.name))
        if status.failed_checks >= self.analysis.threshold_value():
            return self.rollback()
        if first_step:
            self.event(EventType.NORMAL, wording.starting_analysis(self.canary))
            failure = self.pass_events(self.hooks(HookType.PRE_ROLLOUT))
            if failure is not None:
                return self.failed_check(
                    wording.pre_rollout_failed(self.canary, failure.name, failure.message)
                )
        else:
            failure = self.pass_events(self.hooks(HookType.ROLLOUT))
            if failure is not None:
                return self.failed_check(
                    wording.rollout_failed(self.canary, failure.name, failure.message)
                )
            metric_failure = self.metrics()
            if metric_failure is not None:
                return self.failed_check(metric_failure)
        strategy = self.canary.strategy()
        if strategy is Strategy.AB_TESTING:
            return self.advance_ab()
        if strategy is Strategy.BLUE_GREEN:
            return self.advance_blue_green()
        return self.advance_canary()

    def metrics(self) -> str | None:
        """The first failing metric's event, ``None`` when all pass (or none are defined)."""
        if not self.analysis.metrics:
            return None
        results = self.checks.metrics
        if results is None:
            raise _NeedChecks((NeedMetrics.METRICS,))
        for result in results:
            self.records.append(
                CheckRecord(
                    name=result.name,
                    kind="metric",
                    ok=result.ok,
                    value=result.value,
                    threshold=result.threshold,
                    message=result.message,
                )
            )
            self.metric_values.append((result.name, result.value))
        failure = next((r for r in results if not r.ok), None)
        if failure is None:
            return None
        return failure.message or wording.metric_failed(self.canary, failure.name)

    def failed_check(self, main: str) -> Decision:
        """§3.6: one more failed check; the weight stays where it is."""
        self.event(EventType.WARNING, main)
        return self.change(
            {"failed_checks": self.status.failed_checks + 1},
            main=main,
            wake_at=self.now + self.interval,
        )

    # ------------------------------------------------------------------ strategies

    def advance_canary(self) -> Decision:
        """§3.5: confirm-traffic-increase, then one weight step, or promotion at maxWeight."""
        status = self.status
        weight = status.canary_weight
        limit = max_weight(self.analysis)
        if weight < limit and next_step(self.analysis, weight) <= 0:
            return self.wait(wording.no_step(self.canary))
        if not status.mirrored and self.phase is Phase.PROGRESSING:
            failure = self.pass_events(self.hooks(HookType.CONFIRM_TRAFFIC_INCREASE))
            if failure is not None:
                main = wording.waiting_for_traffic_increase(self.canary, failure.name)
                self.gate_event(
                    main, HookType.CONFIRM_TRAFFIC_INCREASE, failure, wording.ALERT_WAITING_TRAFFIC
                )
                return self.wait(main, wake_at=self.now + self.interval)
        if weight >= limit:
            return self.promote_when_confirmed()
        wake = self.now + self.interval
        if self.analysis.mirror and weight == 0 and not status.mirrored:
            # One interval of mirrored traffic before the first weighted step (Flagger on Istio).
            main = wording.advance_weight(self.canary, 0)
            self.event(EventType.NORMAL, main)
            return self.change({"mirrored": True}, main=main, wake_at=wake)
        new_weight = next_weight(self.analysis, weight)
        main = wording.advance_weight(self.canary, new_weight)
        self.event(EventType.NORMAL, main)
        return self.change(
            {"canary_weight": new_weight, "mirrored": False}, main=main, wake_at=wake
        )

    def advance_ab(self) -> Decision:
        """§3.9: one iteration per analysed tick with the matching requests on the canary."""
        iterations = self.analysis.iterations_value()
        if iterations > self.status.iterations:
            iteration = self.status.iterations + 1
            main = wording.advance_iteration(self.canary, iteration, iterations)
            self.event(EventType.NORMAL, main)
            return self.change(
                {"iterations": iteration, "canary_weight": 100},
                main=main,
                wake_at=self.now + self.interval,
            )
        return self.promote_when_confirmed()

    def advance_blue_green(self) -> Decision:
        """§3.10: iterations at 100/0 (mirrored if asked), all traffic to the canary, promote."""
        iterations = self.analysis.iterations_value()
        done = self.status.iterations
        wake = self.now + self.interval
        if iterations > done:
            main = wording.advance_iteration(self.canary, done + 1, iterations)
            self.event(EventType.NORMAL, main)
            fields = {"iterations": done + 1, "mirrored": self.analysis.mirror}
            return self.change(fields, main=main, wake_at=wake)
        if iterations == done:
            held = self.confirm_promotion()
            if held is not None:
                return held
            main = wording.STOP_MIRRORING if self.analysis.mirror else wording.ROUTING_TO_CANARY
            self.event(EventType.NORMAL, main)
            fields = {"iterations": done + 1, "canary_weight": 100, "mirrored": False}
            return self.change(fields, main=main, wake_at=wake)
        return self.promote()

    # ------------------------------------------------------------------ checks and events

    def hooks(self, hook_type: HookType) -> HookGroup:
        """The results of one webhook group, asking for them if they are not known yet."""
        if not self.analysis.hooks(hook_type):
            return HookGroup(hook_type=hook_type, results=())
        group = self.checks.hooks.get(hook_type)
        if group is None:
            raise _NeedChecks((hook_type,))
        for result in group.results:
            if hook_type is HookType.ROLLBACK:
                # A rollback hook "passes" by not asking for a rollback.
                ok, message = not result.ok, "rollback requested" if result.ok else ""
            else:
                ok, message = result.ok, result.message
            self.records.append(
                CheckRecord(
                    name=result.name,
                    kind="webhook",
                    ok=ok,
                    message=message,
                    hook_type=hook_type.value,
                )
            )
        return group

    def pass_events(self, group: HookGroup) -> HookResult | None:
        """Emit ``<Type> check <hook> passed`` up to the first failure, which is returned."""
        for result in group.results:
            if not result.ok:
                return result
            text = wording.hook_passed(group.hook_type, result.name)
            if text is not None:
                self.event(EventType.NORMAL, text)
        return None

    def gate_event(self, main: str, hook_type: HookType, failure: HookResult, alert: str) -> None:
        """The Halt event of a confirm-* gate, with its warn alert unless the hook mutes it."""
        muted = any(h.mute_alert for h in self.analysis.hooks(hook_type) if h.name == failure.name)
        self.event(
            EventType.WARNING,
            main,
            alert=None if muted else Severity.WARN,
            alert_message="" if muted else alert,
        )

    def event(
        self,
        type_: EventType,
        message: str,
        *,
        phase: Phase | None = None,
        alert: Severity | None = None,
        alert_message: str = "",
    ) -> None:
        self.events.append(
            Event(
                type=type_,
                message=message,
                phase=phase or self.phase,
                alert=alert,
                alert_message=alert_message,
            )
        )

    # ------------------------------------------------------------------ decisions

    def wait(self, reason: str, *, wake_at: datetime | None = None) -> Decision:
        return Decision(
            kind=Kind.WAIT,
            status=self.status,
            reason=reason,
            events=tuple(self.events),
            wake_at=wake_at,
            metrics=tuple(self.metric_values),
        )

    def change(
        self,
        fields: Mapping[str, Any],
        *,
        main: str,
        promote: bool = False,
        target: ReplicaEdit | None = None,
        post_rollout: Phase | None = None,
        wake_at: datetime | None = None,
        fresh_checks: bool = False,
    ) -> Decision:
        """A CHANGE: the status write (stamped, condition, cookies) and its commit message.

        ``last_checks`` holds this tick's checks; a tick that ran none keeps the previous ones,
        except when a run starts or restarts (``fresh_checks``).
        """
        status = with_cookies(self.canary, self.status.model_copy(update=dict(fields)))
        phase = status.phase or Phase.INITIALIZING
        keep_checks = not (self.records or fresh_checks)
        status = status.model_copy(
            update={
                "last_transition_time": self.now,
                "message": main,
                "last_checks": status.last_checks if keep_checks else list(self.records),
                "conditions": promoted_condition(self.canary, status.conditions, phase, self.now),
            }
        )
        return Decision(
            kind=Kind.CHANGE,
            status=status,
            promote=promote,
            target_replicas=target,
            events=tuple(self.events),
            post_rollout=post_rollout,
            message=commit_message(self.canary, status, self.events, self.records),
            wake_at=wake_at,
            metrics=tuple(self.metric_values),
        )
