"""Gateway API strategies other than weighted: A/B on a header, blue/green with mirroring, and
weighted with session affinity. Each runs a variant of the example canary."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import GATEWAY, GATEWAY_APP, ROUTE_FILE, OpenWorld, World, route_weights

from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PRIMARY = "podinfo-primary"
CANARY_SVC = "podinfo-canary"
PROMOTION = [
    "Copying podinfo.test template spec to podinfo-primary.test",
    "Routing all traffic to primary",
    "Promotion completed! Scaling down podinfo.test",
]


def iterations(count: int, **extra: Any) -> Any:
    def edit(canary: dict[str, Any]) -> None:
        analysis = canary["spec"]["analysis"]
        del analysis["stepWeight"]
        del analysis["maxWeight"]
        analysis["iterations"] = count
        analysis.update(extra)

    return edit


def live_route(world: World) -> dict[str, Any]:
    return world.live("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")


def record_routes(world: World, seen: list[dict[str, Any]]) -> Any:
    def sample(_: TickReport) -> None:
        route = world.store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "test", "podinfo")
        if route is not None and (not seen or seen[-1] != route["spec"]):
            seen.append(route["spec"])

    return sample


def test_ab_testing_on_a_header(open_playground: OpenWorld) -> None:
    match = [{"headers": {"x-canary": {"exact": "insider"}}}]
    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: iterations(3, match=match)})
    world.initialize(GATEWAY)
    seen: list[dict[str, Any]] = []
    world.bump(GATEWAY, "6.0.1")
    world.drive(
        lambda: world.phase(GATEWAY) == "Succeeded",
        120,
        "A/B promotion",
        record_routes(world, seen),
    )

    run = world.entries(GATEWAY)[2:]
    assert [e.subject for e in run] == [
        "New revision detected! Scaling up podinfo.test",
        *[f"Advance podinfo.test canary iteration {i}/3" for i in (1, 2, 3)],
        *PROMOTION,
    ]
    # While iterating: the header rule sends insiders to the canary, the second rule everyone
    # else to the primary.
    for entry in run[1:4]:
        rules = world.yaml_at(ROUTE_FILE[GATEWAY], entry.sha)["spec"]["rules"]
        assert len(rules) == 2, rules
        headers = [m.get("headers") for m in rules[0]["matches"]]
        assert headers == [[{"name": "x-canary", "type": "Exact", "value": "insider"}]], rules
        assert route_weights({"spec": {"rules": rules}}) == [
            [(PRIMARY, 0), (CANARY_SVC, 100)],
            [(PRIMARY, 100)],
        ]
    assert any(
        route_weights({"spec": s}) == [[(PRIMARY, 0), (CANARY_SVC, 100)], [(PRIMARY, 100)]]
        for s in seen
    ), "the cluster ran the A/B layout"
    assert route_weights(world.yaml_at(ROUTE_FILE[GATEWAY]))[0] == [(PRIMARY, 100), (CANARY_SVC, 0)]
    assert world.yaml_at(f"{GATEWAY_APP}/deployment.yaml")["spec"]["replicas"] == 0


def test_blue_green_with_mirroring(open_playground: OpenWorld) -> None:
    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: iterations(3, mirror=True)})
    world.initialize(GATEWAY)
    seen: list[dict[str, Any]] = []
    world.bump(GATEWAY, "6.0.1")
    world.drive(
        lambda: world.phase(GATEWAY) == "Succeeded",
        120,
        "blue/green promotion",
        record_routes(world, seen),
    )

    run = world.entries(GATEWAY)[2:]
    assert [(e.subject, e.weight) for e in run] == [
        ("New revision detected! Scaling up podinfo.test", 0),
        *[(f"Advance podinfo.test canary iteration {i}/3", 0) for i in (1, 2, 3)],
        ("Stop traffic mirroring and route all traffic to canary", 100),
        (PROMOTION[0], 100),
        (PROMOTION[1], 0),
        (PROMOTION[2], 0),
    ]
    # Mirrored requests reach the canary, so its metrics are judged while users see the primary.
    assert "error-rate: 0.00 (max 1) ok" in run[2].summary
    for entry in run[1:4]:
        rules = world.yaml_at(ROUTE_FILE[GATEWAY], entry.sha)["spec"]["rules"]
        mirrors = [f for f in rules[0].get("filters", []) if f["type"] == "RequestMirror"]
        assert mirrors == [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"group": "", "kind": "Service", "name": CANARY_SVC, "port": 9898}
                },
            }
        ], rules
        assert route_weights({"spec": {"rules": rules}}) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]
    # Then all traffic to the canary, without the mirror, before promotion.
    switch = run[4]
    switched = world.yaml_at(ROUTE_FILE[GATEWAY], switch.sha)["spec"]["rules"]
    assert route_weights({"spec": {"rules": switched}}) == [[(PRIMARY, 0), (CANARY_SVC, 100)]]
    assert not [f for f in switched[0].get("filters", []) if f["type"] == "RequestMirror"]
    live_mirrors = [
        s
        for s in seen
        if any(f["type"] == "RequestMirror" for f in s["rules"][0].get("filters", []))
    ]
    assert live_mirrors, "the cluster ran the mirroring route"
    assert any(route_weights({"spec": s}) == [[(PRIMARY, 0), (CANARY_SVC, 100)]] for s in seen)
    assert route_weights(live_route(world)) == [[(PRIMARY, 100), (CANARY_SVC, 0)]]


def test_session_affinity(open_playground: OpenWorld) -> None:
    def sticky(canary: dict[str, Any]) -> None:
        analysis = canary["spec"]["analysis"]
        analysis["maxWeight"] = 30
        analysis["sessionAffinity"] = {"cookieName": "flagger-cookie", "maxAge": 21600}

    world = open_playground(apps=[GATEWAY_APP], canaries={GATEWAY_APP: sticky})
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")
    world.until_phase(GATEWAY, "Succeeded", timeout=120)

    run = world.entries(GATEWAY)[2:]
    assert [e.subject for e in run] == [
        "New revision detected! Scaling up podinfo.test",
        *[f"Advance podinfo.test canary weight {w}" for w in (10, 20, 30)],
        *PROMOTION,
    ]
    cookies = set()
    for entry in run[1:4]:
        rules = world.yaml_at(ROUTE_FILE[GATEWAY], entry.sha)["spec"]["rules"]
        assert len(rules) == 2, rules
        (cookie_match,) = rules[0]["matches"]
        (header,) = cookie_match["headers"]
        assert header["name"] == "Cookie"
        assert header["type"] == "RegularExpression"
        assert header["value"].startswith(".*flagger-cookie.*"), header
        cookies.add(header["value"])
        assert route_weights({"spec": {"rules": rules}}) == [
            [(PRIMARY, 0), (CANARY_SVC, 100)],
            [(PRIMARY, 100 - (entry.weight or 0)), (CANARY_SVC, entry.weight)],
        ]
        set_cookie = rules[1]["backendRefs"][1]["filters"][0]["responseHeaderModifier"]["add"][0]
        assert set_cookie["name"] == "Set-Cookie"
        assert set_cookie["value"].startswith("flagger-cookie=")
        assert "Max-Age=21600" in set_cookie["value"]
    assert len(cookies) == 1, "one cookie for the whole run"

    # After the run: the cookie is expired on the client's next request.
    final = world.yaml_at(ROUTE_FILE[GATEWAY])["spec"]["rules"]
    assert len(final) == 2
    expire = [
        op["value"]
        for f in final[0].get("filters", [])
        if f["type"] == "ResponseHeaderModifier"
        for op in f["responseHeaderModifier"].get("add", [])
    ]
    assert len(expire) == 1
    assert expire[0].startswith("flagger-cookie=")
    assert expire[0].endswith("; Max-Age=-1")
    assert route_weights({"spec": {"rules": final}})[1] == [(PRIMARY, 100), (CANARY_SVC, 0)]
    world.drive(
        lambda: live_route(world)["spec"]["rules"] == final, 20, "the cookie-clearing route live"
    )
