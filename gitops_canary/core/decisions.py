"""What the engine decided: the next status, the edits, the events, and the commit message.

A :class:`Decision` is one of three kinds:

* ``WAIT``: nothing to do now (the step is not applied yet, the interval has not passed,
  a Deployment is still rolling out). No commit. ``reason`` says why, ``wake_at`` when to look
  again if the engine knows.
* ``NEED``: the engine needs the results of external checks (webhook groups, metrics) before
  it can go on. The caller runs exactly those, adds them to :class:`Checks` and calls ``decide``
  again. Checks with side effects (load tests, gates) therefore run only when Flagger would
  run them.
* ``CHANGE``: a new status and the edits that go with it; the caller renders, writes, commits.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gitops_canary.core.specs import HookType
from gitops_canary.core.status import CanaryStatus, Phase


class Kind(StrEnum):
    WAIT = "wait"
    NEED = "need"
    CHANGE = "change"


class NeedMetrics(StrEnum):
    """Sentinel for "run the analysis metrics" in :attr:`Decision.needs`."""

    METRICS = "metrics"


Need = HookType | NeedMetrics


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Severity(StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Event:
    """A Flagger event: logged, sent to event webhooks, and an alert when ``alert`` is set.

    ``phase`` is the phase the event webhook payload carries (Flagger overrides it for some).
    """

    type: EventType
    message: str
    phase: Phase | None = None
    alert: Severity | None = None
    alert_message: str = ""


@dataclass(frozen=True)
class ReplicaEdit:
    """The one edit gitops-canary makes to a person's file: the target's ``spec.replicas``.

    ``replicas=None`` removes the field, handing the count back to the HPA (an HPA-managed count
    is never pinned in git; only 0 to park the Deployment).
    """

    replicas: int | None


@dataclass(frozen=True)
class Decision:
    kind: Kind
    status: CanaryStatus
    reason: str = ""
    needs: tuple[Need, ...] = ()
    #: Copy the target's pod template (and tracked configs) to the primary in this commit.
    promote: bool = False
    target_replicas: ReplicaEdit | None = None
    events: tuple[Event, ...] = ()
    #: Run the post-rollout hooks with this phase once the commit is pushed.
    post_rollout: Phase | None = None
    #: The commit message (subject, blank line, body, trailers) for a CHANGE.
    message: str = ""
    #: When the engine wants to look again (e.g. when the analysis interval will have passed).
    wake_at: datetime | None = None
    metrics: tuple[tuple[str, float | None], ...] = field(default=())

    @property
    def commits(self) -> bool:
        return self.kind is Kind.CHANGE
