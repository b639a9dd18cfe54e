"""Flagger's request matches (Istio ``HTTPMatchRequest`` in ``service.match`` and
``analysis.match``) mapped to Gateway API ``HTTPRouteMatch`` and Contour ``MatchCondition``
(``flagger-behaviour.md`` §4.4.2, §4.5.1).

Flagger reads headers and query parameters from Go maps, so their order within one match is random
and a re-render can differ from the last one; here they are sorted by name.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gitops_canary.core.render.model import RenderError
from gitops_canary.core.specs import AnalysisMatch, HeaderMatch, HTTPMatchRequest, StringMatch

GatewayMatch = dict[str, Any]
DEFAULT_PATH: dict[str, str] = {"type": "PathPrefix", "value": "/"}

_URI_TYPES = (("regex", "RegularExpression"), ("exact", "Exact"), ("prefix", "PathPrefix"))


def _value_match(
    values: Mapping[str, StringMatch | HeaderMatch], where: str, what: str
) -> list[dict[str, str]]:
    """Header or query-parameter matches: ``exact`` and ``regex`` only, sorted by name."""
    mapped = []
    for name in sorted(values):
        value = values[name]
        if value.exact:
            mapped.append({"name": name, "type": "Exact", "value": value.exact})
        elif value.regex:
            mapped.append({"name": name, "type": "RegularExpression", "value": value.regex})
        else:
            raise RenderError(
                f"{where}.{what}.{name}: Gateway API supports only exact and regex matches here "
                f"(got {', '.join(value.kinds()) or 'nothing'})"
            )
    return mapped


def gateway_matches(
    requests: Sequence[HTTPMatchRequest | AnalysisMatch], where: str
) -> list[GatewayMatch]:
    """Flagger's ``mapRouteMatches``; empty matches are dropped.

    Flagger ignores mapping errors in ``analysis.match`` and keeps the entries mapped so far, which
    can turn an A/B rule into one that sends everyone to the canary; every error is raised here.
    """
    matches = []
    for index, request in enumerate(requests):
        here = f"{where}[{index}]"
        match: GatewayMatch = {}
        uri = getattr(request, "uri", None)
        if uri is not None:
            for field, path_type in _URI_TYPES:
                if getattr(uri, field):
                    match["path"] = {"type": path_type, "value": getattr(uri, field)}
                    break
            else:
                raise RenderError(
                    f"{here}.uri: Gateway API supports only exact, prefix and regex path matches"
                )
        headers = _value_match(request.headers, here, "headers")
        if headers:
            match["headers"] = headers
        query = _value_match(request.query_params, here, "queryParams")
        if query:
            match["queryParams"] = query
        method = getattr(request, "method", None)
        if method is not None:
            if not method.exact:
                raise RenderError(f"{here}.method: Gateway API supports only exact method matches")
            match["method"] = method.exact
        if match:
            matches.append(match)
    return matches


def merge_matches(analysis: list[GatewayMatch], base: list[GatewayMatch]) -> list[GatewayMatch]:
    """Flagger's ``mergeMatchConditions``: analysis × base, each a copy of the base match whose
    headers and query parameters are replaced by the analysis entry's when it has any."""
    if not analysis:
        return [dict(m) for m in base]
    if not base:
        return [dict(m) for m in analysis]
    merged = []
    for base_match in base:
        for analysis_match in analysis:
            match = dict(base_match)
            for field in ("headers", "queryParams"):
                if analysis_match.get(field):
                    match[field] = analysis_match[field]
            merged.append(_ordered_match(match))
    return merged


def _ordered_match(match: GatewayMatch) -> GatewayMatch:
    """Fields in the API's order: path, headers, queryParams, method."""
    order = ("path", "headers", "queryParams", "method")
    return {key: match[key] for key in order if key in match}


def with_default_path(match: GatewayMatch) -> GatewayMatch:
    """The match as the API server stores it: the CRD defaults a missing ``path`` to
    ``PathPrefix /``. Writing it keeps git equal to the live object, so Argo CD does not report
    the route OutOfSync (the same reason backendRefs are written fully defaulted, DESIGN D8)."""
    return _ordered_match({"path": dict(DEFAULT_PATH), **match})


# --------------------------------------------------------------------------- Contour


def contour_prefix(service_match: Sequence[HTTPMatchRequest]) -> str:
    """Flagger's ``makePrefix``: ``service.match[0].uri.prefix``, else ``/``."""
    if service_match and service_match[0].uri is not None and service_match[0].uri.prefix:
        return service_match[0].uri.prefix
    return "/"


def _contour_header(name: str, value: HeaderMatch) -> dict[str, str]:
    """Flagger's mapping: ``exact``; ``prefix`` and ``suffix`` become ``contains`` (Contour has no
    prefix or suffix header match). Flagger drops ``regex``, leaving a condition Contour cannot
    evaluate; Contour's ``regex`` field expresses it exactly, so it is used."""
    if value.prefix:
        return {"name": name, "contains": value.prefix}
    if value.suffix:
        return {"name": name, "contains": value.suffix}
    if value.regex:
        return {"name": name, "regex": value.regex}
    return {"name": name, "exact": value.exact or ""}


def contour_conditions(analysis: Sequence[AnalysisMatch], prefix: str, where: str) -> list[Any]:
    """The A/B route's conditions: the route prefix and one header condition per header.

    Flagger repeats the prefix in every condition, and Contour rejects a route with more than one
    prefix; the prefix is written once, with the first header, which is Flagger's output when
    there is one header (the case validation admits) and a valid route otherwise. Contour ANDs the
    conditions of a route.
    """
    headers = [
        _contour_header(name, entry.headers[name])
        for entry in analysis
        for name in sorted(entry.headers)
    ]
    if not headers:
        # Without a header condition the A/B route would match every request.
        raise RenderError(f"{where}: Contour A/B testing needs a header match in analysis.match")
    conditions: list[Any] = [{"prefix": prefix, "header": headers[0]}]
    conditions.extend({"header": header} for header in headers[1:])
    return conditions
