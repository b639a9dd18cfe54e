"""The Gateway API ``HTTPRoute`` for ``gatewayapi:v1`` and ``gatewayapi:v1beta1``
(``flagger-behaviour.md`` §4.4): weighted, A/B, blue/green mirroring and session-affinity rules.

Flagger rebuilds the whole spec on every ``SetRoutes``; so does this module, from the Canary and
the status. Differences from Flagger (DESIGN D8): no ownerReferences; backendRefs, parentRefs and
match paths are written as the API server defaults them, so the file equals the live object;
headers and query parameters are sorted; session cookies come from the status, never drawn here;
a match Gateway API cannot express is an error even in ``analysis.match``.
Pure: no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from gitops_canary.core.render.matches import (
    DEFAULT_PATH,
    gateway_matches,
    merge_matches,
    with_default_path,
)
from gitops_canary.core.render.model import RenderError, RenderInputs
from gitops_canary.core.render.services import route_metadata, service_names
from gitops_canary.core.render.weights import route_weights
from gitops_canary.core.specs import (
    Canary,
    HeaderOps,
    ParentRef,
    SessionAffinity,
    parse_duration,
)

Rule = dict[str, Any]

_SET_COOKIE = "Set-Cookie"


def _backend(name: str, port: int, weight: int) -> dict[str, Any]:
    # group and kind are the CRD defaults, written so git equals the live object (D8).
    return {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}


def _rule(
    matches: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    backend_refs: list[dict[str, Any]],
    timeouts: dict[str, str] | None,
) -> Rule:
    rule: Rule = {"matches": copy.deepcopy(matches)}
    if filters:
        rule["filters"] = copy.deepcopy(filters)
    rule["backendRefs"] = copy.deepcopy(backend_refs)
    if timeouts:
        rule["timeouts"] = dict(timeouts)
    return rule


def _header_modifier(ops: HeaderOps) -> dict[str, Any]:
    """``set`` and ``add`` sorted by name then value, as Flagger does; ``remove`` as given."""
    modifier: dict[str, Any] = {}
    if ops.set:
        modifier["set"] = [{"name": k, "value": v} for k, v in sorted(ops.set.items())]
    if ops.add:
        modifier["add"] = [{"name": k, "value": v} for k, v in sorted(ops.add.items())]
    if ops.remove:
        modifier["remove"] = list(ops.remove)
    return modifier


def _filters(canary: Canary, where: str) -> list[dict[str, Any]]:
    """Flagger's ``makeFilters``, in its order: request headers, response headers, rewrite,
    static mirrors, CORS."""
    service = canary.spec.service
    filters: list[dict[str, Any]] = []
    if service.headers is not None:
        if service.headers.request is not None:
            filters.append(
                {
                    "type": "RequestHeaderModifier",
                    "requestHeaderModifier": _header_modifier(service.headers.request),
                }
            )
        if service.headers.response is not None:
            filters.append(
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": _header_modifier(service.headers.response),
                }
            )
    if service.rewrite is not None:
        rewrite: dict[str, Any] = {}
        if service.rewrite.authority:
            rewrite["hostname"] = service.rewrite.authority
        if service.rewrite.uri:
            if service.rewrite.type == "ReplacePrefixMatch":
                rewrite["path"] = {
                    "type": "ReplacePrefixMatch",
                    "replacePrefixMatch": service.rewrite.uri,
                }
            else:
                rewrite["path"] = {
                    "type": "ReplaceFullPath",
                    "replaceFullPath": service.rewrite.uri,
                }
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    for mirror in service.mirror:
        ref = mirror.backend_ref
        backend: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "name": ref.name}
        if ref.namespace:
            backend["namespace"] = ref.namespace
        if ref.port is not None:
            backend["port"] = ref.port
        request_mirror: dict[str, Any] = {"backendRef": backend}
        if mirror.percent is not None:
            request_mirror["percent"] = mirror.percent
        if mirror.fraction is not None:
            request_mirror["fraction"] = dict(mirror.fraction)
        filters.append({"type": "RequestMirror", "requestMirror": request_mirror})
    cors = service.cors_policy
    if cors is not None:
        # allowOrigins (StringMatch regexes) has no Gateway API equivalent; Flagger drops it too.
        policy: dict[str, Any] = {}
        if cors.allow_origin:
            policy["allowOrigins"] = list(cors.allow_origin)
        if cors.allow_credentials is not None:
            policy["allowCredentials"] = cors.allow_credentials
        if cors.allow_methods:
            policy["allowMethods"] = list(cors.allow_methods)
        if cors.allow_headers:
            policy["allowHeaders"] = list(cors.allow_headers)
        if cors.expose_headers:
            policy["exposeHeaders"] = list(cors.expose_headers)
        if cors.max_age:
            seconds = parse_duration(cors.max_age)
            if seconds is None:
                raise RenderError(
                    f"{where}: spec.service.corsPolicy.maxAge {cors.max_age!r} is not a duration "
                    "(for example 24h)"
                )
            policy["maxAge"] = int(seconds)
        filters.append({"type": "CORS", "cors": policy})
    return filters


def build_cookie(affinity: SessionAffinity, cookie: str, max_age: int) -> str:
    """Flagger's ``BuildCookie``: the ``Set-Cookie`` value for ``<name>=<value>``."""
    parts = [cookie, f"Max-Age={max_age}"]
    if affinity.domain:
        parts.append(f"Domain={affinity.domain}")
    if affinity.http_only:
        parts.append("HttpOnly")
    if affinity.partitioned:
        parts.append("Partitioned")
    if affinity.path:
        parts.append(f"Path={affinity.path}")
    if affinity.same_site:
        parts.append(f"SameSite={affinity.same_site}")
    if affinity.secure:
        parts.append("Secure")
    return "; ".join(parts)


