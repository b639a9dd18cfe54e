"""Routes against Flagger's own examples (``flagger-behaviour.md`` §4.4.7-§4.4.10, §4.5.4-§4.5.6)
and the route rules the golden files do not isolate: match mapping, filters, cookies, errors.

The examples are read from the reference itself, so a mismatch means a difference from Flagger.
They differ from our output only where DESIGN D8 says so: no ownerReferences, our managed-by label,
and (session affinity) the match path the API server would default anyway.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from test_render_support import (
    CONTOUR,
    GW,
    SHARED,
    ab,
    blue_green,
    make_inputs,
    session,
    with_analysis,
)

from gitops_canary.core.render import MANAGED_BY_LABEL, RenderError, render, route_weights
from gitops_canary.core.status import CanaryStatus

REFERENCE = (SHARED / "reference" / "flagger-behaviour.md").read_text()


def example(section: str) -> Any:
    """The first YAML block under the heading that starts with ``section``."""
    body = REFERENCE.split(f"#### {section}", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", body, flags=re.DOTALL)
    assert block is not None
    return yaml.safe_load(block.group(1))


def as_we_write(flagger: dict[str, Any]) -> dict[str, Any]:
    """Flagger's full example with the D8 metadata corrections."""
    expected = copy.deepcopy(flagger)
    del expected["metadata"]["ownerReferences"]
    expected["metadata"]["labels"] = {MANAGED_BY_LABEL: "gitops-canary"}
    return expected


def route(inputs: Any) -> dict[str, Any]:
    return render(inputs)[-1].obj


# --------------------------------------------------------------------------- Flagger's examples


def test_gateway_api_weight_0_is_flaggers_example() -> None:
    assert route(make_inputs(GW, "gatewayapi:v1", 0)) == as_we_write(example("4.4.7"))


def test_gateway_api_weight_10_is_flaggers_example() -> None:
    ours = route(make_inputs(GW, "gatewayapi:v1", 10))
    assert ours["spec"]["rules"] == example("4.4.8")["rules"]


def test_gateway_api_ab_is_flaggers_example() -> None:
    ours = route(make_inputs(ab(GW), "gatewayapi:v1", 100))
    assert ours["spec"] == example("4.4.9")["spec"]


def test_gateway_api_session_affinity_is_flaggers_example_with_defaulted_path() -> None:
    expected = example("4.4.10")["rules"]
    # Flagger leaves the path out and the API server defaults it; we write the default (D8).
    expected[0]["matches"][0] = {"path": {"type": "PathPrefix", "value": "/"}} | expected[0][
        "matches"
    ][0]
    inputs = make_inputs(
        session(GW), "gatewayapi:v1", 10, session_affinity_cookie="flagger-cookie=AbCdEfGhIj"
    )
    assert route(inputs)["spec"]["rules"] == expected


def test_contour_weight_0_is_flaggers_example() -> None:
    ours = route(make_inputs(GW, "contour", 0, "contour"))
    assert ours == as_we_write(example("4.5.4"))


def test_contour_weight_10_moves_only_the_weights() -> None:
    services = route(make_inputs(GW, "contour", 10, "contour"))["spec"]["routes"][0]["services"]
    assert [s.get("weight") for s in services] == [90, 10]
    zero = example("4.5.4")["spec"]["routes"][0]["services"]
    assert [{k: v for k, v in s.items() if k != "weight"} for s in services] == [
        {k: v for k, v in s.items() if k != "weight"} for s in zero
    ]


def test_contour_ab_is_flaggers_example() -> None:
    assert route(make_inputs(ab(GW), "contour", 100, "contour"))["spec"] == example("4.5.6")["spec"]


def test_contour_timeout_and_retries_are_flaggers() -> None:
    canary = copy.deepcopy(GW)
    canary["spec"]["service"] |= {
        "timeout": "15s",
        "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx"},
    }
    for r in route(make_inputs(ab(canary), "contour", 100))["spec"]["routes"]:
        assert r["timeoutPolicy"] == {"response": "15s", "idle": "5m"}
        assert r["retryPolicy"] == {"count": 3, "perTryTimeout": "5s", "retryOn": ["5xx"]}


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize(("weight", "expected"), [(0, (100, 0)), (10, (90, 10)), (100, (0, 100))])
def test_route_weights(weight: int, expected: tuple[int, int]) -> None:
    assert route_weights(CanaryStatus(canary_weight=weight)) == expected


