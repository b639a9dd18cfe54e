"""A stuck applier: gitops-canary never judges a step the cluster does not run (DESIGN D4).

* Paused mid-rollout (Flux suspended, or its controller down): the next step is committed, then
  nothing more while it stays unapplied; once Flux applies again the run finishes exactly as an
  undisturbed one.
* Stuck on a health check (Flux ``wait: true`` and a version whose pods never become ready): the
  Kustomization reports ``HealthCheckFailed`` for the step and never records it as applied. That
  counts as applied, so the canary's progress deadline is noticed and one commit rolls back;
  the rollback then waits for Flux like any step, and nothing else is committed.

A third test checks that while a commit waits for Flux, the reason gitops-canary gives names the
Kustomization and the commit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fault_helpers import (
    SHORT_RUN,
    STUCK_IMAGE,
    Rig,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    expect,
    flux_applied,
    last_step,
    open_rig,
    short_canary,
    source_repo,
    steps,
    tip,
    wait_until,
)

from gitops_canary.playground import git
from gitops_canary.sim.applier import KUSTOMIZATION_API_VERSION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

#: Three analysis intervals of the playground (3 s each).
HOLD_SECONDS = 9.0
NOT_APPLIED = "waiting for Flux Kustomization flux-system/podinfo to apply"


def _pause_after_applied(rig: Rig, step: tuple[str, int], seconds: float) -> str:
    """Drive until ``step`` is the last commit and Flux applied it; pause Flux; its sha."""

    def applied() -> bool:
        now = steps(rig.remote)
        if step in now and now[-1] != step:
            raise RuntimeError(f"the rollout moved past {step} before Flux applied it: {now}")
        return now[-1:] == [step] and flux_applied(rig, tip(rig.remote))

    rig.drive(applied, seconds, f"{step} applied")
    rig.cluster.applier.pause()
    return tip(rig.remote)


def test_paused_applier_holds_the_rollout_until_it_applies_again(tmp_path: Path) -> None:
    source = source_repo(tmp_path, edit_canary=short_canary())
    with open_rig(tmp_path, source=source) as rig:
        _pause_after_applied(rig, ("Progressing", 25), 90)
        # The applied step is judged after its interval and the next one committed...
        rig.drive(lambda: last_step(rig.remote) == ("Progressing", 50), 30, "the weight-50 step")
        unapplied = tip(rig.remote)
        # ...and then nothing more while Flux does not apply it.
        held_from = rig.now()
        rig.hold(HOLD_SECONDS)
        during = rig.outcomes_between(held_from, rig.now())
        assert tip(rig.remote) == unapplied, describe_remote(rig.remote)
        assert during, rig.describe()
        assert all(o.kind in ("wait", "not-due") for o in during), rig.describe()
        assert any(NOT_APPLIED in o.message for o in during), rig.describe()
        assert not flux_applied(rig, unapplied)

        rig.cluster.applier.resume()
        rig.drive(lambda: last_step(rig.remote) == ("Succeeded", 0), 90, "success after resume")

        assert steps(rig.remote) == SHORT_RUN, describe_remote(rig.remote)
        assert not rig.failed_ticks, rig.describe()
        assert not [o for _, o in rig.outcomes if o.kind == "error"], rig.describe()
        assert_steps_whole(rig.remote)
        assert_fast_forward_only(rig.remote)


def test_paused_applier_is_named_in_the_wait_reason(tmp_path: Path) -> None:
    source = source_repo(tmp_path, edit_canary=short_canary())
    with open_rig(tmp_path, source=source) as rig:
        rig.person.holding = True  # the new image comes once Flux is paused
        _pause_after_applied(rig, ("Initialized", 0), 90)
        rig.person.holding = False
        held_from = rig.now()
        rig.hold(HOLD_SECONDS / 2)
        unapplied = tip(rig.remote)  # Dana's new image, which Flux does not apply
        assert not flux_applied(rig, unapplied)
        waits = [o.message for o in rig.outcomes_between(held_from, rig.now()) if o.kind == "wait"]
        assert waits, rig.describe()
        assert any(NOT_APPLIED in message for message in waits), waits  # it does wait
        # docs/getting-started-flux.md, "When it seems stuck": the message starts with
        # "waiting for Flux Kustomization flux-system/podinfo to apply <sha>".
        expected = "waiting for Flux Kustomization flux-system/podinfo to apply"
        expect(
            any(message.startswith(expected) and unapplied[:7] in message for message in waits),
            f"no wait reason starts with {expected!r} and names {unapplied[:7]}: {waits}",
        )


def test_applier_stuck_on_a_health_check_rolls_back_at_the_progress_deadline(
    tmp_path: Path,
) -> None:
    source = source_repo(tmp_path, edit_canary=short_canary())
    with open_rig(tmp_path, source=source, image=STUCK_IMAGE) as rig:
        store = rig.cluster.store
        scale_up = _pause_after_applied(rig, ("Progressing", 0), 90)
        before = git(rig.remote, "rev-parse", f"{scale_up}^")
        # What Flux with `wait: true` reports when the applied objects never become healthy:
        # the step was attempted, the last *applied* revision stays the previous one.
        kustomization = store.get(
            KUSTOMIZATION_API_VERSION, "Kustomization", "flux-system", "podinfo"
        )
        assert kustomization is not None
        status = dict(kustomization["status"])
        status["lastAttemptedRevision"] = f"main@sha1:{scale_up}"
        status["lastAppliedRevision"] = f"main@sha1:{before}"
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "False",
                "reason": "HealthCheckFailed",
                "message": "timeout waiting for: [Deployment/test/podinfo status: 'InProgress']",
                "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "observedGeneration": kustomization["metadata"]["generation"],
            }
        ]
        store.update_status(
            KUSTOMIZATION_API_VERSION, "Kustomization", "flux-system", "podinfo", status
        )

        rig.drive(lambda: last_step(rig.remote) == ("Failed", 0), 60, "the rollback")
        rollback = entries(rig.remote)[-1]
        text = f"{rollback.subject}\n{rollback.summary}"
        assert re.search(
            r"Rolling back podinfo\.test progress deadline exceeded .*exceeded its progress "
            r"deadline",
            text,
        ), text
        assert steps(rig.remote) == [
            ("Initializing", 0),
            ("Initialized", 0),
            ("Progressing", 0),
            ("Failed", 0),
        ], describe_remote(rig.remote)

        # The rollback waits for Flux like any step; nothing else is committed meanwhile.
        rolled_back = tip(rig.remote)
        held_from = rig.now()
        rig.hold(HOLD_SECONDS / 2)
        assert tip(rig.remote) == rolled_back
        assert all(
            o.kind in ("wait", "not-due") for o in rig.outcomes_between(held_from, rig.now())
        )

        # Flux recovers and applies the rollback: the canary is parked at zero, still Failed.
        rig.cluster.applier.resume()
        wait_until(lambda: flux_applied(rig, rolled_back), 30, "Flux applying the rollback")
        rig.hold(2.0)
        target = store.get("apps/v1", "Deployment", "test", "podinfo")
        assert target is not None
        assert target["spec"]["replicas"] == 0
        assert tip(rig.remote) == rolled_back, describe_remote(rig.remote)
        assert not rig.failed_ticks, rig.describe()
        assert_steps_whole(rig.remote)
        assert_fast_forward_only(rig.remote)
