"""Commit messages that explain themselves (DESIGN D7), and reading their trailers back.

A commit message is::

    Advance podinfo.test canary weight 20          <- the main event, in Flagger's words

    error-rate: 0.00 (max 1) ok                    <- one line per check of this step
    latency: 0.231 (max 0.5) ok
    Confirm-traffic-increase check gate passed     <- the other events of this step

    Canary: test/podinfo                           <- trailers, for ``git log`` queries
    Canary-Phase: Progressing
    Canary-Weight: 20
    Canary-Revision: 5f0c3a1e9b2d4c6a
    Canary-Failed-Checks: 0

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gitops_canary.core.decisions import Event
from gitops_canary.core.specs import Canary
from gitops_canary.core.status import CanaryStatus, CheckRecord

#: Git's advice for a subject line; longer main events are cut and given in full in the body.
SUBJECT_LIMIT = 72
#: A webhook's error body can be a page of HTML; the body keeps the start of it.
DETAIL_LIMIT = 200

_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.*)$")


def _one_line(text: str, limit: int | None = None) -> str:
    line = " ".join(text.split())
    if limit is not None and len(line) > limit:
        return line[: limit - 3] + "..."
    return line


def format_value(value: float) -> str:
    """``0.00``, ``69.17``, ``0.231``: two decimals, or three significant digits below 1."""
    if value == 0 or abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def check_line(record: CheckRecord) -> str:
    """``error-rate: 0.00 (max 1) ok`` for a metric, ``pre-rollout smoke-test: ok`` for a hook."""
    verdict = "ok" if record.ok else "FAILED"
    if record.kind == "metric":
        value = "no value" if record.value is None else format_value(record.value)
        bound = f" ({record.threshold})" if record.threshold else ""
        line = f"{record.name}: {value}{bound} {verdict}"
        if not record.ok and record.value is None and record.message:
            line += f": {_one_line(record.message, DETAIL_LIMIT)}"
        return line
    label = f"{record.hook_type} {record.name}" if record.hook_type else record.name
    line = f"{label}: {verdict}"
    if not record.ok and record.message:
        line += f": {_one_line(record.message, DETAIL_LIMIT)}"
    return line


def trailers(canary: Canary, status: CanaryStatus) -> list[str]:
    phase = status.phase.value if status.phase is not None else ""
    return [
        f"Canary: {canary.key}",
        f"Canary-Phase: {phase}",
        f"Canary-Weight: {status.canary_weight}",
        f"Canary-Revision: {status.last_applied_spec}",
        f"Canary-Failed-Checks: {status.failed_checks}",
    ]


def commit_message(
    canary: Canary,
    status: CanaryStatus,
    events: Iterable[Event],
    checks: Sequence[CheckRecord],
) -> str:
    """The whole message for a step: subject (``status.message``), body, trailers."""
    main = _one_line(status.message) or f"Update canary {canary.dotted}"
    subject = _one_line(main, SUBJECT_LIMIT)
    body: list[str] = []
    if subject != main:
        body.append(main)
    body.extend(check_line(record) for record in checks)
    for event in events:
        text = _one_line(event.message)
        if text and text != main:
            body.append(text)
    parts = [subject]
    if body:
        parts.append("\n".join(body))
    parts.append("\n".join(trailers(canary, status)))
    return "\n\n".join(parts) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The ``Key: value`` trailers of a commit message's last paragraph (empty if none)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line.strip())
        if match is None:
            return {}
        found[match.group(1)] = match.group(2).strip()
    return found
