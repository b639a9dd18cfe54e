"""The Kubernetes API answering 500, refusing with 403, and down: no decision, no commit.

gitops-canary reads the simulated API server through a TCP gate (its kubeconfig points at the
gate). One two-step rollout meets three outages, each opened when a step lands and held for two
analysis intervals (6 s, long enough that the next step was due meanwhile):

* at weight 25, every path answers HTTP 500 (``ApiServer.set_fault``);
* at weight 50, reading Deployments is forbidden (403, the real RBAC wording);
* at Promoting, the API server is unreachable (the gate refuses connections).

While an outage lasts, every tick reports an error for the canary naming the call and the cause,
the log says so once per distinct error (not every tick), and nothing is committed. Afterwards
the rollout resumes and commits exactly the steps of an undisturbed run, with no failed check:
API errors are not failed checks in Flagger either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    CANARY,
    SHORT_RUN,
    Step,
    TcpGate,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    kubeconfig_via,
    last_step,
    open_rig,
    short_canary,
    source_repo,
    steps,
    tip,
)

from gitops_canary.playground import Playground
from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(200)]

HOLD_SECONDS = 6.0


@dataclass
class Outage:
    at: Step
    name: str
    #: What every error outcome during the outage says.
    says: str
    start: Callable[[], None]
    end: Callable[[], None]
    opened_at: float = 0.0
    closed_at: float = 0.0
    tip_at_start: str = ""
    tip_at_end: str = ""


def test_kubernetes_api_500_403_and_down_hold_the_rollout_without_commits(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    gates: list[TcpGate] = []

    def through_gate(pg: Playground, data: dict[str, Any]) -> None:
        assert pg.cluster is not None
        port = int(pg.cluster.api_url.rsplit(":", 1)[1])
        gate = TcpGate(("127.0.0.1", port)).start()
        gates.append(gate)
        kubeconfig = kubeconfig_via(pg.cluster.kubeconfig, gate.url, tmp_path / "kubeconfig")
        data["cluster"]["kubeconfig"] = str(kubeconfig)

    source = source_repo(tmp_path, edit_canary=short_canary())
    try:
        with open_rig(tmp_path, source=source, configure=through_gate) as rig:
            api, gate = rig.cluster.apiserver, gates[0]
            outages = [
                Outage(
                    ("Progressing", 25),
                    "HTTP 500",
                    "injected fault: Internal Server Error",
                    lambda: api.set_fault(r".", status=500),
                    api.clear_faults,
                ),
                Outage(
                    ("Progressing", 50),
                    "HTTP 403",
                    'deployments.apps "podinfo-primary" is forbidden: User '
                    '"system:serviceaccount:gitops-canary:gitops-canary" cannot get resource '
                    '"deployments"',
                    lambda: api.set_fault(r"/deployments", status=403),
                    api.clear_faults,
                ),
                Outage(
                    ("Promoting", 50),
                    "API server down",
                    f"cannot reach {gate.url}",
                    gate.cut,
                    gate.restore,
                ),
            ]
            pending = list(outages)

            def inject(_: TickReport | None) -> None:
                if pending and last_step(rig.remote) == pending[0].at:
                    outage = pending.pop(0)
                    outage.tip_at_start = tip(rig.remote)
                    outage.start()
                    outage.opened_at = rig.now()
                    rig.hold(HOLD_SECONDS)
                    outage.closed_at = rig.now()
                    outage.tip_at_end = tip(rig.remote)
                    outage.end()

            rig.drive(lambda: last_step(rig.remote) == ("Succeeded", 0), 170, "success", inject)

            assert not pending, f"outages never opened: {[o.name for o in pending]}"
            for outage in outages:
                during = rig.outcomes_between(outage.opened_at, outage.closed_at)
                errors = [o for o in during if o.kind == "error"]
                assert errors, f"{outage.name}: no error reported\n{rig.describe()}"
                assert all(o.kind in ("error", "not-due") for o in during), (
                    f"{outage.name}: {[o.kind for o in during]}"
                )
                assert all(outage.says in o.message for o in errors), (
                    f"{outage.name}: {[o.message for o in errors]}"
                )
                assert not [o for o in during if o.commit], outage.name
                assert outage.tip_at_end == outage.tip_at_start, (
                    f"{outage.name}: the branch moved during the outage\n{rig.describe()}"
                )
                # Reported clearly, but not once per tick.
                said = {
                    r.getMessage()
                    for r in logs.records
                    if r.levelno >= logging.ERROR and outage.says in r.getMessage()
                }
                assert 1 <= len(said) <= 2, f"{outage.name}: {said}"

            assert steps(rig.remote) == SHORT_RUN, describe_remote(rig.remote)
            assert all(not e.failed_checks for e in entries(rig.remote)), describe_remote(
                rig.remote
            )
            assert not rig.failed_ticks, rig.describe()
            assert {o.key for _, o in rig.outcomes} == {CANARY}
            assert_steps_whole(rig.remote)
            assert_fast_forward_only(rig.remote)
    finally:
        for gate in gates:
            gate.stop()
