"""The canary's status: Flagger's ``status`` fields, the phase machine's states, and our additions.

This is what gitops-canary commits next to the generated objects (DESIGN D2), so a restart
resumes from git alone. Field names on the wire are Flagger's (``canaryWeight``,
``failedChecks``, ``lastAppliedSpec``, ...), so ``kubectl get canaries``-style tools read it.

Deviation (D8): ``canaryWeight`` is always the canary's real share of the routed traffic, also in
``WaitingPromotion`` (Flagger writes 0 there) and in A/B (Flagger never writes it).

Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


#: Phases in which a run is under way (Flagger's ``shouldAdvance``).
ACTIVE_PHASES = frozenset(
    {
        Phase.PROGRESSING,
        Phase.WAITING,
        Phase.WAITING_PROMOTION,
        Phase.PROMOTING,
        Phase.FINALISING,
    }
)
#: Phases that stay put until a new revision arrives.
TERMINAL_PHASES = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Condition(_Model):
    """Flagger's single ``Promoted`` condition (``flagger-behaviour.md`` §2.5)."""

    type: str = "Promoted"
    status: str
    reason: str
    message: str
    last_transition_time: datetime | None = None
    last_update_time: datetime | None = None


class CheckRecord(_Model):
    """One metric or webhook outcome of the last analysis, kept so ``status`` explains itself."""

    name: str
    kind: str  # "metric" | "webhook"
    ok: bool
    value: float | None = None
    threshold: str | None = None
    message: str = ""
    #: For webhooks: the hook type (``pre-rollout``, ``rollout``, ...), so a record says which gate.
    hook_type: str | None = None


class CanaryStatus(_Model):
    phase: Phase | None = None
    canary_weight: int = 0
    failed_checks: int = 0
    iterations: int = 0
    #: Our addition: the route mirrors traffic to the canary (blue/green on Gateway API).
    mirrored: bool = False
    last_applied_spec: str = ""
    last_promoted_spec: str = ""
    tracked_configs: dict[str, str] = Field(default_factory=dict)
    last_transition_time: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    session_affinity_cookie: str | None = None
    primary_session_affinity_cookie: str | None = None
    previous_session_affinity_cookie: str | None = None
    #: Our addition: the checks of the last analysis and the last event, for people reading git.
    last_checks: list[CheckRecord] = Field(default_factory=list)
    message: str = ""

    @property
    def primary_weight(self) -> int:
        return 100 - self.canary_weight
