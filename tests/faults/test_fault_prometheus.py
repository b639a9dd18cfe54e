"""Prometheus slow, answering garbage, and down: each is a failed check, as in Flagger.

gitops-canary reaches Prometheus (the MetricTemplates' ``http://flagger-prometheus:9090``) through
a loopback stand-in that forwards to the real Prometheus until told otherwise. One rollout of the
example canary (threshold lowered to 3) meets three faults, each switched on when a traffic step
lands and off again as soon as its failed check is committed:

* at weight 10 the stand-in stalls 6.5 s, longer than the 5 s query timeout;
* at weight 20 it answers 200 with an HTML login page;
* at weight 30 it goes down (its port refuses connections) and stays down.

Each fault gives exactly one failed-check commit that keeps the weight and names the reason;
failed checks add up over the run (Flagger never resets them on a good check), the run advances
between faults, and the third failed check reaches the threshold: one rollback commit.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    HttpStandIn,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    last_step,
    open_rig,
    source_repo,
    steps,
)

from gitops_canary.playground import Playground
from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(200)]

TEMPLATE_ADDRESS = "http://flagger-prometheus:9090"
THRESHOLD = 3
#: (weight at which the fault starts, the stand-in's mode, what the failed check says)
FAULTS = (
    (10, "stall", "did not answer within 5s"),
    (20, "garbage", "did not answer with JSON (body starts with '<html>"),
    (30, "down", "Connection refused"),
)


def test_prometheus_slow_garbage_and_down_are_failed_checks_then_rollback(tmp_path: Path) -> None:
    stand_ins: list[HttpStandIn] = []

    def through_stand_in(pg: Playground, data: dict[str, Any]) -> None:
        assert pg.prometheus is not None
        stand_in = HttpStandIn(pg.prometheus.url).start()
        stand_ins.append(stand_in)
        data["addressOverrides"][TEMPLATE_ADDRESS] = stand_in.url
        data["defaults"]["prometheus"]["address"] = stand_in.url

    def lower_threshold(canary: dict[str, Any]) -> None:
        canary["spec"]["analysis"]["threshold"] = THRESHOLD

    source = source_repo(tmp_path, edit_canary=lower_threshold)
    try:
        with open_rig(tmp_path, source=source, configure=through_stand_in) as rig:
            stand_in = stand_ins[0]
            started: list[int] = []  # indexes of FAULTS switched on so far
            ended: list[int] = []

            def inject(_: TickReport | None) -> None:
                newest = entries(rig.remote)[-1]
                failed = newest.failed_checks or 0
                on = len(started)
                # A fault ends as soon as its failed check is committed ("down" stays down).
                if on > len(ended) and failed == on:
                    if FAULTS[on - 1][1] != "down":
                        stand_in.set_mode("forward")
                    ended.append(on - 1)
                # The next one starts when its traffic step lands.
                if on < len(FAULTS) and len(ended) == on:
                    weight, mode, _reason = FAULTS[on]
                    if (newest.phase, newest.weight, failed) == ("Progressing", weight, on):
                        if mode == "down":
                            stand_in.go_down()
                        else:
                            stand_in.set_mode(mode, stall_seconds=6.5)
                        started.append(on)

            rig.drive(lambda: last_step(rig.remote) == ("Failed", 0), 170, "the rollback", inject)

            run = entries(rig.remote)
            assert steps(rig.remote) == [
                ("Initializing", 0),
                ("Initialized", 0),
                ("Progressing", 0),
                ("Progressing", 10),
                ("Progressing", 10),
                ("Progressing", 20),
                ("Progressing", 20),
                ("Progressing", 30),
                ("Progressing", 30),
                ("Failed", 0),
            ], describe_remote(rig.remote)
            story = "\n".join(f"{e.subject} | {e.summary}" for e in run)
            halted = [
                e
                for before, e in itertools.pairwise(run)
                if (e.failed_checks or 0) > (before.failed_checks or 0)
            ]
            assert [(e.weight, e.failed_checks) for e in halted] == [(10, 1), (20, 2), (30, 3)]
            for entry, (_, _, reason) in zip(halted, FAULTS, strict=True):
                text = f"{entry.subject}\n{entry.summary}"
                # Flagger's words for a provider error, and each metric's verdict in the body.
                assert entry.subject.startswith("Metric query failed for error-rate: "), story
                assert "error-rate: no value (max 1) FAILED" in entry.summary, story
                assert "latency: no value (max 0.5) FAILED" in entry.summary, story
                assert reason in text, story
            # Between faults the run advanced on good checks, keeping the failed ones counted.
            assert [e.failed_checks or 0 for e in run if e.subject.startswith("Advance")] == [
                0,
                1,
                2,
            ]
            rollback = run[-1]
            assert f"failed checks threshold reached {THRESHOLD}" in (
                f"{rollback.subject}\n{rollback.summary}"
            ), rollback
            assert stand_in.count("stall") >= 1
            assert stand_in.count("garbage") >= 1
            # A failed check is not an error of gitops-canary: every tick completed.
            assert not rig.failed_ticks, rig.describe()
            assert not [o for _, o in rig.outcomes if o.kind == "error"], rig.describe()
            assert_steps_whole(rig.remote)
            assert_fast_forward_only(rig.remote)
    finally:
        for stand_in in stand_ins:
            stand_in.stop()
