"""Alerts: Flagger events with an alert severity, delivered to a canary's AlertProviders.

This adapter owns ``analysis.alerts`` (``flagger-behaviour.md`` §1.3): which alert receives an
event (``info`` receives everything, ``warn`` receives warn and error, ``error`` only error),
where the provider's ``address`` comes from (the AlertProvider, or the ``address`` key of its
``secretRef`` Secret, which wins), and the message format of each provider type: ``slack``,
``rocket`` (Slack-compatible), ``msteams`` (MessageCard), ``discord`` (embeds), ``gchat`` and, for
an AlertProvider without ``type``, a generic JSON document.

Each notification says which canary, its phase and weight, the failing metric and its value when
there is one, the message, and a link to the commit when a commit URL template such as
``https://github.com/org/repo/commit/{sha}`` is configured.

Deviation (D8): an alert with an empty ``severity`` means ``info`` as the CRD documents; Flagger
silently sends it nothing.

A failed delivery is logged with the provider's address reduced to scheme and host (webhook
URLs are credentials) and reported in the returned :class:`Delivery`; it never raises.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from gitops_canary.core.decisions import Event, Severity
from gitops_canary.core.observations import MetricResult
from gitops_canary.core.specs import AlertProvider, Canary, CanaryAlert
from gitops_canary.core.status import Phase
from gitops_canary.core.verdicts import go_float

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_USERNAME = "gitops-canary"

#: ``(namespace, name) -> Secret data`` with values already decoded. Raises on failure.
SecretReader = Callable[[str, str], Mapping[str, str]]

_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.ERROR: 2}
_COLORS = {Severity.INFO: "#2eb886", Severity.WARN: "#daa038", Severity.ERROR: "#a30200"}
_SLACK_COLORS = {Severity.INFO: "good", Severity.WARN: "warning", Severity.ERROR: "danger"}
_HTTP_URL = re.compile(r"^(https?)://([^/\s?#@]*@)?([^/\s?#]+)", re.IGNORECASE)


def receives(alert: CanaryAlert, severity: Severity) -> bool:
    """Severity routing; an empty alert severity means ``info`` (D8)."""
    wanted = Severity(alert.severity) if alert.severity else Severity.INFO
    return _RANK[severity] >= _RANK[wanted]


def redact_address(address: str) -> str:
    """``https://hooks.slack.com/…``: scheme and host only, the path may hold a token."""
    match = _HTTP_URL.match(address)
    if not match:
        return "<invalid address>"
    return f"{match.group(1)}://{match.group(3)}/…"


@dataclass(frozen=True)
class Notice:
    """Everything a notification shows, independent of the provider's format."""

    canary: str  # <name>.<namespace>
    severity: Severity
    message: str
    phase: str
    weight: int
    metric: MetricResult | None = None
    commit_sha: str | None = None
    commit_url: str | None = None

    def facts(self) -> list[tuple[str, str]]:
        rows = [("Canary", self.canary), ("Phase", self.phase), ("Weight", f"{self.weight}%")]
        if self.metric is not None:
            value = "no value" if self.metric.value is None else go_float(self.metric.value)
            rows.append(
                ("Metric", f"{self.metric.name} = {value} (threshold {self.metric.threshold})")
            )
        if self.commit_sha:
            rows.append(("Commit", self.commit_url or self.commit_sha))
        return rows


@dataclass(frozen=True)
class Delivery:
    """One notification attempt: which alert, through which provider, and how it went."""

    alert: str
    provider: str
    ok: bool
    error: str = ""