@pytest.mark.parametrize("weight", [-1, 101])
def test_route_weights_out_of_range_is_an_error(weight: int) -> None:
    with pytest.raises(RenderError, match="canaryWeight"):
        route_weights(CanaryStatus(canary_weight=weight))


def test_ab_fallback_rule_stays_on_primary_at_every_weight() -> None:
    for weight in (0, 40, 100):
        rules = route(make_inputs(ab(GW), "gatewayapi:v1", weight))["spec"]["rules"]
        assert [b["weight"] for b in rules[0]["backendRefs"]] == [100 - weight, weight]
        assert rules[1]["backendRefs"] == [
            {"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 100}
        ]


def test_blue_green_single_rule_switches_all_traffic() -> None:
    rules = route(make_inputs(blue_green(GW), "gatewayapi:v1", 100))["spec"]["rules"]
    assert len(rules) == 1
    assert [b["weight"] for b in rules[0]["backendRefs"]] == [0, 100]


def test_contour_never_writes_zero_weights_and_always_one_positive() -> None:
    for canary in (CONTOUR, ab(CONTOUR)):
        for weight in (0, 30, 100):
            for r in route(make_inputs(canary, "contour", weight))["spec"]["routes"]:
                weights = [s.get("weight") for s in r["services"]]
                assert 0 not in weights
                assert any(w for w in weights)


# --------------------------------------------------------------------------- mirroring


def test_mirror_filter_only_for_blue_green_while_mirrored() -> None:
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898}
        },
    }
    bg = blue_green(GW, mirror=True)
    mirrored = route(make_inputs(bg, "gatewayapi:v1", 0, mirrored=True, iterations=2))
    assert mirrored["spec"]["rules"][0]["filters"] == [mirror]
    assert "filters" not in route(make_inputs(bg, "gatewayapi:v1", 0))["spec"]["rules"][0]
    # A weighted canary has no iterations: Flagger never mirrors it on Gateway API.
    weighted = with_analysis(GW, mirror=True)
    assert (
        "filters"
        not in route(make_inputs(weighted, "gatewayapi:v1", 0, mirrored=True))["spec"]["rules"][0]
    )
    # Contour ignores mirroring.
    contour = route(make_inputs(blue_green(CONTOUR, mirror=True), "contour", 0, mirrored=True))
    assert contour == route(make_inputs(blue_green(CONTOUR), "contour", 0))


# --------------------------------------------------------------------------- session affinity


def test_session_affinity_at_weight_0_without_cookie_duplicates_the_weighted_rule() -> None:
    rules = route(make_inputs(session(GW), "gatewayapi:v1", 0))["spec"]["rules"]
    assert len(rules) == 2
    assert rules[0] == rules[1]


def test_session_affinity_expires_the_cookie_of_the_run_that_ended() -> None:
    # The current cookie wins over an older previous one, as when Flagger moves it at weight 0.
    inputs = make_inputs(
        session(GW),
        "gatewayapi:v1",
        0,
        session_affinity_cookie="flagger-cookie=Current",
        previous_session_affinity_cookie="flagger-cookie=Older",
    )
    sticky = route(inputs)["spec"]["rules"][0]
    assert sticky["filters"][-1]["responseHeaderModifier"]["add"] == [
        {"name": "Set-Cookie", "value": "flagger-cookie=Current; Max-Age=-1"}
    ]
    assert sticky["matches"][0]["headers"][0]["value"] == ".*flagger-cookie.*Current.*"


def test_set_cookie_carries_every_attribute_in_flaggers_order() -> None:
    affinity = {
        "domain": "flagger.app",
        "httpOnly": True,
        "maxAge": 300,
        "partitioned": True,
        "path": "/app",
        "sameSite": "Strict",
        "secure": True,
    }
    inputs = make_inputs(
        session(GW, **affinity),
        "gatewayapi:v1beta1",
        10,
        session_affinity_cookie="flagger-cookie=X",
    )
    canary_backend = route(inputs)["spec"]["rules"][-1]["backendRefs"][1]
    assert canary_backend["filters"][0]["responseHeaderModifier"]["add"][0]["value"] == (
        "flagger-cookie=X; Max-Age=300; Domain=flagger.app; HttpOnly; Partitioned; Path=/app; "
        "SameSite=Strict; Secure"
    )


