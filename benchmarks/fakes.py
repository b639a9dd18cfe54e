"""In-process stand-ins for the reconciler's ports, so a benchmark measures gitops-canary only.

Owns the fakes of the *ports* the :class:`~gitops_canary.reconciler.Reconciler` takes as
constructor arguments: the cluster reader (every Deployment ready, every route accepted), the
applier (every commit applied, long ago), Prometheus (every metric at 0, which passes) and the
webhooks (every call succeeds). They answer instantly. Git, discovery, the engine, rendering and
writing are the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gitops_canary.core.decisions import Event
from gitops_canary.core.observations import HookGroup, HookResult
from gitops_canary.core.promql import MetricQuery
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import CanaryStatus, Phase
from gitops_canary.core.verdicts import QueryOutcome
from gitops_canary.observe.appliers import AppliedState
from gitops_canary.reconciler import AppliedPort
from gitops_canary.repo.discovery import DiscoveredCanary

_PARENT = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "contour"}


class SteppingClock:
    """A clock that stands still until told to move (the engine's intervals are real minutes)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class ReadyCluster:
    """Every Deployment rolled out and available, every HTTPRoute accepted by its Gateway."""

    def __init__(self) -> None:
        self.reads = 0

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        self.reads += 1
        metadata = {"name": name, "namespace": namespace, "generation": 1}
        if kind == "Deployment":
            return {
                "kind": kind,
                "metadata": metadata,
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "replicas": 2,
                    "updatedReplicas": 2,
                    "availableReplicas": 2,
                },
            }
        if kind == "HTTPRoute":
            accepted = {"type": "Accepted", "status": "True", "observedGeneration": 1}
            return {
                "kind": kind,
                "metadata": metadata,
                "spec": {"parentRefs": [_PARENT]},
                "status": {"parents": [{"parentRef": _PARENT, "conditions": [accepted]}]},
            }
        if kind == "HTTPProxy":
            return {"kind": kind, "metadata": metadata, "status": {"currentStatus": "valid"}}
        return None


class Applier:
    """Says every commit is applied (since ``applied_at``), or, for the canary directories in
    :attr:`pending`, not applied yet (the applier is still working on it)."""

    def __init__(self, applied_at: datetime) -> None:
        self.applied_at = applied_at
        self.pending: set[str] | None = set()  # None: nothing is applied
        self.questions = 0

    def applier_for(self, path: str) -> AppliedPort:
        def applied(commit: str) -> AppliedState:
            self.questions += 1
            if self.pending is None or path in self.pending:
                return AppliedState(False, None, None, "the applier is still working")
            return AppliedState(True, self.applied_at, commit, "applied")

        return applied


class PassingMetrics:
    """Every query answers 0: under every ``thresholdRange.max`` of the generated canaries."""

    def __init__(self) -> None:
        self.queries = 0

    def evaluate(self, queries: Sequence[MetricQuery]) -> list[QueryOutcome]:
        self.queries += len(queries)
        return [QueryOutcome.of(0.0) for _ in queries]


class PassingHooks:
    """Every webhook answers 200, except that rollback hooks do not signal a rollback."""

    def __init__(self) -> None:
        self.calls = 0
        self.events = 0

    def run_group(
        self, canary: Canary, hook_type: HookType, status_phase: Phase, checksum: str
    ) -> HookGroup:
        hooks = canary.spec.analysis.hooks(hook_type)
        self.calls += len(hooks)
        ok = hook_type is not HookType.ROLLBACK
        return HookGroup(hook_type, tuple(HookResult(h.name, hook_type, ok) for h in hooks))

    def send_event(
        self,
        webhooks: Sequence[Any],
        canary: Canary,
        event: Event,
        phase: Phase,
        checksum: str,
    ) -> None:
        self.events += 1


def no_notifications(
    found: DiscoveredCanary, event: Event, status: CanaryStatus, commit: str | None
) -> None:
    """Alerts go nowhere (the generated canaries have no alert providers anyway)."""
