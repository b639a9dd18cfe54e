"""The Contour ``HTTPProxy`` (``flagger-behaviour.md`` §4.5): a non-root proxy (no virtualhost)
that the user's root proxy includes, with weighted or A/B routes.

Zero weights are left out, as Flagger does (its Go field is ``omitempty``). Contour reads a
missing weight as 0 as long as another service of the route has a weight (with no weight at all it
would split evenly), and every route written here has one positive weight: the weighted route's
two weights sum to 100, and the A/B fallback route sends 100 to the primary.

``service.hosts``, ``gatewayRefs``, ``analysis.sessionAffinity`` and mirroring do not apply to
Contour and are ignored, as in Flagger. Differences from Flagger (DESIGN D8): no ownerReferences;
an empty ``retries.retryOn`` is left out instead of written as ``[""]``; A/B conditions are valid
with several headers (see :func:`~gitops_canary.core.render.matches.contour_conditions`).
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from gitops_canary.core.render.matches import contour_conditions, contour_prefix
from gitops_canary.core.render.model import RenderError, RenderInputs
from gitops_canary.core.render.services import route_metadata, service_names
from gitops_canary.core.render.weights import route_weights

#: Contour's idle timeout whenever a request timeout is set (Flagger's constant).
_IDLE_TIMEOUT = "5m"


def _service(inputs: RenderInputs, name: str, weight: int) -> dict[str, Any]:
    canary = inputs.canary
    port = canary.spec.service.port
    entry: dict[str, Any] = {"name": name, "port": port}
    if weight:
        entry["weight"] = weight
    # Flagger always sets it: Linkerd routes by this header when it sits behind Contour.
    entry["requestHeadersPolicy"] = {
        "set": [
            {
                "name": "l5d-dst-override",
                "value": f"{name}.{canary.namespace}.svc.cluster.local:{port}",
            }
        ]
    }
    return entry


def _route(
    inputs: RenderInputs, conditions: list[Any], primary_weight: int, canary_weight: int
) -> dict[str, Any]:
    service = inputs.canary.spec.service
    _, primary_name, canary_name = service_names(inputs)
    if primary_weight + canary_weight <= 0:
        raise RenderError(f"{inputs.canary.key}: a Contour route needs a positive weight")
    route: dict[str, Any] = {
        "conditions": conditions,
        "services": [
            _service(inputs, primary_name, primary_weight),
            _service(inputs, canary_name, canary_weight),
        ],
    }
    if service.timeout:
        route["timeoutPolicy"] = {"response": service.timeout, "idle": _IDLE_TIMEOUT}
    if service.retries is not None:
        retries = service.retries
        policy: dict[str, Any] = {}
        if retries.attempts is not None:
            policy["count"] = retries.attempts
        if retries.per_try_timeout:
            policy["perTryTimeout"] = retries.per_try_timeout
        retry_on = [part.strip() for part in (retries.retry_on or "").split(",") if part.strip()]
        if retry_on:
            policy["retryOn"] = retry_on
        route["retryPolicy"] = policy
    return route


def httpproxy(inputs: RenderInputs) -> dict[str, Any]:
    """The HTTPProxy for the status's weights."""
    canary = inputs.canary
    service = canary.spec.service
    apex_name, _, _ = service_names(inputs)
    primary_weight, canary_weight = route_weights(inputs.status)
    prefix = contour_prefix(service.match)

    if canary.spec.analysis.match:
        conditions = contour_conditions(
            canary.spec.analysis.match, prefix, f"{inputs.source_file}: spec.analysis.match"
        )
        routes = [
            _route(inputs, conditions, primary_weight, canary_weight),
            _route(inputs, [{"prefix": prefix}], 100, 0),
        ]
    else:
        routes = [_route(inputs, [{"prefix": prefix}], primary_weight, canary_weight)]

    spec: dict[str, Any] = {}
    if inputs.ingress_class:
        spec["ingressClassName"] = inputs.ingress_class
    spec["routes"] = routes
    return {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": route_metadata(inputs, apex_name),
        "spec": spec,
    }
