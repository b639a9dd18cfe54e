"""Webhook groups and event webhooks against the load-tester stand-in and recording servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from gitops_canary.core.decisions import Event, EventType
from gitops_canary.core.specs import Canary, HookType
from gitops_canary.core.status import Phase
from gitops_canary.observe.loadtester import LoadTester
from gitops_canary.observe.webhooks import WebhookCaller, payload_phase, run_group, send_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

CHECKSUM = "rev-abc123"


def canary(*hooks: dict[str, Any]) -> Canary:
    return Canary.model_validate(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"webhooks": list(hooks)},
            },
        }
    )


@pytest.fixture
def tester() -> Iterator[LoadTester]:
    with LoadTester() as server:
        yield server


class Scripted:
    """A server answering a scripted list of statuses and recording each request."""

    def __init__(self, statuses: list[int], body: str = "", delay: float = 0.0) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                scripted.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                if delay:
                    time.sleep(delay)
                index = min(len(scripted.requests), len(scripted.statuses)) - 1
                data = body.encode()
                try:
                    self.send_response(scripted.statuses[index])
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Any]:
    servers: list[Scripted] = []

    def start(statuses: list[int], body: str = "", delay: float = 0.0) -> Scripted:
        servers.append(Scripted(statuses, body, delay))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_seed_hooks_against_the_load_tester(tester: LoadTester) -> None:
    smoke_cmd = "curl -sd 'anon' http://podinfo-canary.test:9898/token | grep token"
    subject = canary(
        {
            "name": "smoke-test",
            "type": "pre-rollout",
            "url": tester.url + "/",
            "timeout": "15s",
            "metadata": {"type": "bash", "cmd": smoke_cmd},
        },
        {"name": "load-test", "url": tester.url + "/", "timeout": "5s",
         "metadata": {"cmd": "hey -z 2m -q 10 -c 2 http://envoy.projectcontour/"}},
    )  # fmt: skip
    pre = run_group(subject, HookType.PRE_ROLLOUT, Phase.INITIALIZED, CHECKSUM)
    assert pre.ok
    assert [r.message for r in pre.results] == ["Pre-rollout check smoke-test passed"]
    rollout = run_group(subject, HookType.ROLLOUT, Phase.PROGRESSING, CHECKSUM)
    assert rollout.ok
    assert [(t.type, t.cmd, t.phase) for t in tester.tasks] == [
        ("bash", smoke_cmd, "Progressing"),
        ("cmd", "hey -z 2m -q 10 -c 2 http://envoy.projectcontour/", "Progressing"),
    ]

    tester.set_outcome(smoke_cmd, ok=False, output="curl: (7) Failed to connect")
    failed = run_group(subject, HookType.PRE_ROLLOUT, Phase.PROGRESSING, CHECKSUM)
    assert not failed.ok
    assert failed.results[0].message == (
        "Halt podinfo.test advancement pre-rollout check smoke-test failed POST "
        f"{tester.url}/ giving up after 1 attempt(s): HTTP 500: command {smoke_cmd} failed: "
        "curl: (7) Failed to connect: exit status 1"
    )


def test_group_stops_at_first_failure_and_rollback_at_first_success(tester: LoadTester) -> None:
    gate = tester.url + "/gate/check"
    subject = canary(
        {"name": "gate-a", "type": "confirm-promotion", "url": gate},
        {"name": "gate-b", "type": "confirm-promotion", "url": tester.url + "/gate/approve"},
        {"name": "rb-halt", "type": "rollback", "url": tester.url + "/gate/halt"},
        {"name": "rb-check", "type": "rollback", "url": tester.url + "/rollback/check"},
        {"name": "rb-never", "type": "rollback", "url": tester.url + "/gate/approve"},
    )
    closed = run_group(subject, HookType.CONFIRM_PROMOTION, Phase.WAITING_PROMOTION, CHECKSUM)
    assert [(r.name, r.ok) for r in closed.results] == [("gate-a", False)]
    assert closed.results[0].message == (
        "Halt podinfo.test advancement waiting for promotion approval gate-a"
    )
    requests.post(
        tester.url + "/gate/open", json={"name": "podinfo", "namespace": "test"}, timeout=5
    )
    opened = run_group(subject, HookType.CONFIRM_PROMOTION, Phase.WAITING_PROMOTION, CHECKSUM)
    assert [r.message for r in opened.results] == [
        "Confirm-promotion check gate-a passed",
        "Confirm-promotion check gate-b passed",
    ]

    no_rollback = run_group(subject, HookType.ROLLBACK, Phase.PROGRESSING, CHECKSUM)
    assert [r.message for r in no_rollback.results] == [
        "Rollback hook rb-halt not signaling a rollback",
        "Rollback hook rb-check not signaling a rollback",
        "Rollback check rb-never passed",
    ]
    tester.open_rollback("podinfo", "test")
    rollback = run_group(subject, HookType.ROLLBACK, Phase.PROGRESSING, CHECKSUM)
    assert [(r.name, r.ok) for r in rollback.results] == [("rb-halt", False), ("rb-check", True)]
    assert rollback.first_success is not None


def test_payload_and_phase_per_hook_type(scripted: Any) -> None:
    server = scripted([200])
    subject = canary(
        {"name": "c", "type": "confirm-rollout", "url": server.url},
        {"name": "t", "type": "confirm-traffic-increase", "url": server.url,
         "metadata": {"k": "v"}},
        {"name": "p", "type": "post-rollout", "url": server.url},
    )  # fmt: skip
    run_group(subject, HookType.CONFIRM_ROLLOUT, Phase.INITIALIZED, CHECKSUM)
    run_group(subject, HookType.CONFIRM_TRAFFIC_INCREASE, Phase.WAITING, CHECKSUM)
    run_group(subject, HookType.POST_ROLLOUT, Phase.FAILED, CHECKSUM)
    assert [r["body"] for r in server.requests] == [
        {"name": "podinfo", "namespace": "test", "phase": "Initialized", "checksum": CHECKSUM},
        {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": CHECKSUM,
         "metadata": {"k": "v"}},
        {"name": "podinfo", "namespace": "test", "phase": "Failed", "checksum": CHECKSUM},
    ]  # fmt: skip
    assert {r["content_type"] for r in server.requests} == {"application/json"}
    assert payload_phase(HookType.ROLLBACK, Phase.WAITING_PROMOTION) is Phase.WAITING_PROMOTION


@pytest.mark.parametrize("status", [204, 302, 404, 501])
def test_only_200_201_202_succeed_and_some_statuses_are_final(scripted: Any, status: int) -> None:
    server = scripted([status, 200], body="nope")
    subject = canary({"name": "h", "url": server.url, "retries": 3})
    group = WebhookCaller(backoff_base=0.01).run_group(
        subject, HookType.ROLLOUT, Phase.PROGRESSING, CHECKSUM
    )
    assert not group.ok
    assert len(server.requests) == 1  # not retried
    reason = "HTTP 204 No Content" if status == 204 else "nope"  # a 204 carries no body
    assert group.results[0].message == (
        f"Halt podinfo.test advancement external check h failed {reason}"
    )


@pytest.mark.parametrize("status", [201, 202])
def test_201_and_202_succeed(scripted: Any, status: int) -> None:
    server = scripted([status])
    assert run_group(canary({"name": "h", "url": server.url}), HookType.ROLLOUT,
                     Phase.PROGRESSING, CHECKSUM).ok  # fmt: skip


def test_retries_5xx_and_429_with_backoff(scripted: Any) -> None:
    server = scripted([500, 429, 503, 200])
    sleeps: list[float] = []
    caller = WebhookCaller(backoff_base=0.5, backoff_cap=1.5, sleep=sleeps.append)
    group = caller.run_group(
        canary({"name": "h", "type": "pre-rollout", "url": server.url, "retries": 3}),
        HookType.PRE_ROLLOUT,
        Phase.PROGRESSING,
        CHECKSUM,
    )
    assert group.ok
    assert len(server.requests) == 4
    assert sleeps == [0.5, 1.0, 1.5]  # doubling, capped


def test_retries_exhausted_and_connection_errors(scripted: Any) -> None:
    server = scripted([500], body="boom")
    caller = WebhookCaller(backoff_base=0.01)
    group = caller.run_group(
        canary({"name": "h", "url": server.url, "retries": 1}),
        HookType.ROLLOUT,
        Phase.PROGRESSING,
        CHECKSUM,
    )
    assert group.results[0].message.endswith(
        f"failed POST {server.url} giving up after 2 attempt(s): HTTP 500: boom"
    )
    refused = caller.run_group(
        canary({"name": "h", "url": "http://127.0.0.1:1/x?token=secret", "retries": 1}),
        HookType.ROLLOUT,
        Phase.PROGRESSING,
        CHECKSUM,
    )
    message = refused.results[0].message
    assert message.endswith(
        "POST http://127.0.0.1:1/x giving up after 2 attempt(s): Connection refused"
    )
    assert "secret" not in message


def test_timeout_is_per_attempt_and_bad_values_fail(scripted: Any) -> None:
    server = scripted([200], delay=2.0)
    started = time.monotonic()
    group = run_group(
        canary({"name": "slow", "url": server.url, "timeout": "300ms"}),
        HookType.ROLLOUT,
        Phase.PROGRESSING,
        CHECKSUM,
    )
    assert time.monotonic() - started < 1.5
    assert group.results[0].message.endswith("giving up after 1 attempt(s): no answer within 0.3s")
    bad = run_group(
        canary({"name": "odd", "url": server.url, "timeout": "10 seconds"}),
        HookType.ROLLOUT,
        Phase.PROGRESSING,
        CHECKSUM,
    )
    assert "invalid timeout" in bad.results[0].message
    assert len(server.requests) == 1


def test_only_http_urls(tester: LoadTester) -> None:
    group = run_group(
        canary({"name": "f", "url": "file:///etc/passwd"}), HookType.ROLLOUT, Phase.PROGRESSING, ""
    )
    assert group.results[0].message == (
        "Halt podinfo.test advancement external check f failed url file:///etc/passwd is not "
        "an http:// or https:// URL"
    )


def test_loadtester_protocol(tester: LoadTester) -> None:
    url = tester.url
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    who = {"name": "podinfo", "namespace": "test"}
    assert requests.post(url + "/", json=who, timeout=5).text == "metadata not found in payload"
    odd = requests.post(url + "/", json={**who, "metadata": {"type": "x", "cmd": "c"}}, timeout=5)
    assert (odd.status_code, odd.text) == (400, "unknown task type x")
    tester.set_outcome("echo hi", output="hi")
    shown = {**who, "metadata": {"type": "bash", "cmd": "echo hi", "returnCmdOutput": "true"}}
    assert requests.post(url + "/", json=shown, timeout=5).text == "hi"
    assert requests.post(url + "/gate/check", json=who, timeout=5).status_code == 403
    assert requests.post(url + "/gate/open", json=who, timeout=5).status_code == 202
    assert requests.post(url + "/gate/check", json=who, timeout=5).text == "Approved"
    assert requests.post(url + "/gate/close", json=who, timeout=5).status_code == 202
    assert requests.post(url + "/gate/check", json=who, timeout=5).status_code == 403
    other = {"name": "podinfo", "namespace": "prod"}
    assert requests.post(url + "/rollback/open", json=other, timeout=5).status_code == 202
    assert requests.post(url + "/rollback/check", json=who, timeout=5).status_code == 403
    assert requests.post(url + "/rollback/check", json=other, timeout=5).status_code == 200


def test_loadtester_never_runs_commands(tester: LoadTester, tmp_path: Any) -> None:
    marker = tmp_path / "pwned"
    who = {"name": "podinfo", "namespace": "test"}
    for kind in ("bash", "cmd"):
        requests.post(
            tester.url + "/", json={**who, "metadata": {"type": kind, "cmd": f"touch {marker}"}},
            timeout=5,
        )  # fmt: skip
    time.sleep(0.2)  # the real load tester's runner would have run the cmd task by now
    assert not marker.exists()
    assert [t.cmd for t in tester.tasks] == [f"touch {marker}"] * 2


def test_loadtester_namespace_filter() -> None:
    with LoadTester(namespace_regexp="^prod$") as tester:
        answer = requests.post(
            tester.url + "/gate/approve", json={"name": "p", "namespace": "test"}, timeout=5
        )
        assert (answer.status_code, answer.text) == (403, "Forbidden")


def test_event_webhooks(scripted: Any) -> None:
    own, global_sink = scripted([200]), scripted([200])
    subject = canary(
        {"name": "ev", "type": "event", "url": own.url,
         "metadata": {"team": "a", "eventType": "spoofed"}},
        {"name": "gate", "type": "confirm-rollout", "url": own.url},
    )  # fmt: skip
    event = Event(EventType.WARNING, "Halt podinfo.test advancement error-rate 10.00 > 1")
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    results = send_event(
        subject.spec.analysis.webhooks, subject, event, Phase.PROGRESSING, CHECKSUM,
        global_event_url=global_sink.url, now=now,
    )  # fmt: skip
    assert [(r.name, r.ok) for r in results] == [("ev", True)]
    assert own.requests[0]["body"] == {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": CHECKSUM,
        "metadata": {
            "team": "a",
            "eventMessage": "Halt podinfo.test advancement error-rate 10.00 > 1",
            "eventType": "Warning",
            "timestamp": str(int(now.timestamp() * 1000)),
        },
    }
    assert global_sink.requests == []

    # Without event hooks of its own, the canary's events go to the global sink.
    plain = canary()
    promoted = Event(EventType.NORMAL, "Promotion completed!", phase=Phase.SUCCEEDED)
    send_event([], plain, promoted, Phase.FINALISING, CHECKSUM, global_event_url=global_sink.url)
    body = global_sink.requests[0]["body"]
    assert body["phase"] == "Succeeded"
    assert body["metadata"]["eventType"] == "Normal"
    failed = send_event([], plain, promoted, Phase.FINALISING, CHECKSUM,
                        global_event_url="http://127.0.0.1:1/")  # fmt: skip
    assert not failed[0].ok
