"""PromQL for a canary's metrics: Flagger's builtin queries, template rendering, the query plan.

This module owns *which* queries a canary's analysis runs, in which order, against which
Prometheus, and the text of each query (``flagger-behaviour.md`` §5.1, §5.2, §5.5). Sending the
queries is :mod:`gitops_canary.observe.prometheus`; judging the answers is
:mod:`gitops_canary.core.verdicts`.

Templates use the small part of Go's ``text/template`` that Flagger documents: ``{{ name }}``,
``{{ namespace }}``, ``{{ target }}``, ``{{ service }}``, ``{{ ingress }}``, ``{{ route }}``,
``{{ interval }}`` and ``{{ variables.X }}`` (with optional ``{{-``/``-}}`` trim markers). Anything
else between braces is refused with the template and the expression named, instead of being
evaluated: a query template is never a way to run code.

Deviation (D8): a ``templateRef`` metric without ``interval`` gets ``1m`` like builtin metrics
(Flagger renders an empty window, which Prometheus rejects).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gitops_canary.core.specs import Canary, CanaryMetric, MetricTemplate

DEFAULT_METRIC_INTERVAL = "1m"
SUCCESS_RATE = "request-success-rate"
DURATION = "request-duration"
BUILTIN_METRICS = (SUCCESS_RATE, DURATION)

# Laid out like Flagger's Go sources; whitespace is collapsed before sending, which is why the
# rendered Contour success-rate query starts with a space (Flagger's contour_test.go expects it).
_CONTOUR_CLUSTER = 'envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",'
_APP_POD = (
    'kubernetes_namespace="{{ namespace }}",\n'
    '\t\t\t\tkubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"'
)

#: Flagger's builtin queries per metrics observer (``contour`` and ``gatewayapi``), §5.2.
BUILTIN_QUERIES: Mapping[str, Mapping[str, str]] = {
    "contour": {
        SUCCESS_RATE: f"""
	sum(
		rate(
			envoy_cluster_upstream_rq{{
				{_CONTOUR_CLUSTER}
				envoy_response_code!~"5.*"
			}}[{{{{ interval }}}}]
		)
	)
	/
	sum(
		rate(
			envoy_cluster_upstream_rq{{
				{_CONTOUR_CLUSTER}
			}}[{{{{ interval }}}}]
		)
	)
	* 100""",
        DURATION: f"""
	histogram_quantile(0.99,
		sum(
			rate(
				envoy_cluster_upstream_rq_time_bucket{{
					{_CONTOUR_CLUSTER}
				}}[{{{{ interval }}}}]
			)
		) by (le)
	)""",
    },
    "gatewayapi": {
        SUCCESS_RATE: f"""
	sum(
		rate(
			http_request_duration_seconds_count{{
				{_APP_POD},
				status!~"5.*"
			}}[{{{{ interval }}}}]
		)
	)
	/
	sum(
		rate(
			http_request_duration_seconds_count{{
				{_APP_POD}
			}}[{{{{ interval }}}}]
		)
	)
	* 100""",
        DURATION: f"""
	histogram_quantile(0.99,
		sum(
			rate(
				http_request_duration_seconds_bucket{{
					{_APP_POD}
				}}[{{{{ interval }}}}]
			)
		) by (le)
	)""",
    },
}


class UnitKind(StrEnum):
    """What a query's value means, which decides how it is compared and printed (§5.3)."""

    PERCENT = "percent"  # builtin success rate, 0-100
    DURATION_MS = "duration-ms"  # Contour builtin latency: Envoy reports milliseconds
    DURATION_S = "duration-s"  # Gateway API builtin latency: the app reports seconds
    PLAIN = "plain"  # inline queries and MetricTemplates: a bare number


class QuerySource(StrEnum):
    BUILTIN = "builtin"
    INLINE = "inline"
    TEMPLATE = "template"


class QueryTemplateError(ValueError):
    """A query template uses something gitops-canary does not render."""

    def __init__(self, template_name: str, expression: str, reason: str) -> None:
        self.template_name = template_name
        self.expression = expression
        self.reason = reason
        super().__init__(f"Metric template {template_name} query render error: {reason}")


@dataclass(frozen=True)
class SecretLocation:
    """Where a MetricTemplate's ``provider.secretRef`` lives: always the template's namespace."""

    namespace: str
    name: str


@dataclass(frozen=True)
class MetricQuery:
    """One query to send: the rendered PromQL, where to send it, and how to read the answer.

    ``metric`` is the canary's metric entry (thresholds). ``template`` is ``<name>.<namespace>`` of
    the MetricTemplate for template queries. ``provider`` is the metrics observer for builtin
    queries (named in Flagger's "no values" message). Headers are a tuple of pairs so the record
    stays immutable.
    """

    metric: CanaryMetric
    query: str
    address: str
    source: QuerySource
    kind: UnitKind = UnitKind.PLAIN
    headers: tuple[tuple[str, str], ...] = ()
    secret: SecretLocation | None = None
    insecure_skip_verify: bool = False
    template: str = ""
    provider: str = ""

    @property
    def name(self) -> str:
        return self.metric.name