def test_v1beta1_has_no_primary_cookie_rule() -> None:
    canary = session(GW, primaryCookieName="primary-cookie")
    cookies: dict[str, Any] = {
        "session_affinity_cookie": "flagger-cookie=A",
        "primary_session_affinity_cookie": "primary-cookie=B",
    }
    assert len(route(make_inputs(canary, "gatewayapi:v1", 10, **cookies))["spec"]["rules"]) == 3
    assert (
        len(route(make_inputs(canary, "gatewayapi:v1beta1", 10, **cookies))["spec"]["rules"]) == 2
    )


def test_session_affinity_without_cookie_in_status_is_an_error() -> None:
    with pytest.raises(RenderError, match="sessionAffinityCookie"):
        render(make_inputs(session(GW), "gatewayapi:v1", 10))


# --------------------------------------------------------------------------- service fields


def _service(**fields: Any) -> dict[str, Any]:
    canary = copy.deepcopy(GW)
    canary["spec"]["service"] |= fields
    return canary


def test_timeouts_only_on_v1() -> None:
    canary = _service(timeout="10s", backendTimeout="5s")
    v1 = route(make_inputs(ab(canary), "gatewayapi:v1", 0))["spec"]["rules"]
    assert [r["timeouts"] for r in v1] == [{"request": "10s", "backendRequest": "5s"}] * 2
    v1beta1 = route(make_inputs(canary, "gatewayapi:v1beta1", 0))["spec"]["rules"]
    assert "timeouts" not in v1beta1[0]


def test_filters_in_flaggers_order_with_sorted_headers() -> None:
    canary = _service(
        headers={
            "request": {"add": {"b": "2", "a": "1"}, "set": {"z": "9"}, "remove": ["y", "x"]},
            "response": {"remove": ["token"]},
        },
        rewrite={"uri": "/v2", "authority": "example.org", "type": "ReplacePrefixMatch"},
        mirror=[{"backendRef": {"name": "shadow", "port": 80}, "percent": 10}],
        corsPolicy={
            "allowOrigin": ["https://example.com"],
            "allowMethods": ["GET"],
            "maxAge": "24h",
        },
    )
    filters = route(make_inputs(canary, "gatewayapi:v1", 0))["spec"]["rules"][0]["filters"]
    assert filters == [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": "z", "value": "9"}],
                "add": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}],
                "remove": ["y", "x"],
            },
        },
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["token"]}},
        {
            "type": "URLRewrite",
            "urlRewrite": {
                "hostname": "example.org",
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"},
            },
        },
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "shadow", "port": 80},
                "percent": 10,
            },
        },
        {
            "type": "CORS",
            "cors": {
                "allowOrigins": ["https://example.com"],
                "allowMethods": ["GET"],
                "maxAge": 86400,
            },
        },
    ]


def test_service_match_maps_to_gateway_matches_with_sorted_headers() -> None:
    canary = _service(
        match=[
            {
                "uri": {"prefix": "/api"},
                "method": {"exact": "GET"},
                "headers": {"x-b": {"regex": "b.*"}, "x-a": {"exact": "a"}},
                "queryParams": {"q": {"exact": "1"}},
            },
            {"name": "only-a-name"},  # an empty match is dropped
        ]
    )
    rules = route(make_inputs(canary, "gatewayapi:v1", 0))["spec"]["rules"]
    assert rules[0]["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [
                {"name": "x-a", "type": "Exact", "value": "a"},
                {"name": "x-b", "type": "RegularExpression", "value": "b.*"},
            ],
            "queryParams": [{"name": "q", "type": "Exact", "value": "1"}],
            "method": "GET",
        }
    ]


def test_ab_matches_are_the_cross_product_with_the_service_match() -> None:
    canary = ab(
        _service(match=[{"uri": {"prefix": "/a"}}, {"uri": {"exact": "/b"}}]),
        [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"queryParams": {"beta": {"exact": "1"}}},
        ],
    )
    matches = route(make_inputs(canary, "gatewayapi:v1", 100))["spec"]["rules"][0]["matches"]
    header = [{"name": "x-canary", "type": "Exact", "value": "insider"}]
    query = [{"name": "beta", "type": "Exact", "value": "1"}]
    assert matches == [
        {"path": {"type": "PathPrefix", "value": "/a"}, "headers": header},
        {"path": {"type": "PathPrefix", "value": "/a"}, "queryParams": query},
        {"path": {"type": "Exact", "value": "/b"}, "headers": header},
        {"path": {"type": "Exact", "value": "/b"}, "queryParams": query},
    ]


