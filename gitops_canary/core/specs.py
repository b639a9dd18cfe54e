"""Flagger's ``flagger.app/v1beta1`` objects as typed models: Canary, MetricTemplate, AlertProvider.

This module owns the *shape* of the input and Flagger's defaults (``flagger-behaviour.md`` §1.3).
Field names follow the CRD (camelCase on the wire, snake_case in Python). Rules that go beyond
the shape (the analysis ``oneOf``, cookie names, providers we support, D8 rejections) live in
:mod:`gitops_canary.core.validation`, so that every problem in a file can be reported at once.

Pure: no I/O. Models are frozen, so a spec read at the start of a tick cannot change under it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_VERSION = "flagger.app/v1beta1"

#: Providers gitops-canary can route for. Flagger knows more; those are refused at validation.
SUPPORTED_PROVIDERS = ("gatewayapi:v1", "gatewayapi:v1beta1", "contour")
#: Every provider in the Flagger CRD enum, so that an unsupported one gets "not supported",
#: not "unknown".
FLAGGER_PROVIDERS = (
    "apisix", "appmesh", "appmesh:v1beta2", "contour", "gatewayapi:v1", "gatewayapi:v1beta1",
    "gloo", "istio", "knative", "kubernetes", "kuma", "linkerd", "nginx", "osm", "skipper",
    "smi:v1alpha1", "smi:v1alpha2", "smi:v1alpha3", "traefik",
)  # fmt: skip

#: The CRD's pattern for durations: a prefix match, so ``1m30s`` passes and ``1h`` does not.
CRD_DURATION = re.compile(r"^[0-9]+(m|s)")

DEFAULT_INTERVAL_SECONDS = 60
MIN_INTERVAL_SECONDS = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10
DEFAULT_COOKIE_MAX_AGE = 86400


class Strategy(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue-green"
    AB_TESTING = "ab-testing"


class HookType(StrEnum):
    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    ROLLBACK = "rollback"
    POST_ROLLOUT = "post-rollout"
    EVENT = "event"


class _Model(BaseModel):
    """Base: camelCase aliases, unknown fields refused (a typo must not pass silently), frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class _Open(_Model):
    """For Flagger fields that only other routers use: accepted, kept, ignored."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- metadata


class ObjectMeta(_Model):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- references


class TargetRef(_Model):
    api_version: str
    kind: Literal["DaemonSet", "Deployment", "Service"]
    name: str


class ScalerReplicas(_Model):
    min_replicas: int | None = None
    max_replicas: int | None = None


class AutoscalerRef(_Model):
    api_version: str
    kind: Literal["HorizontalPodAutoscaler", "ScaledObject"]
    name: str
    primary_scaler_queries: dict[str, str] = Field(default_factory=dict)
    primary_scaler_replicas: ScalerReplicas | None = None


class OtherRef(_Open):
    """``ingressRef``, ``routeRef``, ``upstreamRef``: other routers only."""

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


# --------------------------------------------------------------------------- service


class StringMatch(_Model):
    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: str | None = None

    def kinds(self) -> list[str]:
        return [k for k in ("exact", "prefix", "suffix", "regex") if getattr(self, k) is not None]


class HTTPMatchRequest(_Model):
    """Istio's ``HTTPMatchRequest`` as Flagger embeds it (``service.match``, ``analysis.match``)."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool | None = None
    port: int | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    source_namespace: str | None = None
    gateways: list[str] = Field(default_factory=list)


class ParentRef(_Model):
    """A Gateway API ``ParentReference``; the CRD defaults ``group`` and ``kind``."""

    group: str = "gateway.networking.k8s.io"
    kind: str = "Gateway"
    name: str
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None


class MirrorBackendRef(_Model):
    group: str = ""
    kind: str = "Service"
    name: str
    namespace: str | None = None
    port: int | None = None


class MirrorFilter(_Model):
    backend_ref: MirrorBackendRef
    percent: int | None = None
    fraction: dict[str, int] | None = None


class HeaderOps(_Model):
    add: dict[str, str] = Field(default_factory=dict)
    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(_Model):
    request: HeaderOps | None = None
    response: HeaderOps | None = None


class Rewrite(_Model):
    uri: str | None = None
    authority: str | None = None
    type: str | None = None


class Retries(_Model):
    attempts: int | None = None
    per_try_timeout: str | None = None
    retry_on: str | None = None