def _cookie_match(cookie: str) -> dict[str, Any]:
    name, _, value = cookie.partition("=")
    return {
        "headers": [
            {"name": "Cookie", "type": "RegularExpression", "value": f".*{name}.*{value}.*"}
        ]
    }


def _set_cookie_filter(value: str) -> dict[str, Any]:
    return {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": _SET_COOKIE, "value": value}]},
    }


def _session_affinity_rules(
    inputs: RenderInputs, weighted: Rule, base_service_matches: list[dict[str, Any]], v1: bool
) -> list[Rule]:
    """§4.4.4: sticky rules in front of the weighted rule."""
    canary = inputs.canary
    affinity = canary.spec.analysis.session_affinity
    assert affinity is not None
    status = inputs.status
    _, primary_name, canary_name = service_names(inputs)
    port = canary.spec.service.port
    _, canary_weight = route_weights(status)
    sticky = copy.deepcopy(weighted)

    if canary_weight != 0:
        cookie = status.session_affinity_cookie
        if not cookie:
            raise RenderError(
                f"{canary.key}: status.sessionAffinityCookie must be set while the canary "
                f"receives traffic (weight {canary_weight})"
            )
        primary_cookie = None
        if v1 and affinity.primary_cookie_name:
            primary_cookie = status.primary_session_affinity_cookie
            if not primary_cookie:
                raise RenderError(
                    f"{canary.key}: status.primarySessionAffinityCookie must be set while the "
                    f"canary receives traffic (weight {canary_weight})"
                )
        for backend in weighted["backendRefs"]:
            if backend["name"] == canary_name:
                backend["filters"] = [
                    _set_cookie_filter(build_cookie(affinity, cookie, affinity.max_age))
                ]
            if primary_cookie and backend["name"] == primary_name:
                backend["filters"] = [
                    _set_cookie_filter(build_cookie(affinity, primary_cookie, _interval(canary)))
                ]
        sticky["matches"] = merge_matches([_cookie_match(cookie)], base_service_matches)
        sticky["backendRefs"] = [_backend(primary_name, port, 0), _backend(canary_name, port, 100)]
        rules = [sticky]
        if primary_cookie:
            sticky_primary = copy.deepcopy(sticky)
            sticky_primary["matches"] = merge_matches(
                [_cookie_match(primary_cookie)], base_service_matches
            )
            sticky_primary["backendRefs"] = [
                _backend(primary_name, port, 100),
                _backend(canary_name, port, 0),
            ]
            rules.append(sticky_primary)
        return [*rules, weighted]

    # Weight 0: a cookie of the run that just ended is expired on the client's next request.
    previous = status.session_affinity_cookie or status.previous_session_affinity_cookie
    if previous:
        sticky["matches"] = merge_matches([_cookie_match(previous)], base_service_matches)
        filters = sticky.pop("filters", [])
        filters.append(_set_cookie_filter(f"{previous}; Max-Age=-1"))
        sticky = _rule(sticky["matches"], filters, sticky["backendRefs"], sticky.get("timeouts"))
    return [sticky, weighted]