@dataclass(frozen=True)
class QueryPlanError:
    """A metric that cannot be queried at all; ``message`` is Flagger's error event text."""

    metric: CanaryMetric
    message: str
    source: QuerySource = QuerySource.TEMPLATE
    details: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.metric.name


# --------------------------------------------------------------------------- rendering

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PLAIN_NAME = re.compile(rf"^({_IDENT})$")
_VARIABLE = re.compile(rf"^variables\.({_IDENT})$")
_KNOWN_NAMES = ("name", "namespace", "target", "service", "ingress", "route", "interval")
_SUPPORTED = ", ".join(f"{{{{ {n} }}}}" for n in _KNOWN_NAMES) + " and {{ variables.X }}"


def collapse_whitespace(query: str) -> str:
    """Flagger collapses every run of whitespace to one space before sending a query."""
    return _WHITESPACE.sub(" ", query)


def render_query(
    template: str,
    *,
    name: str,
    namespace: str,
    target: str,
    service: str,
    interval: str,
    variables: Mapping[str, str],
    template_name: str,
    ingress: str | None = None,
    route: str | None = None,
) -> str:
    """Render a Flagger query template and collapse its whitespace.

    ``ingress`` and ``route`` default to ``target`` as in Flagger. Raises
    :class:`QueryTemplateError` for an unclosed action, an expression outside the supported
    subset, or a ``{{ variables.X }}`` whose key is missing.
    """
    values = {
        "name": name,
        "namespace": namespace,
        "target": target,
        "service": service,
        "ingress": ingress or target,
        "route": route or target,
        "interval": interval,
    }
    pieces: list[str] = []
    position = 0
    for match in _ACTION.finditer(template):
        literal = template[position : match.start()]
        if match.group(1):  # "{{- " trims the whitespace before the action
            literal = literal.rstrip()
        pieces.append(literal)
        pieces.append(
            _evaluate(match.group(0), match.group(2).strip(), values, variables, template_name)
        )
        position = match.end()
        if match.group(3):  # " -}}" trims the whitespace after it
            rest = template[position:]
            position += len(rest) - len(rest.lstrip())
    tail = template[position:]
    if "{{" in tail:
        start = tail.index("{{")
        excerpt = tail[start : start + 40].splitlines()[0]
        raise QueryTemplateError(
            template_name, excerpt, f'unclosed action "{excerpt}": a "{{{{" has no matching "}}}}"'
        )
    pieces.append(tail)
    return collapse_whitespace("".join(pieces))


def _evaluate(
    action: str,
    expression: str,
    values: Mapping[str, str],
    variables: Mapping[str, str],
    template_name: str,
) -> str:
    plain = _PLAIN_NAME.match(expression)
    if plain and plain.group(1) in values:
        return values[plain.group(1)]
    variable = _VARIABLE.match(expression)
    if variable:
        key = variable.group(1)
        if key not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise QueryTemplateError(
                template_name,
                action,
                f'{action} needs templateVariables key "{key}", which the canary metric does not '
                f"set (keys set: {known})",
            )
        return variables[key]
    raise QueryTemplateError(
        template_name,
        action,
        f"unsupported expression {action}: gitops-canary renders only {_SUPPORTED}",
    )


# --------------------------------------------------------------------------- the plan


def metric_interval(metric: CanaryMetric) -> str:
    """A metric's query window: its ``interval``, else ``1m`` (for templates too, D8)."""
    return metric.interval or DEFAULT_METRIC_INTERVAL


def observer_for(provider: str) -> str | None:
    """The builtin-metrics observer Flagger picks for a router provider (§5.1)."""
    if provider == "contour":
        return "contour"
    if provider.startswith("gatewayapi"):
        return "gatewayapi"
    return None


_HTTP_ADDRESS = re.compile(r"^https?://[^/\s?#]+[^\s]*$")


def is_valid_address(address: str) -> bool:
    """An ``http(s)://host[:port][/path]`` URL, the only kind of Prometheus address accepted."""
    return bool(_HTTP_ADDRESS.match(address))


