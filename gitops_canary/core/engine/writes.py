"""How a decision rewrites the status: Flagger's sync and phase writes, the condition, cookies.

Flagger has two kinds of status write (``flagger-behaviour.md`` §2.2): a *sync* write starts or
ends a run (weight, failed checks and iterations reset, revision recorded) and a *phase* write
only moves the phase. Every write stamps ``lastTransitionTime``, rewrites the ``Promoted``
condition (§2.5) and keeps the session-affinity cookies in step with the weight (§4.4.4).

Deviations (D8): ``canaryWeight`` and ``iterations`` keep their real values in
``WaitingPromotion`` (Flagger writes 0 and ``iterations - 1``); cookie values are derived from
the canary and its revision instead of drawn at random, so the same run renders the same bytes.

Pure: no I/O.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gitops_canary.core.hashing import derive_token
from gitops_canary.core.specs import Canary
from gitops_canary.core.status import CanaryStatus, Condition, Phase

COOKIE_LENGTH = 10

_CONDITION: dict[Phase, tuple[str, str]] = {
    Phase.INITIALIZING: ("Unknown", "New {kind} detected, starting initialization."),
    Phase.INITIALIZED: ("True", "{kind} initialization completed."),
    Phase.WAITING: ("Unknown", "Waiting for approval."),
    Phase.WAITING_PROMOTION: ("Unknown", "Waiting for approval."),
    Phase.PROGRESSING: ("Unknown", "New revision detected, progressing canary analysis."),
    Phase.PROMOTING: ("Unknown", "Canary analysis completed, starting primary rolling update."),
    Phase.FINALISING: ("Unknown", "Canary analysis completed, routing all traffic to primary."),
    Phase.SUCCEEDED: ("True", "Canary analysis completed successfully, promotion finished."),
    Phase.FAILED: ("False", "Canary analysis failed, {kind} scaled to zero."),
}
#: Flagger's switch default (Terminating and anything else).
_CONDITION_DEFAULT = ("Unknown", "New {kind} detected, starting initialization.")


def promoted_condition(
    canary: Canary, conditions: list[Condition], phase: Phase, now: datetime
) -> list[Condition]:
    """The ``Promoted`` condition for ``phase``, rewritten only when its status or reason change."""
    state, template = _CONDITION.get(phase, _CONDITION_DEFAULT)
    reason = phase.value
    previous = next((c for c in conditions if c.type == "Promoted"), None)
    if previous is not None and previous.status == state and previous.reason == reason:
        return list(conditions)
    keep_time = previous is not None and previous.status == state
    condition = Condition(
        type="Promoted",
        status=state,
        reason=reason,
        message=template.format(kind=canary.spec.target_ref.kind),
        last_transition_time=previous.last_transition_time if keep_time and previous else now,
        last_update_time=now,
    )
    return [condition, *(c for c in conditions if c.type != "Promoted")]


def cookie_value(canary: Canary, revision: str, role: str) -> str:
    """A session-affinity cookie value: 10 ASCII letters derived from canary, revision and role."""
    return derive_token(f"{canary.key}:{revision}{role}", COOKIE_LENGTH, string.ascii_letters)


def with_cookies(canary: Canary, status: CanaryStatus) -> CanaryStatus:
    """Keep the session-affinity cookies in step with ``status.canary_weight`` (§4.4.4).

    At a non-zero weight the canary cookie (and the primary cookie when ``primaryCookieName``
    is set) exists; back at weight 0 the canary cookie moves to ``previousSessionAffinityCookie``
    so the route can tell clients to drop it. The primary cookie is kept, as Flagger does.
    """
    affinity = canary.spec.analysis.session_affinity
    update: dict[str, Any] = {}
    if status.canary_weight != 0 and affinity is not None:
        revision = status.last_applied_spec
        if not status.session_affinity_cookie:
            value = cookie_value(canary, revision, "")
            update["session_affinity_cookie"] = f"{affinity.cookie_name}={value}"
        if affinity.primary_cookie_name and not status.primary_session_affinity_cookie:
            value = cookie_value(canary, revision, ":primary")
            update["primary_session_affinity_cookie"] = f"{affinity.primary_cookie_name}={value}"
    elif status.canary_weight == 0 and status.session_affinity_cookie:
        update["previous_session_affinity_cookie"] = status.session_affinity_cookie
        update["session_affinity_cookie"] = None
    return status.model_copy(update=update) if update else status


def sync_fields(
    phase: Phase,
    revision: str,
    tracked_configs: Mapping[str, str],
    *,
    canary_weight: int = 0,
) -> dict[str, Any]:
    """Flagger's sync write: a fresh run (or its end) for ``revision``."""
    return {
        "phase": phase,
        "canary_weight": canary_weight,
        "failed_checks": 0,
        "iterations": 0,
        "mirrored": False,
        "last_applied_spec": revision,
        "tracked_configs": dict(tracked_configs),
    }


def finished_fields(status: CanaryStatus, phase: Phase) -> dict[str, Any]:
    """Flagger's phase write for ``Succeeded``: weight and iterations 0, the revision promoted."""
    return {
        "phase": phase,
        "canary_weight": 0,
        "iterations": 0,
        "mirrored": False,
        "last_promoted_spec": status.last_applied_spec,
    }
