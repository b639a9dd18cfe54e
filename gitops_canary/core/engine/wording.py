"""Flagger's event and alert texts, word for word (``flagger-behaviour.md`` §6.1, §7.2).

Operators grep for these strings and existing alert rules match them (DESIGN D9), so they are
kept in one place and never paraphrased. ``Canary`` texts name the Canary (``<name>.<ns>``);
those marked *target* in the reference name ``targetRef`` instead.

Pure: no I/O.
"""

from __future__ import annotations

from gitops_canary.core.specs import Canary, HookType


def _target(canary: Canary) -> str:
    return f"{canary.target_name}.{canary.namespace}"


def _primary(canary: Canary) -> str:
    return f"{canary.target_name}-primary.{canary.namespace}"


# -- initialisation


def initializing(canary: Canary) -> str:
    # Flagger has no event here, only the Promoted condition's text; the canary is named so that
    # the first commit of every canary says which one it is.
    return f"New {canary.spec.target_ref.kind} detected, starting initialization of {canary.dotted}"


def initialization_done(canary: Canary) -> str:
    return f"Initialization done! {canary.dotted}"


ALERT_INITIALIZED = "New Deployment detected, initialization completed."

# -- a new run


def new_revision(canary: Canary) -> str:
    return f"New revision detected! Scaling up {_target(canary)}"


ALERT_NEW_REVISION = "New revision detected, progressing canary analysis."


def restarting(canary: Canary) -> str:
    return f"New revision detected! Restarting analysis for {_target(canary)}"


def starting_analysis(canary: Canary) -> str:
    return f"Starting canary analysis for {_target(canary)}"


# -- steps


def advance_weight(canary: Canary, weight: int) -> str:
    return f"Advance {canary.dotted} canary weight {weight}"


def advance_iteration(canary: Canary, iteration: int, iterations: int) -> str:
    return f"Advance {canary.dotted} canary iteration {iteration}/{iterations}"


def advance_primary(canary: Canary, weight: int) -> str:
    return f"Advance {canary.dotted} primary weight {weight}"


def copying(canary: Canary) -> str:
    return f"Copying {_target(canary)} template spec to {_primary(canary)}"


ROUTING_TO_PRIMARY = "Routing all traffic to primary"
ROUTING_TO_CANARY = "Routing all traffic to canary"
STOP_MIRRORING = "Stop traffic mirroring and route all traffic to canary"


def promotion_completed(canary: Canary) -> str:
    return f"Promotion completed! Scaling down {_target(canary)}"


ALERT_SUCCEEDED = "Canary analysis completed successfully, promotion finished."


def promotion_skipped(canary: Canary) -> str:
    return f"Promotion completed! Canary analysis was skipped for {_target(canary)}"


ALERT_SKIPPED = "Canary analysis was skipped, promotion finished."

# -- gates and hooks

_PASSED = {
    HookType.PRE_ROLLOUT: "Pre-rollout",
    HookType.CONFIRM_ROLLOUT: "Confirm-rollout",
    HookType.CONFIRM_PROMOTION: "Confirm-promotion",
    HookType.CONFIRM_TRAFFIC_INCREASE: "Confirm-traffic-increase",
    HookType.POST_ROLLOUT: "Post-rollout",
    HookType.ROLLBACK: "Rollback",
}


def hook_passed(hook_type: HookType, hook: str) -> str | None:
    """``Pre-rollout check <hook> passed`` and its siblings; ``None`` for types without one."""
    word = _PASSED.get(hook_type)
    return None if word is None else f"{word} check {hook} passed"


def pre_rollout_failed(canary: Canary, hook: str, error: str) -> str:
    return f"Halt {canary.dotted} advancement pre-rollout check {hook} failed {error}"


def rollout_failed(canary: Canary, hook: str, error: str) -> str:
    return f"Halt {canary.dotted} advancement external check {hook} failed {error}"


def waiting_for_approval(canary: Canary, hook: str) -> str:
    return f"Halt {canary.dotted} advancement waiting for approval {hook}"


ALERT_WAITING = "Canary is waiting for approval."


def waiting_for_promotion(canary: Canary, hook: str) -> str:
    return f"Halt {canary.dotted} advancement waiting for promotion approval {hook}"


ALERT_WAITING_PROMOTION = "Canary promotion is waiting for approval."


def waiting_for_traffic_increase(canary: Canary, hook: str) -> str:
    return f"Halt {canary.dotted} advancement waiting for traffic increase approval {hook}"


ALERT_WAITING_TRAFFIC = "Canary traffic increase is waiting for approval."


def rollback_not_signalled(hook: str) -> str:
    return f"Rollback hook {hook} not signaling a rollback"


def metric_failed(canary: Canary, metric: str) -> str:
    """Fallback when a failing metric result carries no message of its own."""
    return f"Halt {canary.dotted} advancement {metric} check failed"


# -- rollback and failure


def rolling_back_threshold(canary: Canary, failed_checks: int) -> str:
    return f"Rolling back {canary.dotted} failed checks threshold reached {failed_checks}"


def alert_threshold(failed_checks: int) -> str:
    return f"Failed checks threshold reached {failed_checks}"


def rolling_back_manual(canary: Canary) -> str:
    return f"Rolling back {canary.dotted} manual webhook invoked"


ALERT_MANUAL_ROLLBACK = "Rolling back manual webhook invoked"


def rolling_back_deadline(canary: Canary, error: str) -> str:
    return f"Rolling back {canary.dotted} progress deadline exceeded {error}"


def alert_deadline(error: str) -> str:
    return f"Progress deadline exceeded {error}"


def canary_failed(canary: Canary) -> str:
    return f"Canary failed! Scaling down {canary.dotted}"


def promotion_failed(canary: Canary, error: str) -> str:
    return f"Promotion of {_target(canary)} failed, primary not ready: {error}"


def alert_promotion_failed(error: str) -> str:
    return f"Promotion failed, primary not ready: {error}"


# -- not in Flagger: our own waits (never events, only WAIT reasons)

SUSPENDED = "skipping canary run as object is suspended"


def not_applied(canary: Canary) -> str:
    return (
        f"waiting for the applier (Flux or Argo CD) to apply the last commit for canary "
        f"{canary.key} before judging it"
    )


def idle(canary: Canary, phase: str) -> str:
    return f"canary {canary.key} is {phase}: no new revision of {_target(canary)}"


def missing(what: str) -> str:
    return f"waiting for {what} to exist in the cluster"


def primary_missing_at_init(canary: Canary) -> str:
    return (
        f"waiting for the primary Deployment {_primary(canary)} to exist in the cluster "
        f"(is gitops-canary/{canary.name} listed in the resources of the kustomization "
        "that holds the canary?)"
    )


def route_missing(canary: Canary) -> str:
    return f"waiting for the route {canary.service_name}.{canary.namespace} to exist in the cluster"


def analysis_due(canary: Canary, weight: int, due: str) -> str:
    return (
        f"canary {canary.key} at weight {weight}: waiting until {due} so a full analysis "
        "interval has run since the step was applied"
    )


def no_step(canary: Canary) -> str:
    return (
        f"canary {canary.key}: spec.analysis has no usable stepWeight, stepWeights or iterations, "
        "so the canary weight cannot advance"
    )


def not_handled(canary: Canary, phase: str) -> str:
    return f"canary {canary.key} is {phase}: gitops-canary does not act on this phase"