@pytest.mark.parametrize("matcher", ["prefix", "suffix"])
def test_gateway_api_refuses_header_matches_it_cannot_express(matcher: str) -> None:
    # Flagger drops these silently in analysis.match, which can route everyone to the canary.
    canary = ab(GW, [{"headers": {"cookie": {matcher: "insider"}}}])
    with pytest.raises(RenderError, match=r"spec\.analysis\.match\[0\]\.headers\.cookie"):
        render(make_inputs(canary, "gatewayapi:v1", 100))


def test_gateway_api_needs_gateway_refs() -> None:
    canary = copy.deepcopy(GW)
    del canary["spec"]["service"]["gatewayRefs"]
    with pytest.raises(RenderError, match="gatewayRefs"):
        render(make_inputs(canary, "gatewayapi:v1", 0))


def test_parent_refs_are_copied_field_by_field() -> None:
    canary = _service(gatewayRefs=[{"name": "gw", "sectionName": "https", "port": 443}])
    parents = route(make_inputs(canary, "gatewayapi:v1", 0))["spec"]["parentRefs"]
    assert parents == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "sectionName": "https",
            "port": 443,
        }
    ]


def test_hostnames_left_out_without_hosts() -> None:
    canary = copy.deepcopy(GW)
    del canary["spec"]["service"]["hosts"]
    assert "hostnames" not in route(make_inputs(canary, "gatewayapi:v1", 0))["spec"]


def test_apex_metadata_goes_on_the_route_without_toolkit_keys() -> None:
    canary = _service(
        apex={
            "labels": {"team": "a", "kustomize.toolkit.fluxcd.io/name": "apps"},
            "annotations": {"note": "x"},
        }
    )
    for provider in ("gatewayapi:v1", "contour"):
        meta = route(make_inputs(canary, provider, 0))["metadata"]
        # Flagger's Service reconciler adds the selector label to the apex map the router reads.
        assert meta["labels"] == {"app": "podinfo", MANAGED_BY_LABEL: "gitops-canary", "team": "a"}
        assert meta["annotations"] == {"note": "x"}


# --------------------------------------------------------------------------- Contour


def test_contour_prefix_comes_from_the_first_service_match() -> None:
    canary = copy.deepcopy(CONTOUR)
    canary["spec"]["service"]["match"] = [{"uri": {"prefix": "/podinfo"}}]
    conditions = route(make_inputs(ab(canary), "contour", 0))["spec"]["routes"]
    assert [r["conditions"][0]["prefix"] for r in conditions] == ["/podinfo", "/podinfo"]


@pytest.mark.parametrize(
    ("header", "condition"),
    [
        ({"exact": "insider"}, {"name": "x-canary", "exact": "insider"}),
        ({"prefix": "Mobile"}, {"name": "x-canary", "contains": "Mobile"}),
        ({"suffix": "Firefox/71.0"}, {"name": "x-canary", "contains": "Firefox/71.0"}),
        ({"regex": "^in.*"}, {"name": "x-canary", "regex": "^in.*"}),
    ],
)
def test_contour_header_conditions(header: dict[str, str], condition: dict[str, str]) -> None:
    canary = ab(CONTOUR, [{"headers": {"x-canary": header}}])
    first = route(make_inputs(canary, "contour", 100))["spec"]["routes"][0]["conditions"]
    assert first == [{"prefix": "/", "header": condition}]


def test_contour_several_headers_keep_one_prefix() -> None:
    canary = ab(CONTOUR, [{"headers": {"x-b": {"exact": "2"}, "x-a": {"exact": "1"}}}])
    conditions = route(make_inputs(canary, "contour", 100))["spec"]["routes"][0]["conditions"]
    assert conditions == [
        {"prefix": "/", "header": {"name": "x-a", "exact": "1"}},
        {"header": {"name": "x-b", "exact": "2"}},
    ]


def test_contour_ab_without_header_is_an_error() -> None:
    canary = ab(CONTOUR, [{"queryParams": {"beta": {"exact": "1"}}}])
    with pytest.raises(RenderError, match="header match"):
        render(make_inputs(canary, "contour", 100))


def test_contour_retry_on_is_split_and_trimmed() -> None:
    canary = copy.deepcopy(CONTOUR)
    canary["spec"]["service"]["retries"] = {"attempts": 10, "retryOn": "connect-failure, 5xx"}
    policy = route(make_inputs(canary, "contour", 0))["spec"]["routes"][0]["retryPolicy"]
    assert policy == {"count": 10, "retryOn": ["connect-failure", "5xx"]}


def test_unknown_provider_is_an_error() -> None:
    with pytest.raises(RenderError, match="provider 'istio' is not supported"):
        render(make_inputs(GW, "istio", 0))