class Notifier:
    """Sends alerts for a canary's events. ``providers`` is keyed ``<namespace>/<name>``."""

    def __init__(
        self,
        providers: Mapping[str, AlertProvider],
        *,
        secret_reader: SecretReader | None = None,
        commit_url_template: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._providers = providers
        self._secret_reader = secret_reader
        self._commit_url_template = commit_url_template
        self._timeout = timeout

    def notify(
        self,
        canary: Canary,
        event: Event,
        *,
        phase: Phase | str,
        weight: int,
        failing_metric: MetricResult | None = None,
        commit_sha: str | None = None,
    ) -> list[Delivery]:
        """Deliver ``event`` to every alert of the canary that receives its severity."""
        if event.alert is None:
            return []
        notice = Notice(
            canary=canary.dotted,
            severity=event.alert,
            message=event.alert_message or event.message,
            phase=str(phase),
            weight=weight,
            metric=failing_metric,
            commit_sha=commit_sha,
            commit_url=self._commit_url(commit_sha),
        )
        deliveries = []
        for alert in canary.spec.analysis.alerts:
            if receives(alert, event.alert):
                deliveries.append(self._deliver(canary, alert, notice))
        return deliveries

    def _commit_url(self, sha: str | None) -> str | None:
        if not sha or not self._commit_url_template:
            return None
        # Plain replacement: str.format on a configured template could reach attributes.
        return self._commit_url_template.replace("{sha}", sha)

    def _deliver(self, canary: Canary, alert: CanaryAlert, notice: Notice) -> Delivery:
        ref = alert.provider_ref
        key = f"{ref.namespace or canary.namespace}/{ref.name}"
        provider = self._providers.get(key)
        if provider is None:
            return self._failed(
                alert, key, f"AlertProvider {key} not found (alert {alert.name} of {canary.key})"
            )
        try:
            address, proxy = self._address(provider)
        except (KeyError, ValueError, OSError) as err:
            return self._failed(alert, key, str(err))
        shown = redact_address(address)
        if not _HTTP_URL.match(address):
            return self._failed(alert, key, f"AlertProvider {key} address is not an http(s) URL")
        body = render(provider, notice)
        try:
            response = requests.post(
                address,
                json=body,
                timeout=self._timeout,
                proxies={"http": proxy, "https": proxy} if proxy else None,
            )
        except requests.exceptions.Timeout:
            return self._failed(alert, key, f"{shown} did not answer within {self._timeout:g}s")
        except requests.exceptions.RequestException as err:
            return self._failed(alert, key, f"cannot reach {shown}: {_reason(err)}")
        except Exception as err:  # a notification must never stop a rollout
            return self._failed(alert, key, f"sending to {shown} failed: {type(err).__name__}")
        if response.status_code >= 300:
            excerpt = " ".join(response.text.split())
            # Webhook addresses carry their secret in the path; a receiver may echo it back.
            for secret in _address_secrets(address):
                excerpt = excerpt.replace(secret, "***")
            excerpt = excerpt[:120]
            return self._failed(
                alert, key, f"{shown} answered HTTP {response.status_code}: {excerpt}"
            )
        return Delivery(alert.name, key, True)

    def _address(self, provider: AlertProvider) -> tuple[str, str | None]:
        address = provider.spec.address or ""
        proxy = provider.spec.proxy
        secret_ref = provider.spec.secret_ref
        if secret_ref is not None:
            namespace = provider.metadata.namespace or "default"
            if self._secret_reader is None:
                raise ValueError(
                    f"AlertProvider {provider.key} has secretRef {secret_ref.name} but no way "
                    "to read Secrets was configured"
                )
            try:
                data = self._secret_reader(namespace, secret_ref.name)
            except Exception as err:
                raise ValueError(
                    f"AlertProvider {provider.key}: cannot read Secret {namespace}/"
                    f"{secret_ref.name}: {type(err).__name__}"
                ) from None
            address = data.get("address") or address
            proxy = data.get("proxy") or proxy
        if not address:
            raise ValueError(
                f"AlertProvider {provider.key} has no address (set spec.address or an "
                '"address" key in its secretRef Secret)'
            )
        return address, proxy

    @staticmethod
    def _failed(alert: CanaryAlert, provider: str, error: str) -> Delivery:
        log.warning("alert %s via AlertProvider %s failed: %s", alert.name, provider, error)
        return Delivery(alert.name, provider, False, error)


# --------------------------------------------------------------------------- formats


def _address_secrets(address: str) -> list[str]:
    """The parts of a webhook address that may be secret: its path, its query, and its path's
    segments (Slack, Discord and Teams put the token there)."""
    match = re.match(r"^\w+://[^/]+(/[^?#]*)?(\?[^#]*)?", address)
    if match is None:
        return []
    path, query = match.group(1) or "", match.group(2) or ""
    parts = [path, query.lstrip("?"), *path.split("/")]
    return sorted({p for p in parts if len(p) >= 8}, key=len, reverse=True)


def render(provider: AlertProvider, notice: Notice) -> dict[str, Any]:
    """The JSON body for the provider's type (``None``: the generic document)."""
    kind = provider.spec.type
    username = provider.spec.username or DEFAULT_USERNAME
    if kind in ("slack", "rocket"):
        return _slack(notice, username, provider.spec.channel)
    if kind == "msteams":
        return _msteams(notice)
    if kind == "discord":
        return _discord(notice, username)
    if kind == "gchat":
        return _gchat(notice)
    return generic(notice)


def _title(notice: Notice) -> str:
    return f"{notice.canary}: {notice.message}"


def _slack(notice: Notice, username: str, channel: str | None) -> dict[str, Any]:
    fields = [
        {"title": name, "value": _slack_link(notice, name, value), "short": name != "Metric"}
        for name, value in notice.facts()
        if name != "Canary"
    ]
    body: dict[str, Any] = {
        "username": username,
        "text": _title(notice),
        "attachments": [
            {
                "color": _SLACK_COLORS[notice.severity],
                "author_name": notice.canary,
                "text": notice.message,
                "mrkdwn_in": ["text"],
                "fields": fields,
            }
        ],
    }
    if channel:
        body["channel"] = channel
    return body


def _slack_link(notice: Notice, name: str, value: str) -> str:
    if name == "Commit" and notice.commit_url and notice.commit_sha:
        return f"<{notice.commit_url}|{notice.commit_sha[:12]}>"
    return value


def _msteams(notice: Notice) -> dict[str, Any]:
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": _COLORS[notice.severity].lstrip("#"),
        "summary": _title(notice),
        "sections": [
            {
                "activityTitle": notice.canary,
                "activitySubtitle": notice.message,
                "facts": [{"name": name, "value": value} for name, value in notice.facts()],
            }
        ],
    }
    if notice.commit_url:
        card["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "View commit",
                "targets": [{"os": "default", "uri": notice.commit_url}],
            }
        ]
    return card


