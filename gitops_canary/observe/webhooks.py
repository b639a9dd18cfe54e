"""Canary webhooks: calling one hook type's group, and posting events to event webhooks.

This adapter owns ``flagger-behaviour.md`` §6.1-§6.3: the JSON payload (``name``, ``namespace``,
``phase``, ``checksum`` and ``metadata`` when there is any), the ``phase`` each hook type sends,
success meaning HTTP 200, 201 or 202 only, the per-attempt ``timeout`` (a Go duration, 10 s by
default), ``retries`` with exponential backoff (1 s, doubling, at most 30 s) on connection
errors, timeouts, 429 and 5xx except 501, ``disableTLS``, and the group rules (stop at the first
failure; for ``rollback`` the first success wins). Each :class:`HookResult` carries the event
text Flagger would record for it (``Pre-rollout check smoke-test passed``, ``Halt podinfo.test
advancement external check load-test failed ...``).

Only ``http`` and ``https`` URLs are called. Failures never raise: they are failed results (for
groups) or log lines (for events). URLs are logged without credentials or query strings.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import requests

from gitops_canary.core.decisions import Event
from gitops_canary.core.observations import HookGroup, HookResult
from gitops_canary.core.specs import (
    DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
    Canary,
    CanaryWebhook,
    HookType,
    parse_duration,
)
from gitops_canary.core.status import Phase

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
_EXCERPT_CHARS = 300
_HTTP_URL = re.compile(r"^https?://[^/\s?#]+", re.IGNORECASE)

#: Hook types whose payload carries ``Progressing`` whatever the canary's phase (§6.1).
_PROGRESSING_TYPES = frozenset(
    {
        HookType.PRE_ROLLOUT,
        HookType.ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.CONFIRM_PROMOTION,
    }
)


def payload_phase(hook_type: HookType, status_phase: Phase) -> Phase:
    """The ``phase`` a hook type sends: ``Progressing``, or the phase the caller passes in."""
    return Phase.PROGRESSING if hook_type in _PROGRESSING_TYPES else status_phase


def payload(
    canary: Canary, phase: Phase, checksum: str, metadata: Mapping[str, str]
) -> dict[str, object]:
    body: dict[str, object] = {
        "name": canary.name,
        "namespace": canary.namespace,
        "phase": str(phase),
        "checksum": checksum,
    }
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def pass_message(hook_type: HookType, hook: str) -> str:
    """Flagger's event for a passing hook; ``rollout`` and ``event`` hooks have none."""
    texts = {
        HookType.PRE_ROLLOUT: f"Pre-rollout check {hook} passed",
        HookType.CONFIRM_ROLLOUT: f"Confirm-rollout check {hook} passed",
        HookType.CONFIRM_PROMOTION: f"Confirm-promotion check {hook} passed",
        HookType.CONFIRM_TRAFFIC_INCREASE: f"Confirm-traffic-increase check {hook} passed",
        HookType.POST_ROLLOUT: f"Post-rollout check {hook} passed",
        HookType.ROLLBACK: f"Rollback check {hook} passed",
    }
    return texts.get(hook_type, "")


def fail_message(canary: Canary, hook_type: HookType, hook: str, error: str) -> str:
    """Flagger's event for a failing hook (for ``rollback``: "not signaling a rollback")."""
    halt = f"Halt {canary.dotted} advancement"
    texts = {
        HookType.CONFIRM_ROLLOUT: f"{halt} waiting for approval {hook}",
        HookType.PRE_ROLLOUT: f"{halt} pre-rollout check {hook} failed {error}",
        HookType.ROLLOUT: f"{halt} external check {hook} failed {error}",
        HookType.CONFIRM_TRAFFIC_INCREASE: f"{halt} waiting for traffic increase approval {hook}",
        HookType.CONFIRM_PROMOTION: f"{halt} waiting for promotion approval {hook}",
        HookType.ROLLBACK: f"Rollback hook {hook} not signaling a rollback",
        HookType.POST_ROLLOUT: f"Post-rollout hook {hook} failed {error}",
    }
    return texts.get(hook_type, f"Event webhook {hook} failed {error}")


def redact_url(url: str) -> str:
    """The URL without ``user:password@``, query string or fragment, safe to log and show."""
    without_userinfo = re.sub(r"^(\w+://)[^/@]*@", r"\1", url)
    return re.split(r"[?#]", without_userinfo, maxsplit=1)[0]


@dataclass(frozen=True)
class CallResult:
    ok: bool
    error: str = ""
    attempts: int = 1


