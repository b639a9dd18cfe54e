"""One tick: fetch the repo, discover canaries, observe, decide, write, commit and push, notify.

This module wires the adapters to the pure engine and holds no state that matters: everything a
restart needs is in git (DESIGN D2). In memory it keeps only the schedule (when each canary is due
next) and which problems it already reported, so a broken canary is reported once, not every tick.

One canary's error (bad spec, unreachable Prometheus, a 403 from the API server) is reported for
that canary and never stops the others. An error while observing means *no decision* for that
canary this tick: nothing is committed on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from gitops_canary.config import Config
from gitops_canary.core.decisions import Decision, Event, EventType, Kind, NeedMetrics
from gitops_canary.core.engine import decide
from gitops_canary.core.hashing import webhook_checksum
from gitops_canary.core.observations import (
    NO_CHECKS,
    Checks,
    MetricResult,
    Observation,
    Readiness,
)
from gitops_canary.core.promql import MetricQuery, QueryPlanError, plan_queries
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import CanaryStatus, Phase
from gitops_canary.core.verdicts import QueryOutcome, judge
from gitops_canary.observe.appliers import AppliedState
from gitops_canary.observe.cluster import deployment_readiness, route_readiness
from gitops_canary.repo.discovery import DiscoveredCanary, Discovery
from gitops_canary.repo.gitrepo import GitError, GitRepo
from gitops_canary.repo.pullrequests import ProposalOutcome, ProposalState
from gitops_canary.repo.pushing import BatchedStep, Produce, batch_producer, commit_and_push
from gitops_canary.repo.scrub import scrub
from gitops_canary.steps import write_step
from gitops_canary.telemetry import Recorder, canary_fields

log = logging.getLogger("gitops_canary.reconciler")


# --------------------------------------------------------------------------- ports


class ClusterPort(Protocol):
    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None: ...


class AppliedPort(Protocol):
    """Has the commit that last touched a canary been applied? (bound to one applier object)"""

    def __call__(self, commit: str) -> AppliedState: ...


class MetricsPort(Protocol):
    def evaluate(self, queries: Sequence[MetricQuery]) -> list[QueryOutcome]: ...


class HooksPort(Protocol):
    def run_group(
        self, canary: Canary, hook_type: HookType, status_phase: Phase, checksum: str
    ) -> Any: ...

    def send_event(
        self,
        webhooks: Sequence[Any],
        canary: Canary,
        event: Event,
        phase: Phase,
        checksum: str,
    ) -> Any: ...


class NotifyPort(Protocol):
    def __call__(
        self, found: DiscoveredCanary, event: Event, status: CanaryStatus, commit: str | None
    ) -> None: ...


#: ``push(repo, produce, attempts=N) -> sha | None`` (see :func:`repo.pushing.commit_and_push`).
#: Given :func:`~repo.pushing.commit_and_push` itself, or a wrapper of it with ``batches = True``,
#: the reconciler pushes all the steps of a tick at once (``produce`` commits each step).
PushPort = Callable[..., str | None]
#: ``propose(repo, canary_key, produce) -> ProposalState`` (pull-request mode).
ProposePort = Callable[[GitRepo, str, Produce], ProposalState]
Discover = Callable[[Path], Discovery]
Clock = Callable[[], datetime]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CanaryOutcome:
    key: str
    kind: str  # "commit" | "wait" | "error" | "not-due" | "unchanged"
    message: str = ""
    commit: str | None = None
    phase: Phase | None = None
    weight: int = 0
    diff: str = ""


@dataclass
class TickReport:
    head: str = ""
    outcomes: list[CanaryOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def commits(self) -> list[str]:
        return [o.commit for o in self.outcomes if o.commit]


# --------------------------------------------------------------------------- the reconciler


class Reconciler:
    """Runs ticks. The composition root builds it with real adapters (or the simulator's)."""

    def __init__(
        self,
        config: Config,
        *,
        repo: GitRepo,
        discover: Discover,
        cluster: ClusterPort,
        applier_for: Callable[[str], AppliedPort],
        metrics: MetricsPort,
        hooks: HooksPort,
        notify: NotifyPort,
        push: PushPort,
        recorder: Recorder,
        clock: Clock,
        propose: ProposePort | None = None,
    ) -> None:
        self.config = config
        self._repo = repo
        self._discover = discover
        self._cluster = cluster
        self._applier_for = applier_for
        self._metrics = metrics
        self._hooks = hooks
        self._notify = notify
        self._push = push
        self._propose = propose
        self._closed_proposals: dict[str, str] = {}
        self._recorder = recorder
        self._clock = clock
        self._due: dict[str, datetime] = {}
        self._reported: dict[str, str] = {}
        self._last_wait: dict[str, str] = {}
        self._first_seen_applied: dict[tuple[str, str], datetime] = {}
        #: Why the applier has not applied a canary's last commit yet, in its own words.
        self._not_applied: dict[str, str] = {}
        #: (head, its discovery) while the working copy is known to be exactly that head (reset,
        #: then only read): a tick at the same head needs neither the reset nor the discovery.
        self._clean: tuple[str, Discovery] | None = None
        #: The commit this tick's last-commit lookups answer for (None: the branch moved during
        #: the tick, ask git per canary), the canary directories, and the answers.
        self._touch_rev: str | None = None
        self._discovered: Discovery | None = None
        self._counted: Discovery | None = None
        self._touch_dirs: list[str] = []
        self._touches: dict[str, str | None] | None = None
        #: Steps waiting for this tick's one push (None: each step is pushed on its own).
        self._batch: list[_PendingStep] | None = None
        self._attempt_discovery: Discovery | None = None
        self._durations_for: object = None
        self._poll_delta = timedelta(0)
        #: ``analysis.interval`` as written -> the scaled interval.
        self._intervals: dict[str | None, timedelta] = {}
        #: What the canary gauges were last set to, per canary (setting them again is a no-op).
        self._gauges: dict[str, tuple[str, str, Phase | None, int]] = {}

    # -- scheduling

    def _poll(self) -> timedelta:
        # Asked several times per canary per tick: parse the (frozen) configuration's once.
        timing = self.config.timing
        if self._durations_for is not timing:
            self._durations_for = timing
            self._poll_delta = timedelta(seconds=timing.poll_seconds())
            self._intervals = {}
        return self._poll_delta

    def _interval(self, canary: Canary) -> timedelta:
        self._poll()  # drops the intervals scaled by an older configuration
        analysis = canary.spec.analysis
        interval = self._intervals.get(analysis.interval)
        if interval is None:
            seconds = analysis.interval_seconds() * self.config.timing.interval_scale
            interval = self._intervals[analysis.interval] = timedelta(seconds=seconds)
        return interval

    def next_wake(self, now: datetime) -> datetime:
        """When the earliest canary is due (at the latest one poll interval from now)."""
        return min([now + self._poll(), *self._due.values()])

    # -- one tick

    def tick(self, *, dry_run: bool = False) -> TickReport:
        """One pass over every due canary. ``dry_run`` decides but writes and calls nothing
        with side effects beyond the checks the engine asks for (see ``plan``)."""
        report = TickReport()
        self._recorder.ticks.inc()
        report.head = self._repo.fetch()
        if self._clean is None or self._clean[0] != report.head:
            self._clean = None
            self._repo.reset_to_remote()
            self._clean = (report.head, self._discover(self._repo.worktree))
        discovery = self._clean[1]
        self._touch_rev, self._touches = report.head, None
        if discovery is not self._discovered:
            self._discovered, self._touch_dirs = discovery, []
        # The real pusher takes many steps in one push (one commit each); a stand-in for it
        # (plan's recorder, a test's) gets one call per step unless it says it batches too.
        batches = self._push is commit_and_push or getattr(self._push, "batches", False) is True
        self._batch = [] if batches and not dry_run else None
        try:
            self._reconcile_all(discovery, report, dry_run=dry_run)
            if self._batch:
                self._push_batch(report)
        finally:
            self._batch = None
        self._recorder.last_tick.set(self._clock().timestamp())
        return report

    def _reconcile_all(self, discovery: Discovery, report: TickReport, *, dry_run: bool) -> None:
        self._report_problems(discovery, report)
        self._count(discovery)
        for found in discovery.canaries:
            if found.canary is None or not found.runnable:
                continue
            canary = found.canary
            # Whole seconds, like Kubernetes timestamps: status files stay readable.
            now = self._clock().replace(microsecond=0)
            due = self._due.get(canary.key)
            if due is not None and now < due:
                report.outcomes.append(CanaryOutcome(canary.key, "not-due"))
                continue
            try:
                outcome = self._reconcile(found, now, dry_run=dry_run)
            except Exception as err:  # one canary's trouble never stops the others
                outcome = self._failed(canary, now, err)
            if outcome.kind == "pending" and self._batch:
                self._batch[-1].position = len(report.outcomes)
            report.outcomes.append(outcome)

    def _failed(self, canary: Canary, now: datetime, err: Exception) -> CanaryOutcome:
        self._recorder.errors.labels(_error_kind(err)).inc()
        message = f"{canary.dotted}: {err}"
        self._report_once(canary.key, message, canary)
        self._due[canary.key] = now + self._poll()
        return CanaryOutcome(canary.key, "error", message)

    def _count(self, discovery: Discovery) -> None:
        if discovery is self._counted:
            return  # the same discovery as last tick: the gauges already say so
        self._counted = discovery
        per_namespace: dict[str, int] = {}
        for found in discovery.canaries:
            per_namespace[found.namespace] = per_namespace.get(found.namespace, 0) + 1
        for namespace, count in per_namespace.items():
            self._recorder.total.labels(namespace).set(count)

    def _report_problems(self, discovery: Discovery, report: TickReport) -> None:
        texts = list(discovery.issues)
        for found in discovery.canaries:
            texts.extend(found.issues)
            texts.extend(w if w.endswith("(warning)") else f"{w} (warning)" for w in found.warnings)
        for text in texts:
            report.problems.append(text)
            if self._reported.get(f"issue:{text}") is None:
                self._reported[f"issue:{text}"] = text
                self._recorder.errors.labels("invalid-input").inc()
                if text.endswith("(warning)"):
                    log.warning(text)
                else:
                    log.error(text)

    def _report_once(self, key: str, message: str, canary: Canary) -> None:
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.error(message, extra=canary_fields(canary))

    # -- one canary

    def _reconcile(self, found: DiscoveredCanary, now: datetime, *, dry_run: bool) -> CanaryOutcome:
        assert found.canary is not None
        canary, status = found.canary, found.status
        observation = self._observe(found, now)
        checks = NO_CHECKS
        ran_checks = False
        decision = self._decide(canary, status, observation, checks, now)
        while decision.kind is Kind.NEED:
            checks = self._run_checks(found, decision, checks, observation)
            ran_checks = True
            decision = self._decide(canary, status, observation, checks, now)
        self._schedule(canary, decision, now, ran_checks)
        self._reported.pop(canary.key, None)
        self._observe_gauges(canary, status.phase, status.canary_weight)
        if decision.kind is Kind.WAIT:
            if not observation.applied and canary.key in self._not_applied:
                # The applier's own words name the object and what it did apply.
                reason = f"{self._not_applied[canary.key]}, before judging canary {canary.key}"
                decision = replace(decision, reason=reason)
            self._log_wait(canary, status, decision)
            return CanaryOutcome(
                canary.key, "wait", decision.reason, None, status.phase, status.canary_weight
            )
        self._last_wait.pop(canary.key, None)
        if dry_run:
            return CanaryOutcome(
                canary.key, "commit", decision.message, None, decision.status.phase,
                decision.status.canary_weight,
            )  # fmt: skip
        if self._propose is not None and self._needs_review(decision):
            produce = self._producer(found, decision, observation, checks, now)
            self._moved()
            return self._proposal(found, decision, produce)
        if self._batch is not None:
            produce = self._producer(
                found, decision, observation, checks, now, rediscover=self._rediscover_once
            )
            self._batch.append(_PendingStep(found, decision, produce, now))
            return CanaryOutcome(canary.key, "pending")
        produce = self._producer(found, decision, observation, checks, now)
        self._moved()
        sha = self._push(self._repo, produce, attempts=self.config.push.attempts)
        self._after_commit(found, decision, sha)
        return _committed(canary, decision, sha)

    def _moved(self) -> None:
        """Something is about to write: the working copy and the branch tip may change."""
        self._clean = None
        self._touch_rev = None

    # -- one push for the tick's steps (D5 still holds: a rejected push recomputes them all)

    def _push_batch(self, report: TickReport) -> None:
        assert self._batch is not None
        pending = self._batch
        steps = [BatchedStep(item.produce) for item in pending]
        each_step = batch_producer(self._repo, steps)

        def produce_all(worktree: Path) -> None:
            self._attempt_discovery = None  # an attempt after a rejection reads the tip once
            each_step(worktree)

        fresh_tip = self._clean[0] if self._clean is not None else None
        self._moved()
        failure: Exception | None = None
        try:
            self._push(
                self._repo, produce_all, attempts=self.config.push.attempts, fresh_tip=fresh_tip
            )
        except Exception as err:
            failure = err
        finally:
            self._attempt_discovery = None
        for item, step in zip(pending, steps, strict=True):
            assert item.found.canary is not None
            canary = item.found.canary
            error = step.error or failure
            try:
                if error is not None:
                    raise error
                self._after_commit(item.found, item.decision, step.sha)
                outcome = _committed(canary, item.decision, step.sha)
            except Exception as err:  # one canary's trouble never stops the others
                outcome = self._failed(canary, item.now, err)
            report.outcomes[item.position] = outcome

    def _rediscover_once(self, worktree: Path) -> Discovery:
        if self._attempt_discovery is None:
            self._attempt_discovery = self._discover(worktree)
        return self._attempt_discovery

    def _decide(
        self,
        canary: Canary,
        status: CanaryStatus,
        observation: Observation,
        checks: Checks,
        now: datetime,
    ) -> Decision:
        return decide(
            canary,
            status,
            observation,
            checks,
            now,
            interval_scale=self.config.timing.interval_scale,
        )

    def _schedule(
        self, canary: Canary, decision: Decision, now: datetime, ran_checks: bool
    ) -> None:
        if ran_checks and decision.kind is Kind.WAIT:
            # A gate said "not yet": ask again one interval later, as Flagger would.
            due = now + self._interval(canary)
        elif decision.wake_at is not None:
            due = max(decision.wake_at, now)
        else:
            due = now + self._poll()
        self._due[canary.key] = min(due, now + max(self._interval(canary), self._poll()))

    def _observe_gauges(self, canary: Canary, phase: Phase | None, weight: int) -> None:
        state = (canary.target_name, canary.namespace, phase, weight)
        if self._gauges.get(canary.key) != state:
            self._gauges[canary.key] = state
            self._recorder.observe_canary(canary, phase, weight)

    def _log_wait(self, canary: Canary, status: CanaryStatus, decision: Decision) -> None:
        if self._last_wait.get(canary.key) == decision.reason:
            return
        self._last_wait[canary.key] = decision.reason
        log.info(decision.reason, extra=canary_fields(canary, status.phase))

    # -- observing

    def _observe(self, found: DiscoveredCanary, now: datetime) -> Observation:
        assert found.canary is not None
        assert found.revision is not None
        canary = found.canary
        ns = canary.namespace
        applied, applied_at = self._applied(found, now)
        primary_name = f"{canary.target_name}-primary"
        primary = self._deployment(
            primary_name, ns, f"{primary_name}.{ns} not ready: ", canary, now
        )
        target = self._deployment(
            canary.target_name, ns, f"canary deployment {canary.target_name}.{ns} not ready: ",
            canary, now, primary=False,
        )  # fmt: skip
        return Observation(
            revision=found.revision,
            tracked_configs=found.tracked_configs,
            applied=applied,
            applied_at=applied_at,
            primary=primary,
            canary=target,
            route=self._route(found),
            primary_replicas=self._primary_replicas(found),
            has_autoscaler=found.hpa is not None,
        )

    def _applied(self, found: DiscoveredCanary, now: datetime) -> tuple[bool, datetime | None]:
        """Whether the last commit touching the canary's directory is applied, and since when."""
        commit = self._last_commit(found.canary_dir)
        if commit is None:
            return True, None
        state = self._applier_for(found.canary_dir)(commit)
        if not state.applied:
            self._not_applied[found.key] = state.message
            return False, None
        self._not_applied.pop(found.key, None)
        # The interval counts from when the step was first applied. Flux moves Ready's time with
        # every newer revision it applies, so a busy branch must not push the analysis back;
        # and an applier that does not say when (compare-live) counts from the first sighting.
        first = self._first_seen_applied.setdefault((found.key, commit), state.applied_at or now)
        if state.applied_at is not None and state.applied_at < first:
            self._first_seen_applied[(found.key, commit)] = first = state.applied_at
        return True, first

    def _last_commit(self, directory: str) -> str | None:
        """The newest commit that touched ``directory``: for every canary in one git query."""
        if self._touch_rev is not None and self._touches is None:
            if not self._touch_dirs and self._discovered is not None:
                canaries = self._discovered.canaries
                self._touch_dirs = [found.canary_dir for found in canaries if found.runnable]
            try:
                self._touches = self._repo.last_commits_touching(self._touch_dirs, self._touch_rev)
            except GitError:
                self._touch_rev = None  # each canary's own query reports its problem
        if self._touch_rev is None or self._touches is None or directory not in self._touches:
            return self._repo.last_commit_touching([directory])
        return self._touches[directory]

    def _deployment(
        self,
        name: str,
        ns: str,
        prefix: str,
        canary: Canary,
        now: datetime,
        *,
        primary: bool = True,
    ) -> Readiness | None:
        obj = self._cluster.get("apps/v1", "Deployment", ns, name)
        if obj is None:
            return None
        analysis = canary.spec.analysis
        return deployment_readiness(
            obj,
            name_prefix=prefix,
            threshold_percent=analysis.primary_ready_percent()
            if primary
            else analysis.canary_ready_percent(),
            deadline_seconds=canary.spec.progress_deadline(),
            now=now,
        )

    def _route(self, found: DiscoveredCanary) -> Readiness | None:
        assert found.canary is not None
        canary = found.canary
        if found.provider == "contour":
            api_version, kind = "projectcontour.io/v1", "HTTPProxy"
        elif found.provider == "gatewayapi:v1beta1":
            api_version, kind = "gateway.networking.k8s.io/v1beta1", "HTTPRoute"
        else:
            api_version, kind = "gateway.networking.k8s.io/v1", "HTTPRoute"
        route = self._cluster.get(api_version, kind, canary.namespace, canary.service_name)
        return None if route is None else route_readiness(route)

    def _primary_replicas(self, found: DiscoveredCanary) -> int:
        for obj in found.generated.values():
            if obj.get("kind") == "Deployment":
                replicas = obj.get("spec", {}).get("replicas")
                if isinstance(replicas, int) and replicas > 0:
                    return replicas
        return 1

    # -- checks (webhooks and metrics), only when the engine asks for them

    def _run_checks(
        self, found: DiscoveredCanary, decision: Decision, checks: Checks, observation: Observation
    ) -> Checks:
        assert found.canary is not None
        canary = self._for_calls(found.canary)
        checksum = webhook_checksum(observation.revision, dict(observation.tracked_configs))
        phase = found.status.phase or Phase.INITIALIZING
        for need in decision.needs:
            if isinstance(need, NeedMetrics):
                checks = checks.with_metrics(self._run_metrics(found))
            else:
                checks = checks.with_hooks(self._hooks.run_group(canary, need, phase, checksum))
        return checks

    def _for_calls(self, canary: Canary) -> Canary:
        """The canary with ``addressOverrides`` applied to its webhook URLs."""
        if not self.config.address_overrides:
            return canary
        analysis = canary.spec.analysis
        hooks = [
            hook.model_copy(update={"url": self.config.rewrite_address(hook.url)})
            for hook in analysis.webhooks
        ]
        spec = canary.spec.model_copy(
            update={"analysis": analysis.model_copy(update={"webhooks": hooks})}
        )
        return canary.model_copy(update={"spec": spec})

    def _run_metrics(self, found: DiscoveredCanary) -> tuple[MetricResult, ...]:
        assert found.canary is not None
        assert found.provider is not None
        canary = found.canary
        templates = {t.key: t for t in found.metric_templates.values()}
        plan = plan_queries(
            canary, found.provider, templates, self.config.defaults.prometheus.address
        )
        queries = [
            replace(q, address=self.config.rewrite_address(q.address))
            for q in plan
            if isinstance(q, MetricQuery)
        ]
        outcomes = iter(self._metrics.evaluate(queries))
        results: list[MetricResult] = []
        for item in plan:
            if isinstance(item, QueryPlanError):
                results.append(MetricResult(item.name, False, None, "", item.message, error=True))
                continue
            result = judge(canary, item, next(outcomes))
            # A server may echo a credential in its error; it must not reach status.yaml.
            result = replace(result, message=scrub(result.message))
            results.append(result)
            if result.value is not None:
                self._recorder.metric_analysis.labels(
                    canary.target_name, canary.namespace, item.name
                ).set(result.value)
        return tuple(results)

    # -- writing one step (D5: on a lost race, re-read and decide again)

    def _producer(
        self,
        found: DiscoveredCanary,
        decision: Decision,
        observation: Observation,
        checks: Checks,
        now: datetime,
        *,
        rediscover: Discover | None = None,
    ) -> Produce:
        assert found.canary is not None
        canary = found.canary
        attempt = [0]

        def produce(worktree: Path) -> tuple[str, list[str]] | None:
            attempt[0] += 1
            current, step = found, decision
            if attempt[0] > 1:
                # Someone pushed first. Re-read this canary from their tip and decide again with
                # the same observations and check results; webhooks are not called twice.
                fresh = (rediscover or self._discover)(worktree).canary(canary.key)
                if fresh is None or not fresh.runnable or fresh.canary is None:
                    return None
                step = self._decide(fresh.canary, fresh.status, observation, checks, now)
                if step.kind is not Kind.CHANGE:
                    return None
                current = fresh
            changed = write_step(
                worktree, current, step, ingress_class=self.config.defaults.ingress_class
            )
            if not changed:
                return None
            return step.message, changed

        return produce

    # -- pull-request mode

    def _needs_review(self, decision: Decision) -> bool:
        review = self.config.push.pull_requests
        if review is None:
            return False
        if review.review == "promotion":
            return decision.promote and decision.status.phase is Phase.PROMOTING
        # every-step: every commit of a run (traffic, promotion, rollback), not the bookkeeping
        # of initialization.
        return decision.status.phase not in (Phase.INITIALIZING, Phase.INITIALIZED)

    def _proposal(
        self, found: DiscoveredCanary, decision: Decision, produce: Produce
    ) -> CanaryOutcome:
        assert found.canary is not None
        assert self._propose is not None
        canary = found.canary
        subject = decision.message.splitlines()[0] if decision.message else ""
        fields = canary_fields(canary, found.status.phase)
        if self._closed_proposals.get(canary.key) == subject:
            return CanaryOutcome(canary.key, "wait", "halted: the pull request was closed")
        state = self._propose(self._repo, canary.key, produce)
        if state.outcome is ProposalOutcome.CLOSED:
            # A reviewer said no: halt this step until the repository asks for another one.
            self._closed_proposals[canary.key] = subject
            log.warning("Halt %s advancement: %s", canary.dotted, state.message, extra=fields)
            self._recorder.errors.labels("pull-request-closed").inc()
            return CanaryOutcome(canary.key, "wait", state.message)
        self._closed_proposals.pop(canary.key, None)
        if state.outcome is ProposalOutcome.OPEN:
            self._log_wait(canary, found.status, replace(decision, reason=state.message))
            self._recorder.prs_waiting.set(1)
            return CanaryOutcome(canary.key, "wait", state.message, None, found.status.phase)
        self._recorder.prs_waiting.set(0)
        return CanaryOutcome(canary.key, "proposed", state.message, state.head_sha)

    # -- after the push: logs, metrics, event webhooks, alerts, post-rollout hooks

    def _after_commit(self, found: DiscoveredCanary, decision: Decision, sha: str | None) -> None:
        assert found.canary is not None
        canary = found.canary
        status = decision.status
        fields = canary_fields(canary, status.phase, sha)
        for event in decision.events:
            level = logging.WARNING if event.type is EventType.WARNING else logging.INFO
            log.log(level, event.message, extra=fields)
        if sha is None:
            log.info("The repository already holds this step; nothing to commit.", extra=fields)
            return
        self._recorder.commits.labels(canary.namespace, canary.name).inc()
        self._observe_gauges(canary, status.phase, status.canary_weight)
        strategy = canary.strategy().value
        if decision.post_rollout is Phase.SUCCEEDED:
            how = "skipped" if canary.spec.skip_analysis else "completed"
            self._recorder.successes.labels(
                canary.target_name, canary.namespace, strategy, how
            ).inc()
        elif decision.post_rollout is Phase.FAILED:
            self._recorder.failures.labels(
                canary.target_name, canary.namespace, strategy, "completed"
            ).inc()
        calls = self._for_calls(canary)
        checksum = webhook_checksum(status.last_applied_spec, dict(status.tracked_configs))
        phase = status.phase or Phase.INITIALIZING
        event_hooks = calls.spec.analysis.hooks(HookType.EVENT)
        for event in decision.events:
            self._quietly(
                "event webhook",
                partial(self._hooks.send_event, event_hooks, calls, event, phase, checksum),
                fields,
            )
            if event.alert is not None:
                self._quietly(
                    "notification", partial(self._notify, found, event, status, sha), fields
                )
        if decision.post_rollout is not None:
            group = self._hooks.run_group(
                calls, HookType.POST_ROLLOUT, decision.post_rollout, checksum
            )
            for result in group.results:
                log.log(
                    logging.INFO if result.ok else logging.WARNING, result.message, extra=fields
                )

    @staticmethod
    def _quietly(what: str, call: Callable[[], object], fields: Mapping[str, Any]) -> None:
        """Event sinks and notifications never block or change a rollout."""
        try:
            call()
        except Exception as err:
            log.warning("%s failed: %s", what, err, extra=dict(fields))


@dataclass
class _PendingStep:
    """A step decided in this tick, waiting for the tick's one push."""

    found: DiscoveredCanary
    decision: Decision
    produce: Produce
    now: datetime
    position: int = -1  # in the tick's outcomes


def _committed(canary: Canary, decision: Decision, sha: str | None) -> CanaryOutcome:
    return CanaryOutcome(
        canary.key,
        "commit" if sha else "unchanged",
        decision.message.splitlines()[0] if decision.message else "",
        sha,
        decision.status.phase,
        decision.status.canary_weight,
    )


def _error_kind(err: Exception) -> str:
    name = type(err).__name__
    return {
        "ClusterError": "kubernetes",
        "GitError": "git",
        "PushConflictError": "git-conflict",
        "RenderError": "render",
        "EditError": "edit",
        "LayoutError": "layout",
    }.get(name, "internal")
