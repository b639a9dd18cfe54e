"""Prometheus adapter against servers that misbehave, and what it sends (auth, headers, paths)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping

import pytest
from prom_helpers import VECTOR_OF_ONE, Recorder

from gitops_canary.core.promql import MetricQuery, QuerySource, SecretLocation
from gitops_canary.core.specs import CanaryMetric
from gitops_canary.core.verdicts import OutcomeKind, QueryOutcome
from gitops_canary.observe.prometheus import (
    DEFAULT_TIMEOUT_SECONDS,
    PrometheusClient,
    evaluate,
    is_online,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

FakeServer = Callable[..., tuple[str, Recorder]]
TOKEN = "s3cr3t-token-value"


def query_to(address: str, **fields: object) -> MetricQuery:
    return MetricQuery(
        metric=CanaryMetric(name="error-rate"),
        query='sum(rate(x{a="b c"}[1m]))',
        address=address,
        source=QuerySource.TEMPLATE,
        template="error-rate.flagger-system",
        **fields,  # type: ignore[arg-type]
    )


def secrets(data: Mapping[str, str]) -> Callable[[str, str], Mapping[str, str]]:
    def read(namespace: str, name: str) -> Mapping[str, str]:
        assert (namespace, name) == ("flagger-system", "prom-auth")
        return data

    return read


AUTH = SecretLocation("flagger-system", "prom-auth")


def test_default_timeout_is_flaggers() -> None:
    assert DEFAULT_TIMEOUT_SECONDS == 5.0


def test_slow_server_times_out(fake_prometheus: FakeServer) -> None:
    url, _ = fake_prometheus(body=VECTOR_OF_ONE, delay=3.0)
    started = time.monotonic()
    (outcome,) = PrometheusClient(timeout=0.5).evaluate([query_to(url)])
    assert time.monotonic() - started < 2.5
    assert outcome == QueryOutcome.failed(f"Prometheus at {url} did not answer within 0.5s")


def test_failing_server_quotes_status_and_a_short_body(fake_prometheus: FakeServer) -> None:
    url, _ = fake_prometheus(status=500, body="x" * 5000)
    started = time.monotonic()
    (outcome,) = evaluate([query_to(url)])
    assert time.monotonic() - started < 2  # no retries with backoff
    assert outcome.kind is OutcomeKind.ERROR
    assert outcome.error.startswith("error response: Status 500 Internal Server Error: xxx")
    assert outcome.error.endswith("...")
    assert len(outcome.error) < 300


def test_prometheus_json_errors_are_quoted(fake_prometheus: FakeServer) -> None:
    body = json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"})
    url, _ = fake_prometheus(status=503, body=body)
    (outcome,) = evaluate([query_to(url)])
    assert outcome.error == (
        "error response: Status 503 Service Unavailable: timeout: query timed out"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>hi\n</html>", "did not answer with JSON (body starts with '<html>hi </html>')"),
        ('{"status": "success"}', "answered JSON without data.result"),
        ('{"data": {"result": [{"metric": {}, "value": [1, "abc"]}]}}', '"abc"] is not a number'),
        ('{"data": {"result": ["odd"]}}', "a series has no value"),
    ],
)  # fmt: skip
def test_garbage_answers(fake_prometheus: FakeServer, body: str, expected: str) -> None:
    url, _ = fake_prometheus(body=body)
    (outcome,) = evaluate([query_to(url)])
    assert outcome.kind is OutcomeKind.ERROR
    assert expected in outcome.error


def test_unreachable_server(fake_prometheus: FakeServer) -> None:
    url, _ = fake_prometheus()
    closed = url.rsplit(":", 1)[0] + ":1"
    (outcome,) = evaluate([query_to(closed + "/prefix")])
    assert outcome == QueryOutcome.failed(
        f"cannot reach Prometheus at {closed}/prefix: Connection refused"
    )
    assert not is_online(closed)


def test_path_prefix_headers_and_bearer_token(
    fake_prometheus: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, recorder = fake_prometheus(body=VECTOR_OF_ONE)
    client = PrometheusClient(secret_reader=secrets({"token": TOKEN, "username": "ignored"}))
    (outcome,) = client.evaluate(
        [query_to(url + "/some/prefix/", headers=(("X-Scope-OrgID", "team-a"),), secret=AUTH)]
    )
    assert outcome == QueryOutcome.of(1.0)
    (request,) = recorder.requests
    assert (
        request["path"]
        == "/some/prefix/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B1m%5D%29%29"
    )
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["X-Scope-OrgID"] == "team-a"
    assert TOKEN not in caplog.text


def test_basic_auth(fake_prometheus: FakeServer) -> None:
    url, recorder = fake_prometheus(body=VECTOR_OF_ONE)
    client = PrometheusClient(secret_reader=secrets({"username": "flagger", "password": "pw"}))
    (outcome,) = client.evaluate([query_to(url, secret=AUTH)])
    assert outcome.value == 1.0
    expected = base64.b64encode(b"flagger:pw").decode()
    assert recorder.requests[0]["headers"]["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("data", "missing"), [({}, "username"), ({"username": "flagger"}, "password")]
)
def test_incomplete_credentials_are_named(
    fake_prometheus: FakeServer, data: dict[str, str], missing: str
) -> None:
    url, recorder = fake_prometheus(body=VECTOR_OF_ONE)
    (outcome,) = PrometheusClient(secret_reader=secrets(data)).evaluate(
        [query_to(url, secret=AUTH)]
    )
    assert outcome.error.startswith(
        "MetricTemplate error-rate.flagger-system secret prom-auth error: "
        f"prometheus credentials does not contain a {missing} "
        '(Secret flagger-system/prom-auth needs "token", or "username" and "password")'
    )
    assert recorder.requests == []  # nothing sent without the credentials


def test_unreadable_secret_and_no_reader(fake_prometheus: FakeServer) -> None:
    url, _ = fake_prometheus(body=VECTOR_OF_ONE)

    def broken(namespace: str, name: str) -> Mapping[str, str]:
        raise FileNotFoundError(f"secrets/{namespace}/{name}.yaml does not exist")

    failed, unset = (
        PrometheusClient(secret_reader=broken).query(query_to(url, secret=AUTH)),
        PrometheusClient().query(query_to(url, secret=AUTH)),
    )
    assert failed.error == (
        "MetricTemplate error-rate.flagger-system secret prom-auth error: cannot read Secret "
        "flagger-system/prom-auth: secrets/flagger-system/prom-auth.yaml does not exist"
    )
    assert "no way to read Secret flagger-system/prom-auth" in unset.error


def test_credentials_in_the_address_are_not_echoed(fake_prometheus: FakeServer) -> None:
    url, _ = fake_prometheus()
    closed = url.rsplit(":", 1)[0].replace("http://", "http://user:hunter2@") + ":1"
    (outcome,) = evaluate([query_to(closed)])
    assert "hunter2" not in outcome.error
    assert outcome.error.startswith("cannot reach Prometheus at http://127.0.0.1:1")
