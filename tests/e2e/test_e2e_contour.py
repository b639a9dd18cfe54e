"""Contour rollouts: the example's A/B test as shipped, and a weighted variant with Contour's
built-in metrics, promoted and then rolled back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    CONTOUR,
    CONTOUR_APP,
    ROUTE_FILE,
    OpenWorld,
    World,
    assert_builds_at_every_commit,
    proxy_weights,
)

from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PRIMARY = "podinfo-primary"
CANARY_SVC = "podinfo-canary"
WEIGHTED = [[(PRIMARY, 100), (CANARY_SVC, 0)]]
PROMOTING = "Copying podinfo.test-contour template spec to podinfo-primary.test-contour"
#: Subjects are cut at 72 characters; the body then carries the whole sentence.
PROMOTING_SUBJECT = PROMOTING[:69] + "..."


def live_proxy(world: World) -> dict[str, Any]:
    return world.live("projectcontour.io/v1", "HTTPProxy", "test-contour", "podinfo")


def weighted_canary(canary: dict[str, Any]) -> None:
    analysis = canary["spec"]["analysis"]
    del analysis["iterations"]
    del analysis["match"]
    analysis.update(stepWeight=5, maxWeight=10, threshold=2)


def test_contour_weighted_promotion_then_rollback(
    open_playground: OpenWorld, tmp_path: Path
) -> None:
    # Weight 5 is 2 requests a second: a longer interval (4.8 s) so Prometheus has the canary's
    # first samples when the first check runs.
    world = open_playground(
        apps=[CONTOUR_APP], canaries={CONTOUR_APP: weighted_canary}, interval_scale=0.08
    )
    seed = world.git("rev-parse", "main")
    world.initialize(CONTOUR)
    seen: list[list[list[tuple[str, int]]]] = []

    def sample(_: TickReport) -> None:
        proxy = world.store.get("projectcontour.io/v1", "HTTPProxy", "test-contour", "podinfo")
        if proxy is not None and (not seen or proxy_weights(proxy) != seen[-1]):
            seen.append(proxy_weights(proxy))

    world.bump(CONTOUR, "6.0.1")
    world.drive(lambda: world.phase(CONTOUR) == "Succeeded", 120, "promotion", sample)

    entries = world.entries(CONTOUR)
    run = [(e.phase, e.weight, e.subject) for e in entries[2:]]
    assert run == [
        ("Progressing", 0, "New revision detected! Scaling up podinfo.test-contour"),
        ("Progressing", 5, "Advance podinfo.test-contour canary weight 5"),
        ("Progressing", 10, "Advance podinfo.test-contour canary weight 10"),
        ("Promoting", 10, PROMOTING_SUBJECT),
        ("Finalising", 0, "Routing all traffic to primary"),
        ("Succeeded", 0, "Promotion completed! Scaling down podinfo.test-contour"),
    ]
    assert PROMOTING in entries[5].summary
    # Contour's built-in checks, judged on the simulator's Envoy metrics through Prometheus.
    for entry in entries[4:6]:
        assert re.search(r"request-success-rate: [\d.]+ \(min 99%\) ok", entry.summary), (
            entry.summary
        )
        assert re.search(r"request-duration: [\d.]+ \(max 500ms\) ok", entry.summary), entry.summary
    # The live HTTPProxy went 100/0 -> 95/5 -> 90/10 -> 100/0 (Contour omits zero weights).
    assert [[(PRIMARY, 95), (CANARY_SVC, 5)]] in seen
    assert [[(PRIMARY, 90), (CANARY_SVC, 10)]] in seen
    assert seen.index([[(PRIMARY, 95), (CANARY_SVC, 5)]]) < seen.index(
        [[(PRIMARY, 90), (CANARY_SVC, 10)]]
    )
    assert seen[-1] == WEIGHTED
    world.drive(
        lambda: world.live_image("test-contour", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.1",
        20,
        "the primary running 6.0.1",
    )

    promoted = world.git("rev-parse", "main")
    world.bump(CONTOUR, "6.0.2")
    world.until_phase(CONTOUR, "Failed", timeout=120)
    rollback_run = world.entries_since(CONTOUR, promoted)
    failed = [e for e in rollback_run if e.phase == "Progressing" and e.failed_checks]
    assert failed, "the failed checks are committed before the rollback"
    for entry in failed:
        match = re.search(r"request-success-rate: ([\d.]+) \(min 99%\) FAILED", entry.summary)
        assert match is not None, entry.summary
        assert float(match.group(1)) < 99
    rollback = rollback_run[-1]
    assert (rollback.phase, rollback.weight) == ("Failed", 0)
    assert "failed checks threshold reached 2" in rollback.subject + rollback.summary
    assert proxy_weights(world.yaml_at(ROUTE_FILE[CONTOUR])) == WEIGHTED
    assert world.yaml_at(f"{CONTOUR_APP}/deployment.yaml")["spec"]["replicas"] == 0
    world.drive(lambda: proxy_weights(live_proxy(world)) == WEIGHTED, 20, "rollback applied")
    assert world.live_image("test-contour", PRIMARY) == "ghcr.io/stefanprodan/podinfo:6.0.1"
    assert assert_builds_at_every_commit(world, CONTOUR_APP, tmp_path / "trees", seed) > 10


def test_contour_ab_testing_ten_iterations(open_playground: OpenWorld) -> None:
    # The Canary as shipped in examples/repo: Flagger's Contour tutorial A/B test on
    # x-canary: insider (the Gateway API app is left out to spare the CPU).
    world = open_playground(apps=[CONTOUR_APP])
    world.initialize(CONTOUR)
    layouts: list[Any] = []

    def sample(_: TickReport) -> None:
        proxy = world.store.get("projectcontour.io/v1", "HTTPProxy", "test-contour", "podinfo")
        if proxy is not None:
            routes = [
                (r.get("conditions"), proxy_weights({"spec": {"routes": [r]}})[0])
                for r in proxy["spec"]["routes"]
            ]
            if not layouts or layouts[-1] != routes:
                layouts.append(routes)

    world.bump(CONTOUR, "6.0.1")
    world.drive(lambda: world.phase(CONTOUR) == "Succeeded", 150, "A/B promotion", sample)

    run = world.entries(CONTOUR)[2:]
    subjects = [e.subject for e in run]
    assert subjects == [
        "New revision detected! Scaling up podinfo.test-contour",
        *[f"Advance podinfo.test-contour canary iteration {i}/10" for i in range(1, 11)],
        PROMOTING_SUBJECT,
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test-contour",
    ]
    header_route = [{"header": {"exact": "insider", "name": "x-canary"}, "prefix": "/"}]
    ab = [
        (header_route, [(PRIMARY, 0), (CANARY_SVC, 100)]),
        ([{"prefix": "/"}], [(PRIMARY, 100), (CANARY_SVC, 0)]),
    ]
    assert any(layout == ab for layout in layouts), layouts