def _interval(canary: Canary) -> int:
    """The primary cookie's Max-Age: ``analysis.interval`` in seconds."""
    seconds = parse_duration(canary.spec.analysis.interval or "")
    return int(seconds) if seconds is not None else canary.spec.analysis.interval_seconds()


def httproute(inputs: RenderInputs) -> dict[str, Any]:
    """The HTTPRoute for the status's weights."""
    canary = inputs.canary
    service = canary.spec.service
    analysis = canary.spec.analysis
    v1 = inputs.provider == "gatewayapi:v1"
    where = inputs.source_file
    apex_name, primary_name, canary_name = service_names(inputs)
    primary_weight, canary_weight = route_weights(inputs.status)
    if not service.gateway_refs:
        raise RenderError(
            f"{where}: spec.service.gatewayRefs must name at least one Gateway when the provider "
            f"is {inputs.provider}"
        )

    service_matches = gateway_matches(service.match, f"{where}: spec.service.match")
    base = service_matches or [{"path": dict(DEFAULT_PATH)}]
    filters = _filters(canary, where)
    timeouts: dict[str, str] = {}
    if v1 and service.timeout:
        timeouts["request"] = service.timeout
    if v1 and service.backend_timeout:
        timeouts["backendRequest"] = service.backend_timeout

    port = service.port
    weighted_filters = list(filters)
    if inputs.status.mirrored and analysis.iterations_value() > 0:
        weighted_filters.append(
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {
                        "group": "",
                        "kind": "Service",
                        "name": canary_name,
                        "port": port,
                    }
                },
            }
        )
    weighted = _rule(
        base,
        weighted_filters,
        [_backend(primary_name, port, primary_weight), _backend(canary_name, port, canary_weight)],
        timeouts,
    )
    rules = [weighted]
    if analysis.session_affinity is not None:
        rules = _session_affinity_rules(inputs, weighted, service_matches, v1)
    if analysis.match:
        analysis_matches = gateway_matches(analysis.match, f"{where}: spec.analysis.match")
        rules[0]["matches"] = merge_matches(analysis_matches, base)
        rules.append(_rule(base, filters, [_backend(primary_name, port, 100)], timeouts))
    for rule in rules:
        rule["matches"] = [with_default_path(m) for m in rule["matches"]]

    spec: dict[str, Any] = {"parentRefs": [_parent_ref(ref) for ref in service.gateway_refs]}
    if service.hosts:
        spec["hostnames"] = list(service.hosts)
    spec["rules"] = rules
    return {
        "apiVersion": f"gateway.networking.k8s.io/{'v1' if v1 else 'v1beta1'}",
        "kind": "HTTPRoute",
        "metadata": route_metadata(inputs, apex_name),
        "spec": spec,
    }


def _parent_ref(ref: ParentRef) -> dict[str, Any]:
    parent: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        parent["namespace"] = ref.namespace
    if ref.section_name:
        parent["sectionName"] = ref.section_name
    if ref.port is not None:
        parent["port"] = ref.port
    return parent
