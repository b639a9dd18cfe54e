"""What the adapters saw this tick, in the shape the engine consumes.

The adapters (``observe/``, ``repo/``) fill these in; the engine never asks the world anything
itself. Each value is a plain, frozen record so a tick can be replayed in a unit test.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gitops_canary.core.specs import HookType


@dataclass(frozen=True)
class Readiness:
    """A Deployment's readiness in Flagger's terms (``flagger-behaviour.md`` §3.4).

    ``retriable=False`` means the progress deadline passed: Flagger rolls back.
    ``message`` is Flagger's text, prefix included, e.g.
    ``canary deployment podinfo.test not ready: waiting for rollout to finish: ...``.
    """

    ready: bool
    retriable: bool = True
    message: str = ""


READY = Readiness(ready=True)


@dataclass(frozen=True)
class Observation:
    """The cluster and the repository as seen at the start of a tick.

    ``revision`` is the hash of the target's effective pod template and ``tracked_configs`` the
    checksums of the ConfigMaps/Secrets it references (both from :mod:`core.hashing`).

    ``applied`` says that the applier (Flux, Argo CD, ...) has applied the latest commit that
    touched this canary (its generated objects, its status, its target) or a descendant of it;
    ``applied_at`` is when that happened as far as the applier tells. Until ``applied`` is true
    the cluster is still running an older step and nothing is judged (DESIGN D4).

    ``primary``/``canary`` are ``None`` when the Deployment does not exist in the cluster yet.
    ``route`` is the route object's readiness (Gateway API parents accepted, observedGeneration
    current); ``None`` when the route does not exist yet.
    ``primary_replicas`` is what the primary runs with (used to scale the target up without an
    HPA); ``has_autoscaler`` says an HPA manages the target's replicas.
    """

    revision: str
    tracked_configs: Mapping[str, str] = field(default_factory=dict)
    applied: bool = False
    applied_at: datetime | None = None
    primary: Readiness | None = None
    canary: Readiness | None = None
    route: Readiness | None = None
    primary_replicas: int = 1
    has_autoscaler: bool = False


@dataclass(frozen=True)
class HookResult:
    """One webhook call: ``ok`` is Flagger's success (HTTP 200, 201 or 202)."""

    name: str
    hook_type: HookType
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class MetricResult:
    """One metric check after :mod:`core.verdicts` compared the value with its threshold.

    ``value`` is ``None`` when there were no values or the query failed; ``message`` is the
    Flagger event for a failure (``Halt podinfo.test advancement error rate 69.17% > 1``) or a
    short "ok" text for a pass; ``threshold`` is the human form of the bound (``<= 1``).
    """

    name: str
    ok: bool
    value: float | None
    threshold: str
    message: str
    error: bool = False


@dataclass(frozen=True)
class HookGroup:
    """The outcome of running one hook type's webhooks in list order.

    Flagger stops a group at the first failure, except ``rollback`` where the first success wins;
    the adapter applies that rule, so ``results`` holds only the calls that were made.
    """

    hook_type: HookType
    results: tuple[HookResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def first_failure(self) -> HookResult | None:
        return next((r for r in self.results if not r.ok), None)

    @property
    def first_success(self) -> HookResult | None:
        return next((r for r in self.results if r.ok), None)


@dataclass(frozen=True)
class Checks:
    """External checks gathered so far in this tick. A missing entry was not run yet."""

    hooks: Mapping[HookType, HookGroup] = field(default_factory=dict)
    metrics: tuple[MetricResult, ...] | None = None

    def with_hooks(self, group: HookGroup) -> Checks:
        return Checks(hooks={**self.hooks, group.hook_type: group}, metrics=self.metrics)

    def with_metrics(self, results: tuple[MetricResult, ...]) -> Checks:
        return Checks(hooks=self.hooks, metrics=results)


NO_CHECKS = Checks()