class CorsPolicy(_Model):
    allow_origin: list[str] = Field(default_factory=list)
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: str | None = None
    allow_credentials: bool | None = None


class CustomMetadata(_Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class UnmanagedMetadata(_Model):
    labels: list[str] = Field(default_factory=list)
    annotations: list[str] = Field(default_factory=list)


class CanaryService(_Model):
    name: str | None = None
    port: int
    port_name: str | None = None
    target_port: int | str | None = None
    port_discovery: bool = False
    app_protocol: str | None = None
    traffic_distribution: Literal["PreferClose", "PreferSameZone", "PreferSameNode"] | None = None
    headless: bool = False
    hosts: list[str] = Field(default_factory=list)
    gateway_refs: list[ParentRef] = Field(default_factory=list)
    timeout: str | None = None
    backend_timeout: str | None = None
    retries: Retries | None = None
    headers: Headers | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    rewrite: Rewrite | None = None
    mirror: list[MirrorFilter] = Field(default_factory=list)
    cors_policy: CorsPolicy | None = None
    apex: CustomMetadata | None = None
    primary: CustomMetadata | None = None
    canary: CustomMetadata | None = None
    unmanaged_metadata: UnmanagedMetadata | None = None
    # Istio / App Mesh only: accepted so Flagger specs load, never used here.
    traffic_policy: dict[str, Any] | None = None
    gateways: list[str] = Field(default_factory=list)
    delegation: bool | None = None
    mesh_name: str | None = None
    backends: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- analysis


class ThresholdRange(_Model):
    min: float | None = None
    max: float | None = None


class TemplateRef(_Model):
    name: str
    namespace: str | None = None


class CanaryMetric(_Model):
    name: str
    interval: str | None = None
    threshold: float | None = None
    threshold_range: ThresholdRange | None = None
    query: str | None = None
    template_ref: TemplateRef | None = None
    template_variables: dict[str, str] = Field(default_factory=dict)


class ProviderRef(_Model):
    name: str
    namespace: str | None = None


class CanaryAlert(_Model):
    name: str
    severity: Literal["", "info", "warn", "error"] = ""
    provider_ref: ProviderRef


class CanaryWebhook(_Model):
    name: str
    type: Literal[
        "",
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "post-rollout",
        "event",
        "rollback",
        "confirm-traffic-increase",
    ] = ""
    url: str
    timeout: str | None = None
    retries: int = 0
    disable_tls: bool = Field(default=False, alias="disableTLS")
    mute_alert: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def hook_type(self) -> HookType:
        """Flagger treats an empty type as ``rollout``."""
        return HookType(self.type or "rollout")


class SessionAffinity(_Model):
    cookie_name: str
    primary_cookie_name: str | None = None
    domain: str | None = None
    http_only: bool = False
    max_age: int = DEFAULT_COOKIE_MAX_AGE
    partitioned: bool = False
    path: str | None = None
    same_site: Literal["Strict", "Lax", "None"] | None = None
    secure: bool = False


class HeaderMatch(_Model):
    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: str | None = None

    def kinds(self) -> list[str]:
        return [k for k in ("exact", "prefix", "suffix", "regex") if getattr(self, k) is not None]


class AnalysisMatch(_Model):
    headers: dict[str, HeaderMatch] = Field(default_factory=dict)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    source_labels: dict[str, str] = Field(default_factory=dict)


class CanaryAnalysis(_Model):
    interval: str | None = None
    threshold: int | None = None
    iterations: int | None = None
    max_weight: int | None = None
    step_weight: int | None = None
    step_weights: list[int] | None = None
    step_weight_promotion: int | None = None
    mirror: bool = False
    mirror_weight: int | None = None
    primary_ready_threshold: int | None = None
    canary_ready_threshold: int | None = None
    match: list[AnalysisMatch] = Field(default_factory=list)
    metrics: list[CanaryMetric] = Field(default_factory=list)
    alerts: list[CanaryAlert] = Field(default_factory=list)
    webhooks: list[CanaryWebhook] = Field(default_factory=list)
    session_affinity: SessionAffinity | None = None

    # -- Flagger's getters (canary.go), so callers never re-implement a default.

    def interval_seconds(self) -> int:
        """``60s`` when empty or unparsable; clamped to Flagger's 10 s minimum."""
        seconds = parse_duration(self.interval) if self.interval else None
        if seconds is None:
            return DEFAULT_INTERVAL_SECONDS
        return max(MIN_INTERVAL_SECONDS, int(seconds))

    def threshold_value(self) -> int:
        return self.threshold if self.threshold and self.threshold > 0 else 1

    def effective_max_weight(self) -> int:
        if self.step_weights:
            return min(100, self.step_weights[-1])
        if self.max_weight and self.max_weight > 0:
            return self.max_weight
        return 100

    def iterations_value(self) -> int:
        return self.iterations or 0

    def primary_ready_percent(self) -> int:
        return 100 if self.primary_ready_threshold is None else self.primary_ready_threshold

    def canary_ready_percent(self) -> int:
        return 100 if self.canary_ready_threshold is None else self.canary_ready_threshold

    def hooks(self, hook_type: HookType) -> list[CanaryWebhook]:
        return [w for w in self.webhooks if w.hook_type is hook_type]


class CanarySpec(_Model):
    provider: str | None = None
    metrics_server: str | None = None
    target_ref: TargetRef
    autoscaler_ref: AutoscalerRef | None = None
    ingress_ref: OtherRef | None = None
    route_ref: OtherRef | None = None
    upstream_ref: OtherRef | None = None
    service: CanaryService
    analysis: CanaryAnalysis
    progress_deadline_seconds: int | None = None
    skip_analysis: bool = False
    revert_on_deletion: bool = False
    suspend: bool = False

    def progress_deadline(self) -> int:
        if self.progress_deadline_seconds is None:
            return DEFAULT_PROGRESS_DEADLINE_SECONDS
        return self.progress_deadline_seconds


class Canary(_Model):
    model_config = ConfigDict(extra="ignore")  # ``status`` from ``kubectl get -o yaml`` is fine
    api_version: Literal["flagger.app/v1beta1"]
    kind: Literal["Canary"]
    metadata: ObjectMeta
    spec: CanarySpec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def key(self) -> str:
        """``<namespace>/<name>``, how people and trailers name a canary."""
        return f"{self.namespace}/{self.name}"

    @property
    def dotted(self) -> str:
        """``<name>.<namespace>``, how Flagger's messages name a canary."""
        return f"{self.name}.{self.namespace}"

    @property
    def target_name(self) -> str:
        return self.spec.target_ref.name

    @property
    def service_name(self) -> str:
        """Apex Service and route name: ``service.name`` or the target's name."""
        return self.spec.service.name or self.spec.target_ref.name

    def strategy(self) -> Strategy:
        analysis = self.spec.analysis
        if analysis.match and analysis.iterations_value() > 0:
            return Strategy.AB_TESTING
        if analysis.iterations_value() > 0:
            return Strategy.BLUE_GREEN
        return Strategy.CANARY

    def skips_analysis(self) -> bool:
        return self.spec.skip_analysis


# --------------------------------------------------------------------------- MetricTemplate


class SecretRef(_Model):
    name: str


class MetricTemplateProvider(_Model):
    type: Literal[
        "prometheus",
        "influxdb",
        "datadog",
        "externalmetrics",
        "stackdriver",
        "cloudwatch",
        "newrelic",
        "graphite",
        "dynatrace",
        "keptn",
        "splunk",
    ]
    address: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    secret_ref: SecretRef | None = None
    region: str | None = None
    insecure_skip_verify: bool = False


class MetricTemplateSpec(_Model):
    provider: MetricTemplateProvider
    query: str


class MetricTemplate(_Model):
    model_config = ConfigDict(extra="ignore")
    api_version: Literal["flagger.app/v1beta1"]
    kind: Literal["MetricTemplate"]
    metadata: ObjectMeta
    spec: MetricTemplateSpec

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"


# --------------------------------------------------------------------------- AlertProvider


class AlertProviderSpec(_Model):
    type: Literal["slack", "msteams", "discord", "rocket", "gchat"] | None = None
    channel: str | None = None
    username: str | None = None
    address: str | None = None
    proxy: str | None = None
    secret_ref: SecretRef | None = None


class AlertProvider(_Model):
    model_config = ConfigDict(extra="ignore")
    api_version: Literal["flagger.app/v1beta1"]
    kind: Literal["AlertProvider"]
    metadata: ObjectMeta
    spec: AlertProviderSpec

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"


# --------------------------------------------------------------------------- durations

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Parse a Go duration (``1m30s``, ``500ms``, ``2h``) into seconds; ``None`` if invalid."""
    text = text.strip()
    if not text:
        return None
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        return None
    return total