def plan_queries(
    canary: Canary,
    provider: str,
    templates: Mapping[str, MetricTemplate],
    default_address: str,
) -> list[MetricQuery | QueryPlanError]:
    """Every query of the canary's analysis, in Flagger's order.

    First pass: builtin metrics and inline ``query`` metrics against ``spec.metricsServer`` (or
    ``default_address``), unauthenticated. Second pass: ``templateRef`` metrics against their
    template's provider. A metric with both ``query`` and ``templateRef`` appears in both passes.
    A metric that is neither gets Flagger's "no usable metrics template and query" error.
    ``templates`` is keyed ``<namespace>/<name>`` (:attr:`MetricTemplate.key`); ``provider`` is
    the canary's effective router provider (``spec.provider`` or the global default).
    """
    address = canary.spec.metrics_server or default_address
    observer = observer_for(provider)
    plan: list[MetricQuery | QueryPlanError] = []
    for metric in canary.spec.analysis.metrics:
        if metric.name in BUILTIN_METRICS:
            plan.append(_builtin(canary, metric, provider, observer, address))
        elif metric.query:
            plan.append(_inline(canary, metric, address))
    for metric in canary.spec.analysis.metrics:
        if metric.template_ref is not None:
            plan.append(_from_template(canary, metric, templates))
        elif metric.name not in BUILTIN_METRICS and not metric.query:
            plan.append(
                QueryPlanError(
                    metric,
                    "Metric query failed for no usable metrics template and query were configured",
                    details=(
                        f'canary {canary.key}: metric "{metric.name}" needs a templateRef or a '
                        f"query (or the name request-success-rate or request-duration)",
                    ),
                )
            )
    return plan


def _render_for(canary: Canary, metric: CanaryMetric, template: str, template_name: str) -> str:
    spec = canary.spec
    return render_query(
        template,
        name=canary.name,
        namespace=canary.namespace,
        target=canary.target_name,
        service=canary.service_name,
        interval=metric_interval(metric),
        variables=metric.template_variables,
        template_name=template_name,
        ingress=spec.ingress_ref.name if spec.ingress_ref else None,
        route=spec.route_ref.name if spec.route_ref else None,
    )


def _address_error(
    metric: CanaryMetric, address: str, source: QuerySource, where: str
) -> QueryPlanError:
    return QueryPlanError(
        metric,
        f"Prometheus query failed for {metric.name}: prometheus address {address} is not a valid "
        f"URL ({where})",
        source=source,
    )


def _builtin(
    canary: Canary, metric: CanaryMetric, provider: str, observer: str | None, address: str
) -> MetricQuery | QueryPlanError:
    if observer is None:
        return QueryPlanError(
            metric,
            f"Prometheus query failed: no builtin {metric.name} query for provider {provider} "
            f"(canary {canary.key}; supported: contour, gatewayapi:v1, gatewayapi:v1beta1)",
            source=QuerySource.BUILTIN,
        )
    if not is_valid_address(address):
        return _address_error(metric, address, QuerySource.BUILTIN, "spec.metricsServer")
    if metric.name == SUCCESS_RATE:
        kind = UnitKind.PERCENT
    else:
        kind = UnitKind.DURATION_MS if observer == "contour" else UnitKind.DURATION_S
    query = _render_for(canary, metric, BUILTIN_QUERIES[observer][metric.name], metric.name)
    return MetricQuery(
        metric=metric,
        query=query,
        address=address,
        source=QuerySource.BUILTIN,
        kind=kind,
        provider=provider,
    )


def _inline(canary: Canary, metric: CanaryMetric, address: str) -> MetricQuery | QueryPlanError:
    if not is_valid_address(address):
        return _address_error(metric, address, QuerySource.INLINE, "spec.metricsServer")
    try:
        query = _render_for(canary, metric, metric.query or "", f"inline query of {metric.name}")
    except QueryTemplateError as err:
        return QueryPlanError(
            metric, f"Prometheus query failed for {metric.name}: {err.reason}", QuerySource.INLINE
        )
    return MetricQuery(metric=metric, query=query, address=address, source=QuerySource.INLINE)


def _from_template(
    canary: Canary, metric: CanaryMetric, templates: Mapping[str, MetricTemplate]
) -> MetricQuery | QueryPlanError:
    assert metric.template_ref is not None
    ref_namespace = metric.template_ref.namespace or canary.namespace
    dotted = f"{metric.template_ref.name}.{ref_namespace}"
    template = templates.get(f"{ref_namespace}/{metric.template_ref.name}")
    if template is None:
        return QueryPlanError(
            metric,
            f"Metric template {dotted} error: MetricTemplate {ref_namespace}/"
            f"{metric.template_ref.name} not found (metric {metric.name} of canary {canary.key})",
        )
    provider = template.spec.provider
    if provider.type != "prometheus":
        return QueryPlanError(
            metric,
            f"Metric template {dotted} provider {provider.type} error: only the prometheus "
            "provider is supported",
        )
    address = provider.address or ""
    if not is_valid_address(address):
        return QueryPlanError(
            metric,
            f"Metric template {dotted} provider {provider.type} error: prometheus address "
            f"{address} is not a valid URL (spec.provider.address must be http:// or https://)",
        )
    try:
        query = _render_for(canary, metric, template.spec.query, dotted)
    except QueryTemplateError as err:
        return QueryPlanError(metric, str(err))
    return MetricQuery(
        metric=metric,
        query=query,
        address=address,
        source=QuerySource.TEMPLATE,
        kind=UnitKind.PLAIN,
        headers=tuple(sorted(provider.headers.items())),
        secret=(
            SecretLocation(ref_namespace, provider.secret_ref.name) if provider.secret_ref else None
        ),
        insecure_skip_verify=provider.insecure_skip_verify,
        template=dotted,
    )
