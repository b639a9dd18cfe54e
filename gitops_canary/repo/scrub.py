"""Keeping credentials out of text: error messages, log records and commit messages.

Owns the process-wide registry of secrets (tokens read by :mod:`.credentials`), :func:`scrub`, which
removes them and any ``user:password@`` from URLs, and :class:`ScrubbingFilter`, a logging filter
that applies the same to every record passing through a handler. Git and HTTP libraries echo
URLs with credentials in their errors (kubernetes/git-sync #851, argo-cd #445), so every error
this adapter raises goes through :func:`scrub` too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "***"

#: Shorter values would scrub ordinary words; no real token is this short.
_MIN_SECRET_LENGTH = 4

# http(s) userinfo is always a credential (GitHub even takes a bare token as the user name);
# for other schemes only a "user:password@" pair is, "git@host" is just the ssh user.
_HTTP_USERINFO = re.compile(r"(?i)\b(https?://)[^/@\s\"']+@")
_PASSWORD_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/:@\s\"']+:)[^/@\s\"']+@")

_lock = threading.Lock()
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so :func:`scrub` and :class:`ScrubbingFilter` remove it everywhere."""
    if value is None:
        return
    value = value.strip()
    if len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        _registered.add(value)


def registered_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_registered)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL credentials, the given ``secrets`` and every registered secret."""
    text = _PASSWORD_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _HTTP_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    candidates = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
    candidates |= registered_secrets()
    # Longest first, so a secret that contains another is removed whole.
    for secret in sorted(candidates, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class ScrubbingFilter(logging.Filter):
    """Rewrites each record's message, exception and stack text through :func:`scrub`.

    Attach it to handlers (a logger's own filters do not see records propagated from children).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_scrubbing(*handlers: logging.Handler) -> ScrubbingFilter:
    """Attach one :class:`ScrubbingFilter` to ``handlers``, or to all of the root logger's."""
    scrubber = ScrubbingFilter()
    for handler in handlers or tuple(logging.getLogger().handlers):
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(scrubber)
    return scrubber
