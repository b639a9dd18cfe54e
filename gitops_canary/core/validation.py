"""Validation of Flagger objects read from the repository: shape, Flagger's rules, and ours.

This module owns turning a plain manifest dict into the models of :mod:`gitops_canary.core.specs`
and reporting *every* problem of a document at once, as :class:`Issue` objects that name the
file, the object, the field (camelCase, as written in YAML) and what is allowed instead.

Three layers of rules, in this order:

1. the shape (pydantic, strict: ``"10"`` is not an integer, as for the Kubernetes API server);
2. Flagger's own checks: the CRD (``flagger-behaviour.md`` §1.1) and the controller's runtime
   validation (§1.2);
3. gitops-canary's: supported providers and targets, names that are safe in file paths, and
   the D8 rejections of specs on which Flagger misbehaves (mirroring with weights, Contour A/B
   with several headers, Gateway API prefix/suffix header matches).

When the shape is broken, the rules still run on the parts that did parse (``analysis``,
``service``...), so one run shows a typo and an out-of-range weight together.

Pure: no I/O.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gitops_canary.core.specs import (
    CRD_DURATION,
    FLAGGER_PROVIDERS,
    MIN_INTERVAL_SECONDS,
    SUPPORTED_PROVIDERS,
    AlertProvider,
    AnalysisMatch,
    AutoscalerRef,
    Canary,
    CanaryAnalysis,
    CanaryMetric,
    CanaryService,
    HeaderMatch,
    HTTPMatchRequest,
    MetricTemplate,
    ObjectMeta,
    StringMatch,
    TargetRef,
    parse_duration,
)

Severity = Literal["error", "warning"]
Parsed = Canary | MetricTemplate | AlertProvider

GATEWAY_API_PROVIDERS = ("gatewayapi:v1", "gatewayapi:v1beta1")
CONTOUR = "contour"
BUILTIN_METRICS = ("request-success-rate", "request-duration")
SUPPORTED_METRIC_PROVIDERS = ("prometheus",)
#: Flagger names the primary and canary Services ``<name>-primary`` / ``<name>-canary``.
LONGEST_SERVICE_SUFFIX = "-primary"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Issue:
    """One problem in one field of one object."""

    file: str
    object: str  # e.g. "Canary test/podinfo"; empty when the file itself is the problem
    path: str  # e.g. "spec.analysis.stepWeight"; empty for the whole object or file
    message: str  # what is wrong and what is allowed
    severity: Severity = "error"

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.object, self.path) if part)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} (warning)" if self.severity == "warning" else text

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


# --------------------------------------------------------------------------- entry points


def parse_document(
    data: Mapping[str, Any], file: str, *, default_provider: str | None = None
) -> tuple[Parsed | None, list[Issue]]:
    """Parse a Flagger object of any supported kind; other kinds give ``(None, [])``."""
    api_version = data.get("apiVersion")
    if not (isinstance(api_version, str) and api_version.startswith("flagger.app/")):
        return None, []
    kind = data.get("kind")
    if kind == "Canary":
        return parse_canary(data, file, default_provider=default_provider)
    if kind == "MetricTemplate":
        return parse_metric_template(data, file)
    if kind == "AlertProvider":
        return parse_alert_provider(data, file)
    return None, []


def parse_canary(
    data: Mapping[str, Any], file: str, *, default_provider: str | None = None
) -> tuple[Canary | None, list[Issue]]:
    """Validate a Canary; the model is returned only when there is no error."""
    report = _Report(file, _object_label("Canary", data))
    canary = _validate_model(Canary, data, report)
    spec = data.get("spec")
    raw_spec: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
    parts = (
        _CanaryParts.of(canary)
        if canary is not None
        else _CanaryParts.salvage(data.get("metadata"), raw_spec)
    )
    provider = parts.provider if parts.provider is not None else default_provider
    if parts.metadata is not None:
        _check_object_names(parts.metadata, report)
    _check_provider(parts.provider, default_provider, report)
    if parts.target_ref is not None:
        _check_target_ref(parts.target_ref, report)
    if parts.autoscaler_ref is not None:
        _check_autoscaler_ref(parts.autoscaler_ref, report)
    if parts.service is not None:
        _check_service(parts.service, parts.target_ref, provider, report)
    if parts.analysis is not None:
        raw_analysis = raw_spec.get("analysis")
        _check_strategy_fields(raw_analysis if isinstance(raw_analysis, Mapping) else {}, report)
        _check_analysis(parts.analysis, provider, report)
    _check_spec_scalars(raw_spec, report)
    return (canary if not report.has_errors else None), report.issues


def parse_metric_template(
    data: Mapping[str, Any], file: str
) -> tuple[MetricTemplate | None, list[Issue]]:
    report = _Report(file, _object_label("MetricTemplate", data))
    template = _validate_model(MetricTemplate, data, report)
    metadata = template.metadata if template else _salvage(ObjectMeta, data.get("metadata"))
    if metadata is not None:
        _check_object_names(metadata, report)
    if template is not None:
        provider = template.spec.provider
        if provider.type not in SUPPORTED_METRIC_PROVIDERS:
            report.error(
                "spec.provider.type",
                f"metric provider {provider.type!r} is not supported by gitops-canary "
                f"(supported: {', '.join(SUPPORTED_METRIC_PROVIDERS)})",
            )
        if provider.address is not None:
            _check_http_url(provider.address, "spec.provider.address", report)
        if not template.spec.query.strip():
            report.error("spec.query", "the query is empty; write the PromQL to run")
    return (template if not report.has_errors else None), report.issues


def parse_alert_provider(
    data: Mapping[str, Any], file: str
) -> tuple[AlertProvider | None, list[Issue]]:
    report = _Report(file, _object_label("AlertProvider", data))
    provider = _validate_model(AlertProvider, data, report)
    metadata = provider.metadata if provider else _salvage(ObjectMeta, data.get("metadata"))
    if metadata is not None:
        _check_object_names(metadata, report)
    if provider is not None:
        for name in ("address", "proxy"):
            value = getattr(provider.spec, name)
            if value:
                _check_http_url(value, f"spec.{name}", report)
        if provider.spec.secret_ref is not None:
            _check_name(provider.spec.secret_ref.name, "spec.secretRef.name", report)
    return (provider if not report.has_errors else None), report.issues


def effective_provider(canary: Canary, default_provider: str | None) -> str | None:
    """``spec.provider`` wins over the process-wide default (Flagger's ``-mesh-provider``)."""
    return canary.spec.provider or default_provider


# --------------------------------------------------------------------------- collecting issues


@dataclass
class _Report:
    file: str
    object: str
    issues: list[Issue] = field(default_factory=list)

    def add(self, path: str, message: str, severity: Severity) -> None:
        issue = Issue(self.file, self.object, path, message, severity)
        if issue not in self.issues:
            self.issues.append(issue)

    def error(self, path: str, message: str) -> None:
        self.add(path, message, "error")

    def warning(self, path: str, message: str) -> None:
        self.add(path, message, "warning")

    @property
    def has_errors(self) -> bool:
        return any(issue.is_error for issue in self.issues)


def _object_label(kind: str, data: Mapping[str, Any]) -> str:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        return f"{kind} (no name)"
    return f"{kind} {namespace if isinstance(namespace, str) and namespace else 'default'}/{name}"


# --------------------------------------------------------------------------- shape (pydantic)

ModelT = TypeVar("ModelT", bound=BaseModel)


def _validate_model(model: type[ModelT], data: Mapping[str, Any], report: _Report) -> ModelT | None:
    try:
        # Strict, by alias only: what the Kubernetes API server would accept, and snake_case
        # spellings of fields are unknown fields, as they would be for Flagger.
        return model.model_validate(dict(data), strict=True, by_alias=True, by_name=False)
    except ValidationError as error:
        _translate_errors(model, error, report)
        return None


def _salvage(model: type[ModelT], raw: object) -> ModelT | None:
    """A part of a broken document with its broken fields left out, so the rules can still
    look at the rest. Its errors are already reported; paths of what is kept do not move."""
    if not isinstance(raw, Mapping):
        return None
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    for _ in range(_SALVAGE_ROUNDS):
        try:
            return model.model_validate(data, strict=True, by_alias=True, by_name=False)
        except ValidationError as error:
            targets = [_salvage_target(model, detail) for detail in error.errors()]
            if not all(targets):
                return None
            for target in targets:
                _delete(data, target)
    return None


_SALVAGE_ROUNDS = 4


def _salvage_target(model: type[BaseModel], detail: Mapping[str, Any]) -> list[int | str]:
    """The key to drop for one error: the field itself, the mapping missing a required field,
    or, inside a list, the whole list (dropping one item would renumber the others)."""
    parts, _ = _walk(model, detail["loc"])
    if detail["type"] == "missing":
        parts = parts[:-1]
    for position, part in enumerate(parts):
        if isinstance(part, int):
            return parts[:position]
    return parts


def _delete(data: dict[str, Any], path: Sequence[int | str]) -> None:
    node: Any = data
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _translate_errors(model: type[BaseModel], error: ValidationError, report: _Report) -> None:
    by_path: dict[str, list[dict[str, Any]]] = {}
    for error_detail in error.errors(include_url=False):
        detail: dict[str, Any] = dict(error_detail)
        parts, _ = _walk(model, error_detail["loc"])
        by_path.setdefault(_format_path(parts), []).append(detail)
    for path, details in by_path.items():
        type_errors = [d for d in details if d["type"] in _EXPECTED]
        if len(type_errors) > 1:
            # A union (``targetPort: int | string``) fails once per member: say it once.
            wanted = " or ".join(dict.fromkeys(_EXPECTED[d["type"]] for d in type_errors))
            report.error(path, f"expected {wanted}, got {_describe(type_errors[0]['input'])}")
        for detail in details:
            if len(type_errors) <= 1 or detail not in type_errors:
                report.error(path, _message_for(model, detail))


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message_for(model: type[BaseModel], detail: Mapping[str, Any]) -> str:
    kind = detail["type"]
    got = _describe(detail.get("input"))
    if kind == "missing":
        return "required field is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        return f"{got} is not allowed; expected {expected}"
    if kind == "extra_forbidden":
        loc = tuple(detail["loc"])
        _, parent = _walk(model, loc[:-1])
        return _unknown_field_message(str(loc[-1]), _strip_optional(parent))
    return str(detail.get("msg", "is not valid"))


def _unknown_field_message(name: str, parent: Any) -> str:
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return "unknown field"
    allowed = [info.alias or key for key, info in parent.model_fields.items()]
    message = f"unknown field; allowed fields here: {', '.join(allowed)}"
    suggestion = _closest(name, allowed)
    return f"{message}; did you mean {suggestion!r}?" if suggestion else message


def _closest(name: str, allowed: Sequence[str]) -> str | None:
    def folded(text: str) -> str:
        return text.replace("_", "").replace("-", "").lower()

    for candidate in allowed:  # step_weight, stepweight, Step-Weight
        if folded(candidate) == folded(name):
            return candidate
    matches = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(members) == 1:
            return members[0]
    return annotation


def _walk(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[list[int | str], Any]:
    """Follow an error location through the models: the path as the user wrote it (union
    member tags such as ``int`` dropped) and the type found at its end."""
    annotation: Any = model
    parts: list[int | str] = []
    for part in loc:
        annotation = _strip_optional(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            parts.append(part)
            field_info = _field_by_alias(annotation, str(part))
            annotation = field_info.annotation if field_info is not None else None
        elif origin in (list, tuple) and isinstance(part, int):
            parts.append(part)
            annotation = get_args(annotation)[0] if get_args(annotation) else None
        elif origin is dict:
            parts.append(part)
            annotation = get_args(annotation)[1] if get_args(annotation) else None
        elif origin in (Union, UnionType):
            continue  # the member tag of a union, not a field the user wrote
        else:
            parts.append(part)
            annotation = None
    return parts, annotation


def _field_by_alias(model: type[BaseModel], name: str) -> Any:
    for key, info in model.model_fields.items():
        if (info.alias or key) == name:
            return info
    return None


def _format_path(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += "(key)"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


# --------------------------------------------------------------------------- canary parts


@dataclass(frozen=True)
class _CanaryParts:
    """The pieces of a Canary the rules look at, each ``None`` when it did not parse."""

    metadata: ObjectMeta | None
    provider: str | None
    target_ref: TargetRef | None
    autoscaler_ref: AutoscalerRef | None
    service: CanaryService | None
    analysis: CanaryAnalysis | None

    @classmethod
    def of(cls, canary: Canary) -> _CanaryParts:
        spec = canary.spec
        return cls(
            canary.metadata,
            spec.provider,
            spec.target_ref,
            spec.autoscaler_ref,
            spec.service,
            spec.analysis,
        )

    @classmethod
    def salvage(cls, metadata: object, spec: Mapping[str, Any]) -> _CanaryParts:
        provider = spec.get("provider")
        return cls(
            _salvage(ObjectMeta, metadata),
            provider if isinstance(provider, str) else None,
            _salvage(TargetRef, spec.get("targetRef")),
            _salvage(AutoscalerRef, spec.get("autoscalerRef")),
            _salvage(CanaryService, spec.get("service")),
            _salvage(CanaryAnalysis, spec.get("analysis")),
        )


# --------------------------------------------------------------------------- rules: names


def _check_object_names(metadata: ObjectMeta, report: _Report) -> None:
    _check_name(metadata.name, "metadata.name", report)
    if metadata.namespace is not None:
        _check_namespace(metadata.namespace, "metadata.namespace", report)


def _check_name(name: str, path: str, report: _Report) -> None:
    """Object names end up in file and directory names: only DNS-1123 subdomains, which
    cannot contain ``/`` or be ``.``/``..``."""
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        report.error(
            path,
            f"{_describe(name)} is not a valid Kubernetes name: use lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit (at most 253 characters)",
        )


def _check_namespace(namespace: str, path: str, report: _Report) -> None:
    if len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        report.error(
            path,
            f"{_describe(namespace)} is not a valid namespace: use lowercase letters, digits and "
            "'-', starting and ending with a letter or digit (at most 63 characters)",
        )


def _check_service_name(name: str, path: str, report: _Report) -> None:
    longest = f"{name}{LONGEST_SERVICE_SUFFIX}"
    if not _DNS1035_LABEL.match(name):
        report.error(
            path,
            f"{_describe(name)} cannot be a Service name: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit",
        )
    elif len(longest) > 63:
        report.error(
            path,
            f"{_describe(name)} is too long for a Service name: the generated Service "
            f"{longest!r} would be {len(longest)} characters, the limit is 63",
        )


# --------------------------------------------------------------------------- rules: provider


def _check_provider(spec_provider: str | None, default: str | None, report: _Report) -> None:
    supported = ", ".join(SUPPORTED_PROVIDERS)
    provider = spec_provider if spec_provider is not None else default
    if provider is None:
        report.error(
            "spec.provider",
            f"no provider: set spec.provider or pass --provider (supported: {supported})",
        )
        return
    # A bad --provider is the command line's problem, reported there; here only spec.provider.
    if spec_provider is None or spec_provider in SUPPORTED_PROVIDERS:
        return
    if spec_provider in FLAGGER_PROVIDERS:
        report.error(
            "spec.provider",
            f"provider {spec_provider!r} is not supported by gitops-canary "
            f"(supported: {supported})",
        )
    else:
        report.error(
            "spec.provider",
            f"{_describe(spec_provider)} is not a Flagger provider (supported here: {supported})",
        )


def _is_gateway_api(provider: str | None) -> bool:
    return provider in GATEWAY_API_PROVIDERS


# --------------------------------------------------------------------------- rules: refs


def _check_target_ref(target: TargetRef, report: _Report) -> None:
    if target.kind != "Deployment":
        report.error(
            "spec.targetRef.kind",
            f"{target.kind} targets are not supported by gitops-canary (only Deployment)",
        )
    elif target.api_version != "apps/v1":
        report.error(
            "spec.targetRef.apiVersion",
            f"{_describe(target.api_version)} is not the Deployment API version; use apps/v1",
        )
    _check_name(target.name, "spec.targetRef.name", report)


def _check_autoscaler_ref(autoscaler: AutoscalerRef, report: _Report) -> None:
    if autoscaler.kind != "HorizontalPodAutoscaler":
        report.error(
            "spec.autoscalerRef.kind",
            f"{autoscaler.kind} is not supported by gitops-canary (only HorizontalPodAutoscaler)",
        )
    _check_name(autoscaler.name, "spec.autoscalerRef.name", report)
    replicas = autoscaler.primary_scaler_replicas
    if replicas is not None:
        low, high = replicas.min_replicas, replicas.max_replicas
        if low is not None and low < 1:
            report.error(
                "spec.autoscalerRef.primaryScalerReplicas.minReplicas", f"{low} must be at least 1"
            )
        if low is not None and high is not None and low > high:
            report.error(
                "spec.autoscalerRef.primaryScalerReplicas",
                f"minReplicas {low} is greater than maxReplicas {high}",
            )


# --------------------------------------------------------------------------- rules: service


def _check_service(
    service: CanaryService, target: TargetRef | None, provider: str | None, report: _Report
) -> None:
    _check_port(service.port, "spec.service.port", report)
    if isinstance(service.target_port, int):
        _check_port(service.target_port, "spec.service.targetPort", report)
    elif isinstance(service.target_port, str) and not (
        len(service.target_port) <= 15 and _IANA_SVC_NAME.match(service.target_port)
    ):
        report.error(
            "spec.service.targetPort",
            f"{_describe(service.target_port)} is not a port number or a container port name "
            "(lowercase letters, digits and '-', at most 15 characters)",
        )
    if service.name is not None:
        _check_service_name(service.name, "spec.service.name", report)
    elif target is not None:
        _check_service_name(target.name, "spec.targetRef.name", report)
    for name in ("timeout", "backend_timeout"):
        value = getattr(service, name)
        if value is not None and not parse_duration(value):
            report.error(
                f"spec.service.{_camel(name)}",
                f"{_describe(value)} is not a duration; write it like 15s, 1m or 1m30s",
            )
    for index, ref in enumerate(service.gateway_refs):
        if ref.port is not None:
            _check_port(ref.port, f"spec.service.gatewayRefs[{index}].port", report)
    if len(service.gateway_refs) > 32:
        report.error("spec.service.gatewayRefs", "at most 32 gatewayRefs are allowed")
    if _is_gateway_api(provider):
        _check_service_for_gateway_api(service, provider, report)
    elif provider == CONTOUR:
        _check_service_for_contour(service, report)


def _check_port(port: int, path: str, report: _Report) -> None:
    if not 1 <= port <= 65535:
        report.error(path, f"{port} is not a port number between 1 and 65535")


def _check_service_for_gateway_api(
    service: CanaryService, provider: str | None, report: _Report
) -> None:
    if not service.gateway_refs:
        report.error(
            "spec.service.gatewayRefs",
            f"required with provider {provider}: the HTTPRoute must name the Gateway it "
            "attaches to (Flagger fails every run with 'GatewayRefs must be specified')",
        )
    if service.retries is not None:
        report.warning("spec.service.retries", "ignored with Gateway API (Contour only)")
    for index, match in enumerate(service.match):
        _check_gateway_api_service_match(match, f"spec.service.match[{index}]", report)


def _check_gateway_api_service_match(match: HTTPMatchRequest, path: str, report: _Report) -> None:
    if match.uri is not None and not (match.uri.exact or match.uri.prefix or match.uri.regex):
        report.error(f"{path}.uri", "Gateway API matches a path by exact, prefix or regex")
    if match.method is not None and match.method.exact is None:
        report.error(f"{path}.method", "Gateway API matches a method only by exact")
    for name, header in match.headers.items():
        _check_gateway_api_string_match(header, f"{path}.headers.{name}", report)
    for name, param in match.query_params.items():
        _check_gateway_api_string_match(param, f"{path}.queryParams.{name}", report)


def _check_service_for_contour(service: CanaryService, report: _Report) -> None:
    ignored = {
        "hosts": "the generated HTTPProxy has no virtualhost; include it from your root HTTPProxy",
        "gateway_refs": "Gateway API only",
        "backend_timeout": "Gateway API only",
        "headers": "Gateway API only",
        "rewrite": "Gateway API only",
        "cors_policy": "Gateway API only",
        "mirror": "Gateway API only",
    }
    for name, reason in ignored.items():
        if getattr(service, name):
            report.warning(f"spec.service.{_camel(name)}", f"ignored with Contour ({reason})")


# --------------------------------------------------------------------------- rules: analysis


def _check_analysis(analysis: CanaryAnalysis, provider: str | None, report: _Report) -> None:
    _check_weights(analysis, report)
    _check_counts(analysis, report)
    if analysis.interval is not None:
        _check_duration(analysis.interval, "spec.analysis.interval", report)
        seconds = parse_duration(analysis.interval)
        if seconds is not None and seconds < MIN_INTERVAL_SECONDS:
            report.warning(
                "spec.analysis.interval",
                f"{analysis.interval} is shorter than Flagger's minimum; "
                f"{MIN_INTERVAL_SECONDS}s is used",
            )
    for index, metric in enumerate(analysis.metrics):
        _check_metric(metric, f"spec.analysis.metrics[{index}]", report)
    _check_webhooks(analysis, report)
    _check_alerts(analysis, report)
    _check_session_affinity(analysis, provider, report)
    _check_mirror(analysis, provider, report)
    _check_matches(analysis, provider, report)


def _check_strategy_fields(analysis: Mapping[str, Any], report: _Report) -> None:
    """The CRD's ``oneOf``: ``interval`` and ``threshold`` with exactly one of ``iterations``,
    ``stepWeight`` or ``stepWeights``. Read from the manifest as written, so that a field
    with a bad value counts as present (its own error says what is wrong with it)."""
    if analysis.get("interval") is None:
        report.error("spec.analysis.interval", "required field is missing (for example 1m)")
    if analysis.get("threshold") is None:
        report.error(
            "spec.analysis.threshold",
            "required field is missing (how many failed checks before rollback, for example 5)",
        )
    chosen = [
        name
        for name in ("iterations", "stepWeight", "stepWeights")
        if analysis.get(name) is not None
    ]
    if not chosen:
        report.error(
            "spec.analysis",
            "set one of iterations (blue/green or A/B testing), stepWeight or stepWeights "
            "(progressive canary)",
        )
    elif len(chosen) > 1:
        report.error(
            "spec.analysis",
            f"{' and '.join(chosen)} are {'both' if len(chosen) == 2 else 'all'} set; "
            "set exactly one of iterations, stepWeight or stepWeights",
        )


def _check_weights(analysis: CanaryAnalysis, report: _Report) -> None:
    if analysis.step_weight is not None:
        _check_weight_step(analysis.step_weight, "spec.analysis.stepWeight", report)
    if analysis.max_weight is not None:
        _check_weight_step(analysis.max_weight, "spec.analysis.maxWeight", report)
        if analysis.step_weights:
            report.warning(
                "spec.analysis.maxWeight",
                "ignored when stepWeights is set (the last step is the maximum weight)",
            )
    if analysis.step_weight_promotion is not None:
        _check_percentage(
            analysis.step_weight_promotion, "spec.analysis.stepWeightPromotion", report
        )
    if analysis.step_weights is not None:
        if not analysis.step_weights and analysis.step_weight is None:
            report.error(
                "spec.analysis.stepWeights", "is empty; list the weights, like [5, 10, 50]"
            )
        previous: int | None = None
        for index, weight in enumerate(analysis.step_weights):
            path = f"spec.analysis.stepWeights[{index}]"
            _check_weight_step(weight, path, report)
            if previous is not None and weight <= previous:
                report.error(
                    path,
                    f"{weight} comes after {previous}; steps must increase, like [5, 10, 50]",
                )
            previous = weight


def _check_weight_step(weight: int, path: str, report: _Report) -> None:
    if weight == 0:
        report.error(path, "0 would never move traffic to the canary; use 1 to 100")
    else:
        _check_percentage(weight, path, report)


def _check_percentage(value: int, path: str, report: _Report) -> bool:
    if 0 <= value <= 100:
        return True
    hint = " (a weight above 100 would overshoot)" if value > 100 else ""
    report.error(path, f"{value} is not between 0 and 100{hint}")
    return False


def _check_counts(analysis: CanaryAnalysis, report: _Report) -> None:
    if analysis.threshold is not None and analysis.threshold < 1:
        report.error(
            "spec.analysis.threshold",
            f"{analysis.threshold} must be at least 1 (failed checks allowed before rollback)",
        )
    if analysis.iterations is not None and analysis.iterations < 1:
        report.error("spec.analysis.iterations", f"{analysis.iterations} must be at least 1")
    for name in ("primary_ready_threshold", "canary_ready_threshold"):
        value = getattr(analysis, name)
        if value is not None:
            _check_percentage(value, f"spec.analysis.{_camel(name)}", report)


def _check_spec_scalars(spec: Mapping[str, Any], report: _Report) -> None:
    """Top-level spec fields that need no model (they are checked even if the shape is broken)."""
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline <= 0:
        report.error("spec.progressDeadlineSeconds", f"{deadline} must be greater than 0")
    server = spec.get("metricsServer")
    if isinstance(server, str):
        _check_http_url(server, "spec.metricsServer", report)


def _check_duration(value: str, path: str, report: _Report) -> None:
    if not CRD_DURATION.match(value):
        report.error(
            path,
            f"{_describe(value)} is not allowed: Flagger accepts durations in seconds or minutes, "
            "like 30s, 1m or 1m30s",
        )
    elif parse_duration(value) is None:
        report.error(path, f"{_describe(value)} is not a valid duration, like 30s, 1m or 1m30s")


def _check_metric(metric: CanaryMetric, path: str, report: _Report) -> None:
    if metric.interval is not None:
        _check_duration(metric.interval, f"{path}.interval", report)
    if metric.template_ref is not None:
        _check_name(metric.template_ref.name, f"{path}.templateRef.name", report)
        if metric.template_ref.namespace is not None:
            _check_namespace(metric.template_ref.namespace, f"{path}.templateRef.namespace", report)
        if metric.query:
            report.warning(f"{path}.query", "ignored because templateRef is set")
    elif not metric.query and metric.name not in BUILTIN_METRICS:
        report.error(
            path,
            f"metric {metric.name!r} has no templateRef or query and is not a builtin metric "
            f"({', '.join(BUILTIN_METRICS)})",
        )
    bounds = metric.threshold_range
    low = bounds.min if bounds is not None else None
    high = bounds.max if bounds is not None else None
    if low is not None and high is not None and low > high:
        report.error(
            f"{path}.thresholdRange",
            f"min {low:g} is greater than max {high:g}; no value can pass",
        )
    if metric.threshold is None and low is None and high is None:
        report.warning(path, "has no thresholdRange, so the check always passes")


def _check_webhooks(analysis: CanaryAnalysis, report: _Report) -> None:
    for index, hook in enumerate(analysis.webhooks):
        path = f"spec.analysis.webhooks[{index}]"
        _check_http_url(hook.url, f"{path}.url", report)
        if hook.timeout is not None:
            _check_duration(hook.timeout, f"{path}.timeout", report)
        if hook.retries < 0:
            report.error(f"{path}.retries", f"{hook.retries} must be 0 or more")


def _check_alerts(analysis: CanaryAnalysis, report: _Report) -> None:
    for index, alert in enumerate(analysis.alerts):
        path = f"spec.analysis.alerts[{index}]"
        _check_name(alert.provider_ref.name, f"{path}.providerRef.name", report)
        if alert.provider_ref.namespace is not None:
            _check_namespace(alert.provider_ref.namespace, f"{path}.providerRef.namespace", report)
        if alert.severity == "":
            # Flagger's event routing never matches an empty severity (flagger-behaviour §1.3).
            report.warning(
                f"{path}.severity", "not set, so this alert never fires; use info, warn or error"
            )


def _check_http_url(url: str, path: str, report: _Report) -> None:
    if not _HTTP_URL.match(url):
        report.error(path, f"{_describe(url)} is not an http:// or https:// URL")


def _check_session_affinity(
    analysis: CanaryAnalysis, provider: str | None, report: _Report
) -> None:
    affinity = analysis.session_affinity
    if affinity is None:
        return
    if affinity.primary_cookie_name is not None and (
        affinity.primary_cookie_name == affinity.cookie_name
    ):
        report.error(
            "spec.analysis.sessionAffinity.primaryCookieName",
            f"is the same as cookieName ({affinity.cookie_name!r}); the two cookies must differ",
        )
    if affinity.max_age <= 0:
        report.error("spec.analysis.sessionAffinity.maxAge", f"{affinity.max_age} must be above 0")
    if provider == CONTOUR:
        report.warning("spec.analysis.sessionAffinity", "ignored with Contour (Gateway API only)")


def _check_mirror(analysis: CanaryAnalysis, provider: str | None, report: _Report) -> None:
    """D8: Flagger loops at weight 0 forever with these (flagger-behaviour §3.10)."""
    if not analysis.mirror:
        return
    if provider == CONTOUR:
        report.error(
            "spec.analysis.mirror",
            "Contour cannot mirror traffic; remove mirror (Flagger would never leave weight 0)",
        )
    elif analysis.iterations is None and (analysis.step_weight or analysis.step_weights):
        report.error(
            "spec.analysis.mirror",
            "mirroring with weighted canary never progresses on Gateway API/Contour; "
            "use iterations (blue/green) with mirror, or remove mirror",
        )


def _check_matches(analysis: CanaryAnalysis, provider: str | None, report: _Report) -> None:
    for index, match in enumerate(analysis.match):
        path = f"spec.analysis.match[{index}]"
        for name, header in match.headers.items():
            kinds = header.kinds()
            if len(kinds) != 1:
                found = f" (found {', '.join(kinds)})" if kinds else ""
                report.error(
                    f"{path}.headers.{name}",
                    f"set exactly one of exact, prefix, suffix or regex{found}",
                )
            elif _is_gateway_api(provider):
                _check_gateway_api_string_match(header, f"{path}.headers.{name}", report)
        for name, param in match.query_params.items():
            if _is_gateway_api(provider):
                _check_gateway_api_string_match(param, f"{path}.queryParams.{name}", report)
    if provider == CONTOUR and analysis.match:
        _check_contour_matches(analysis.match, report)


def _check_gateway_api_string_match(
    match: HeaderMatch | StringMatch, path: str, report: _Report
) -> None:
    if match.prefix is not None:
        pattern = f"^{re.escape(match.prefix)}.*"
        kind = "prefix"
    elif match.suffix is not None:
        pattern = f".*{re.escape(match.suffix)}$"
        kind = "suffix"
    else:
        return
    report.error(
        f"{path}.{kind}",
        f"Gateway API matches only by exact or regex, not {kind}; use regex: '{pattern}'",
    )


def _check_contour_matches(matches: Sequence[AnalysisMatch], report: _Report) -> None:
    """D8: Flagger's HTTPProxy for these is invalid or matches something else (§4.5.1)."""
    header_count = sum(len(match.headers) for match in matches)
    if header_count > 1:
        report.error(
            "spec.analysis.match",
            f"{header_count} headers across the match entries: Contour ANDs the conditions of "
            "a route and Flagger's HTTPProxy for several headers is invalid; use exactly one "
            "header match with Contour",
        )
    for index, match in enumerate(matches):
        path = f"spec.analysis.match[{index}]"
        if not match.headers:
            report.error(path, "Contour A/B testing routes by one header; this entry has none")
        if match.query_params:
            report.warning(f"{path}.queryParams", "ignored with Contour (headers only)")
        for name, header in match.headers.items():
            if header.regex is not None:
                report.error(
                    f"{path}.headers.{name}.regex",
                    "Contour header conditions cannot match a regex; use exact, prefix or suffix",
                )
            for kind in ("prefix", "suffix"):
                if getattr(header, kind) is not None:
                    report.warning(
                        f"{path}.headers.{name}.{kind}",
                        "Contour has no prefix/suffix header match; like Flagger, the header "
                        "is matched when it contains the value",
                    )


# --------------------------------------------------------------------------- helpers


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)
