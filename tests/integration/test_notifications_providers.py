"""Alerts delivered to recording servers: routing by severity, formats, secrets, failures."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gitops_canary.core.decisions import Event, EventType, Severity
from gitops_canary.core.observations import MetricResult
from gitops_canary.core.specs import AlertProvider, Canary
from gitops_canary.core.status import Phase
from gitops_canary.observe.notifications import Notifier

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SHA = "0123456789abcdef0123456789abcdef01234567"
COMMITS = "https://git.example.com/org/repo/commit/{sha}"
FAILING = MetricResult(
    name="error-rate",
    ok=False,
    value=10.0,
    threshold="max 1",
    message="Halt podinfo.test advancement error-rate 10.00 > 1",
)


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.bodies: list[tuple[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def provider(name: str, kind: str | None, **spec: Any) -> AlertProvider:
    return AlertProvider.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "AlertProvider",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {**({"type": kind} if kind else {}), **spec},
        }
    )


def canary(*alerts: dict[str, Any]) -> Canary:
    return Canary.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"alerts": list(alerts)},
            },
        }
    )


def alert(name: str, severity: str, provider_name: str) -> dict[str, Any]:
    return {"name": name, "severity": severity, "providerRef": {"name": provider_name}}


WARNING = Event(
    EventType.WARNING,
    "Halt podinfo.test advancement error-rate 10.00 > 1",
    alert=Severity.WARN,
    alert_message="Canary is waiting for approval.",
)


@pytest.mark.parametrize(
    ("event_severity", "receivers"),
    [
        (Severity.INFO, ["all", "empty"]),
        (Severity.WARN, ["all", "empty", "warn"]),
        (Severity.ERROR, ["all", "empty", "warn", "error"]),
    ],
)
def test_severity_routing_and_empty_means_info(
    receiver: Receiver, event_severity: Severity, receivers: list[str]
) -> None:
    providers = {
        f"test/{n}": provider(n, None, address=f"{receiver.url}/{n}")
        for n in ("all", "empty", "warn", "error")
    }
    subject = canary(
        alert("a", "info", "all"),
        alert("b", "", "empty"),
        alert("c", "warn", "warn"),
        alert("d", "error", "error"),
    )
    event = Event(EventType.WARNING, "something", alert=event_severity)
    deliveries = Notifier(providers).notify(subject, event, phase=Phase.PROGRESSING, weight=10)
    assert all(d.ok for d in deliveries)
    assert sorted(path.lstrip("/") for path, _ in receiver.bodies) == sorted(receivers)


def test_no_alert_no_notification(receiver: Receiver) -> None:
    providers = {"test/all": provider("all", "slack", address=receiver.url)}
    event = Event(EventType.NORMAL, "Advance podinfo.test canary weight 20")
    assert Notifier(providers).notify(canary(alert("a", "info", "all")), event,
                                      phase="Progressing", weight=20) == []  # fmt: skip
    assert receiver.bodies == []


def test_formats_carry_canary_phase_weight_metric_and_commit(receiver: Receiver) -> None:
    kinds: list[str | None] = ["slack", "rocket", "msteams", "discord", "gchat", None]
    providers = {
        f"test/{k or 'generic'}": provider(k or "generic", k, address=f"{receiver.url}/{k}",
                                           channel="#deploys")
        for k in kinds
    }  # fmt: skip
    subject = canary(*(alert(k or "generic", "info", k or "generic") for k in kinds))
    notifier = Notifier(providers, commit_url_template=COMMITS)
    deliveries = notifier.notify(
        subject, WARNING, phase=Phase.PROGRESSING, weight=30, failing_metric=FAILING, commit_sha=SHA
    )
    assert [d.ok for d in deliveries] == [True] * 6
    bodies = dict(receiver.bodies)
    commit_url = f"https://git.example.com/org/repo/commit/{SHA}"
    for path, body in bodies.items():
        text = json.dumps(body)
        assert "podinfo.test" in text, path
        assert "Canary is waiting for approval." in text, path
        assert "30%" in text or '"weight": 30' in text, path
        assert "error-rate" in text, path
        assert commit_url in text, path
    slack = bodies["/slack"]
    assert slack["channel"] == "#deploys"
    assert slack["attachments"][0]["color"] == "warning"
    assert {"title": "Commit", "value": f"<{commit_url}|{SHA[:12]}>", "short": True} in slack[
        "attachments"
    ][0]["fields"]
    assert bodies["/msteams"]["@type"] == "MessageCard"
    assert bodies["/discord"]["embeds"][0]["url"] == commit_url
    generic = bodies["/None"]
    assert generic["metric"] == {
        "name": "error-rate",
        "value": 10.0,
        "threshold": "max 1",
        "ok": False,
        "message": "Halt podinfo.test advancement error-rate 10.00 > 1",
    }
    assert generic["phase"] == "Progressing"
    assert generic["commit"] == {"sha": SHA, "url": commit_url}


def test_address_from_secret_wins(receiver: Receiver) -> None:
    seen: list[tuple[str, str]] = []

    def read(namespace: str, name: str) -> Mapping[str, str]:
        seen.append((namespace, name))
        return {"address": f"{receiver.url}/from-secret"}

    providers = {
        "test/slack": provider("slack", "slack", address="http://127.0.0.1:1/spec",
                               secretRef={"name": "slack-url"}),
    }  # fmt: skip
    (delivery,) = Notifier(providers, secret_reader=read).notify(
        canary(alert("a", "info", "slack")), WARNING, phase="Progressing", weight=0
    )
    assert delivery.ok
    assert seen == [("test", "slack-url")]
    assert receiver.bodies[0][0] == "/from-secret"


def test_failures_are_logged_without_the_token_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token_path = "/services/T000/B000/XXXXSECRETXXXX"
    rejecting = Receiver(status=404)
    try:
        providers = {
            "test/down": provider("down", "slack", address=f"http://127.0.0.1:1{token_path}"),
            "test/rejects": provider("rejects", "discord", address=f"{rejecting.url}{token_path}"),
            "test/nosecret": provider("nosecret", "msteams", secretRef={"name": "missing"}),
        }
        subject = canary(
            alert("a", "info", "down"),
            alert("b", "info", "rejects"),
            alert("c", "info", "nosecret"),
            alert("d", "info", "absent"),
        )

        def read(namespace: str, name: str) -> Mapping[str, str]:
            raise FileNotFoundError(f"{namespace}/{name}")

        deliveries = Notifier(providers, secret_reader=read).notify(
            subject, WARNING, phase="Progressing", weight=10
        )
    finally:
        rejecting.server.shutdown()
        rejecting.server.server_close()
    assert [d.ok for d in deliveries] == [False] * 4
    errors = [d.error for d in deliveries]
    assert errors[0] == "cannot reach http://127.0.0.1:1/…: Connection refused"
    assert errors[1].startswith(f"{rejecting.url}/… answered HTTP 404")
    assert "cannot read Secret test/missing" in errors[2]
    assert errors[3].startswith("AlertProvider test/absent not found")
    # urllib3's own DEBUG log shows request paths: the composition root keeps it at WARNING.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("gitops_canary")]
    assert len(ours) == 4
    assert all("failed" in line and "SECRET" not in line for line in ours)
    assert "SECRET" not in " ".join(errors)