def _discord(notice: Notice, username: str) -> dict[str, Any]:
    embed: dict[str, Any] = {
        "title": notice.canary,
        "description": notice.message,
        "color": int(_COLORS[notice.severity].lstrip("#"), 16),
        "fields": [
            {"name": name, "value": value, "inline": name != "Metric"}
            for name, value in notice.facts()
            if name != "Canary"
        ],
    }
    if notice.commit_url:
        embed["url"] = notice.commit_url
    return {"username": username, "embeds": [embed]}


def _gchat(notice: Notice) -> dict[str, Any]:
    lines = [f"*{notice.canary}* {notice.message}"]
    lines += [
        f"{name}: {_slack_link(notice, name, value)}"
        for name, value in notice.facts()
        if name != "Canary"
    ]
    return {"text": "\n".join(lines)}


def generic(notice: Notice) -> dict[str, Any]:
    """A provider-neutral document for any receiver that takes JSON."""
    name, _, namespace = notice.canary.partition(".")
    metric = notice.metric
    return {
        "canary": notice.canary,
        "name": name,
        "namespace": namespace,
        "severity": str(notice.severity),
        "message": notice.message,
        "phase": notice.phase,
        "weight": notice.weight,
        "metric": (
            None
            if metric is None
            else {
                "name": metric.name,
                "value": _json_number(metric.value),
                "threshold": metric.threshold,
                "ok": metric.ok,
                "message": metric.message,
            }
        ),
        "commit": (
            None if not notice.commit_sha else {"sha": notice.commit_sha, "url": notice.commit_url}
        ),
    }


def _json_number(value: float | None) -> float | str | None:
    # JSON has no infinities; "+Inf" reads like Prometheus.
    if value is None or math.isfinite(value):
        return value
    return go_float(value)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _reason(err: Exception) -> str:
    # requests' exception text contains the full URL (and so the token): keep only the cause.
    match = _ERRNO.search(str(err))
    return match.group(1).strip() if match else type(err).__name__