class WebhookCaller:
    """Calls webhooks with Flagger's semantics. ``backoff_base`` is injectable for fast tests."""

    def __init__(
        self,
        *,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        global_event_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._global_event_url = global_event_url or None
        self._sleep = sleep

    # -- groups

    def run_group(
        self, canary: Canary, hook_type: HookType, status_phase: Phase, checksum: str
    ) -> HookGroup:
        """Run the canary's hooks of ``hook_type`` in list order with Flagger's group rules."""
        phase = payload_phase(hook_type, status_phase)
        results: list[HookResult] = []
        for hook in canary.spec.analysis.hooks(hook_type):
            call = self.call(hook, payload(canary, phase, checksum, hook.metadata))
            message = (
                pass_message(hook_type, hook.name)
                if call.ok
                else fail_message(canary, hook_type, hook.name, call.error)
            )
            results.append(HookResult(hook.name, hook_type, call.ok, message))
            if not call.ok:
                log.info("webhook %s (%s) of %s: %s", hook.name, hook_type, canary.key, call.error)
            if hook_type is HookType.ROLLBACK and call.ok:
                break  # the first rollback hook that says "roll back" decides
            if hook_type is not HookType.ROLLBACK and not call.ok:
                break  # Flagger stops a group at its first failure
        return HookGroup(hook_type, tuple(results))

    # -- events

    def send_event(
        self,
        webhooks: Sequence[CanaryWebhook],
        canary: Canary,
        event: Event,
        phase: Phase,
        checksum: str,
        *,
        now: datetime | None = None,
    ) -> list[HookResult]:
        """Post an event to the canary's ``event`` hooks, or else to the global event webhook.

        ``phase`` is the canary's phase; ``event.phase`` overrides it when set. Failures are
        logged and returned, never raised.
        """
        when = now.timestamp() if now is not None else time.time()
        event_metadata = {
            "eventMessage": event.message,
            "eventType": str(event.type),
            "timestamp": str(int(when * 1000)),
        }
        sent_phase = event.phase or phase
        targets: list[CanaryWebhook] = [w for w in webhooks if w.hook_type is HookType.EVENT]
        if not targets and self._global_event_url:
            targets = [
                CanaryWebhook(name="event-webhook", url=self._global_event_url, type="event")
            ]
        results = []
        for hook in targets:
            # The hook's own keys ride along, but cannot override the three event keys.
            metadata = {
                **{k: v for k, v in hook.metadata.items() if k not in event_metadata},
                **event_metadata,
            }
            call = self.call(hook, payload(canary, sent_phase, checksum, metadata))
            if not call.ok:
                log.warning("event webhook %s of %s failed: %s", hook.name, canary.key, call.error)
            message = "" if call.ok else fail_message(canary, HookType.EVENT, hook.name, call.error)
            results.append(HookResult(hook.name, HookType.EVENT, call.ok, message))
        return results

    # -- one webhook

    def call(self, hook: CanaryWebhook, body: Mapping[str, object]) -> CallResult:
        """POST ``body`` to the hook with its timeout and retries. Never raises."""
        shown = redact_url(hook.url)
        if not _HTTP_URL.match(hook.url):
            return CallResult(False, f"url {shown} is not an http:// or https:// URL")
        timeout = _timeout_seconds(hook)
        if timeout is None:
            return CallResult(
                False, f'invalid timeout "{hook.timeout}" (a Go duration such as 10s or 1m30s)'
            )
        attempts = 1 + max(0, hook.retries)
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1)))
            try:
                response = requests.post(
                    hook.url, json=body, timeout=timeout, verify=not hook.disable_tls
                )
            except requests.exceptions.Timeout:
                last_error = f"no answer within {timeout:g}s"
                continue
            except requests.exceptions.RequestException as err:
                last_error = _reason(err)
                continue
            status = response.status_code
            if status in (200, 201, 202):
                return CallResult(True, attempts=attempt + 1)
            text = _excerpt(response.text) or f"HTTP {status} {response.reason}"
            if not _retryable(status):
                return CallResult(False, text, attempts=attempt + 1)
            last_error = f"HTTP {status}: {text}"
        return CallResult(
            False, f"POST {shown} giving up after {attempts} attempt(s): {last_error}", attempts
        )


def _timeout_seconds(hook: CanaryWebhook) -> float | None:
    # Flagger: a value shorter than two characters means the default.
    if not hook.timeout or len(hook.timeout) < 2:
        return float(DEFAULT_WEBHOOK_TIMEOUT_SECONDS)
    seconds = parse_duration(hook.timeout)
    if seconds is None or seconds <= 0:
        return None
    return seconds


def _retryable(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501)


def _excerpt(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _EXCERPT_CHARS else line[:_EXCERPT_CHARS] + "..."


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _reason(err: requests.exceptions.RequestException) -> str:
    match = _ERRNO.search(str(err))
    if match:
        return match.group(1).strip()
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS handshake failed (disableTLS skips verification)"
    return type(err).__name__


# --------------------------------------------------------------------------- module shortcuts


def run_group(
    canary: Canary,
    hook_type: HookType,
    status_phase: Phase,
    checksum: str,
    *,
    backoff_base: float = BACKOFF_BASE_SECONDS,
) -> HookGroup:
    """Run one hook type's group (see :meth:`WebhookCaller.run_group`)."""
    caller = WebhookCaller(backoff_base=backoff_base)
    return caller.run_group(canary, hook_type, status_phase, checksum)


def send_event(
    webhooks: Sequence[CanaryWebhook],
    canary: Canary,
    event: Event,
    phase: Phase,
    checksum: str,
    *,
    global_event_url: str | None = None,
    now: datetime | None = None,
) -> list[HookResult]:
    """Post an event (see :meth:`WebhookCaller.send_event`)."""
    caller = WebhookCaller(global_event_url=global_event_url)
    return caller.send_event(webhooks, canary, event, phase, checksum, now=now)
