"""Prometheus: run a canary's planned queries and turn each answer into a :class:`QueryOutcome`.

This adapter owns the HTTP side of ``flagger-behaviour.md`` §5.4: the address with its path
prefix, the MetricTemplate ``headers``, ``secretRef`` credentials (bearer token, or basic auth
from ``username``/``password``), ``insecureSkipVerify``, a 5 s timeout per query and no retries,
and reading the answer. What to query comes from :func:`gitops_canary.core.promql.plan_queries`;
judging the number is :func:`gitops_canary.core.verdicts.judge`.

Reading the answer:

* an instant vector with one sample gives its value; an empty vector or ``NaN`` gives "no values";
* several series are an error. Deviation (D8): Flagger silently keeps the last one, which makes
  the verdict depend on the order Prometheus happens to return series in;
* a range vector (matrix) is an error, as in Flagger;
* a scalar (``1 + 1``, ``scalar(...)``) gives its value. Flagger fails on scalars only because its
  JSON decoding expects a list; a scalar answer is unambiguous, so it is accepted here;
* HTTP status >= 400, an unreachable server, a timeout or a body that is not Prometheus JSON
  give an error with a one-line reason. Never a traceback, never a credential.

Secrets are read by a :data:`SecretReader` the caller provides (from the cluster or from a local
file); this module only sees the decoded ``data`` mapping.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from gitops_canary.core.promql import MetricQuery, QuerySource, SecretLocation
from gitops_canary.core.specs import CanaryMetric
from gitops_canary.core.verdicts import QueryOutcome

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CONCURRENCY = 8
_EXCERPT_CHARS = 200

#: ``(namespace, name) -> Secret data`` with values already base64-decoded. Raises on failure.
SecretReader = Callable[[str, str], Mapping[str, str]]


class CredentialsError(ValueError):
    """A MetricTemplate's Secret is unreadable or lacks the keys Flagger expects."""


@dataclass(frozen=True)
class _Credentials:
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None


def credentials_from_secret(location: SecretLocation, data: Mapping[str, str]) -> _Credentials:
    """Flagger's rule: a ``token`` key means a bearer token, else ``username`` and ``password``."""
    if "token" in data:
        return _Credentials(bearer_token=data["token"])
    hint = (
        f'(Secret {location.namespace}/{location.name} needs "token", or "username" and "password")'
    )
    if "username" not in data:
        raise CredentialsError(f"prometheus credentials does not contain a username {hint}")
    if "password" not in data:
        raise CredentialsError(f"prometheus credentials does not contain a password {hint}")
    return _Credentials(basic_auth=(data["username"], data["password"]))


def redact_address(address: str) -> str:
    """The address without ``user:password@``, a query string or a fragment, safe to log."""
    without_userinfo = re.sub(r"^(\w+://)[^/@]*@", r"\1", address)
    return re.split(r"[?#]", without_userinfo, maxsplit=1)[0]


class PrometheusClient:
    """Sends :class:`MetricQuery` objects to Prometheus; one fresh HTTP session per query.

    ``timeout`` applies to connecting and to each read (requests' semantics), 5 s by default as
    in Flagger. ``secret_reader`` is needed only for MetricTemplates with ``secretRef``.
    """

    def __init__(
        self,
        *,
        secret_reader: SecretReader | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._secret_reader = secret_reader
        self._timeout = timeout

    # -- public

    def evaluate(
        self, queries: Sequence[MetricQuery], *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    ) -> list[QueryOutcome]:
        """Run the queries (of one or many canaries) at most ``max_concurrency`` at a time.

        The outcomes are in the order of ``queries``.
        """
        if not queries:
            return []
        workers = max(1, min(max_concurrency, len(queries)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prometheus") as pool:
            return list(pool.map(self.query, queries))

    def query(self, query: MetricQuery) -> QueryOutcome:
        """Run one query. Never raises: every failure is an error outcome with a short reason."""
        try:
            credentials = self._credentials(query)
        except CredentialsError as err:
            return QueryOutcome.failed(f"MetricTemplate {query.template} {err}")
        try:
            return self._run(query, credentials)
        except Exception as err:  # a bug or an odd library error must not stop the tick
            log.warning(
                "Prometheus query for metric %s at %s failed unexpectedly: %s",
                query.name,
                redact_address(query.address),
                type(err).__name__,
            )
            return QueryOutcome.failed(f"unexpected {type(err).__name__} talking to Prometheus")

    def is_online(self, address: str, *, insecure_skip_verify: bool = False) -> bool:
        """Flagger's availability check: ``vector(1)`` answers 1."""
        probe = MetricQuery(
            metric=CanaryMetric(name="availability"),
            query="vector(1)",
            address=address,
            source=QuerySource.BUILTIN,
            insecure_skip_verify=insecure_skip_verify,
        )
        outcome = self.query(probe)
        return outcome.value == 1.0

    # -- internals

    def _credentials(self, query: MetricQuery) -> _Credentials:
        if query.secret is None:
            return _Credentials()
        location = query.secret
        if self._secret_reader is None:
            raise CredentialsError(
                f"secret {location.name} error: no way to read Secret "
                f"{location.namespace}/{location.name} was configured"
            )
        try:
            data = self._secret_reader(location.namespace, location.name)
        except Exception as err:
            raise CredentialsError(
                f"secret {location.name} error: cannot read Secret "
                f"{location.namespace}/{location.name}: {_one_line(str(err))}"
            ) from None
        try:
            return credentials_from_secret(location, data)
        except CredentialsError as err:
            raise CredentialsError(f"secret {location.name} error: {err}") from None

    def _run(self, query: MetricQuery, credentials: _Credentials) -> QueryOutcome:
        outcome = self._send(query, credentials)
        # A server or proxy may echo the credentials it received; never pass them on.
        secrets = [credentials.bearer_token, *(credentials.basic_auth or ())]
        error = outcome.error
        for secret in secrets:
            if secret:
                error = error.replace(secret, "***")
        return outcome if error == outcome.error else QueryOutcome.failed(error)

    def _send(self, query: MetricQuery, credentials: _Credentials) -> QueryOutcome:
        headers = dict(query.headers)
        if credentials.bearer_token is not None:
            headers["Authorization"] = f"Bearer {credentials.bearer_token}"
        responses: list[requests.Response] = []
        session = requests.Session()
        session.verify = not query.insecure_skip_verify
        # Keep the response so an error can quote its status and body (the library does not).
        session.hooks["response"].append(lambda response, *_a, **_k: responses.append(response))
        address = query.address.rstrip("/")
        shown = redact_address(address)
        try:
            client = PrometheusConnect(
                url=address,
                headers=headers or None,
                disable_ssl=query.insecure_skip_verify,
                # No retries (Flagger has none); read=False keeps a read timeout a Timeout.
                retry=Retry(total=0, read=False, raise_on_status=False),
                auth=credentials.basic_auth,
                session=session,
                timeout=self._timeout,
            )
            result = client.custom_query(query.query)
        except PrometheusApiClientException:
            return QueryOutcome.failed(_error_response(responses[-1] if responses else None))
        except requests.exceptions.JSONDecodeError:
            body = responses[-1].text if responses else ""
            return QueryOutcome.failed(
                f"error unmarshaling result: Prometheus at {shown} did not answer with JSON "
                f"(body starts with {_excerpt(body)!r})"
            )
        except (KeyError, TypeError):
            return QueryOutcome.failed(
                f"error unmarshaling result: Prometheus at {shown} answered JSON without "
                "data.result"
            )
        except requests.exceptions.Timeout:
            return QueryOutcome.failed(
                f"Prometheus at {shown} did not answer within {self._timeout:g}s"
            )
        except requests.exceptions.RequestException as err:
            return QueryOutcome.failed(f"cannot reach Prometheus at {shown}: {_reason(err)}")
        finally:
            session.close()
        return parse_result(result)


def parse_result(result: Any) -> QueryOutcome:
    """Read ``data.result`` of an instant query (see the module docstring for the rules)."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        # A scalar (or string) result is ``[<unix time>, "<value>"]``.
        return _sample_value(result)
    if not isinstance(result, list):
        return QueryOutcome.failed("error unmarshaling result: data.result is not a list")
    if not result:
        return QueryOutcome.no_values()
    if any(isinstance(series, dict) and "values" in series for series in result):
        return QueryOutcome.failed(
            "query result multiple values returned: the query returns a range vector; "
            "it must return one instant value"
        )
    if len(result) > 1:
        labels = [_labels(series) for series in result[:3]]
        more = ", ..." if len(result) > 3 else ""
        return QueryOutcome.failed(
            f"query returned {len(result)} series ({', '.join(labels)}{more}); it must return "
            "exactly one: aggregate it, e.g. with sum(...)"
        )
    series = result[0]
    if not isinstance(series, dict) or "value" not in series:
        return QueryOutcome.failed("error unmarshaling result: a series has no value")
    return _sample_value(series["value"])


def _sample_value(sample: Any) -> QueryOutcome:
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return QueryOutcome.failed(
            f"error unmarshaling result: {_excerpt(json.dumps(sample))} is not a number"
        )
    if math.isnan(value):
        return QueryOutcome.no_values()
    return QueryOutcome.of(value)


def _labels(series: Any) -> str:
    if not isinstance(series, dict) or not isinstance(series.get("metric"), dict):
        return "{}"
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(series["metric"].items()))
    return "{" + pairs + "}"


def _error_response(response: requests.Response | None) -> str:
    if response is None:
        return "error response: no response"
    body = response.text
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "error" in decoded:
        # Prometheus' own errors (a PromQL parse error, a timeout) are JSON: quote them whole.
        kind = decoded.get("errorType")
        body = f"{kind}: {decoded['error']}" if kind else str(decoded["error"])
    return f"error response: Status {response.status_code} {response.reason}: {_excerpt(body)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _excerpt(text: str) -> str:
    line = _one_line(text)
    return line if len(line) <= _EXCERPT_CHARS else line[:_EXCERPT_CHARS] + "..."


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _reason(err: requests.exceptions.RequestException) -> str:
    """The useful end of requests' long exception text (e.g. ``Connection refused``)."""
    match = _ERRNO.search(str(err))
    if match:
        return match.group(1).strip()
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS handshake failed (set insecureSkipVerify only for test servers)"
    return type(err).__name__


# --------------------------------------------------------------------------- module shortcuts


def evaluate(
    queries: Sequence[MetricQuery],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    secret_reader: SecretReader | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[QueryOutcome]:
    """Run the queries concurrently (bounded); outcomes in the order of ``queries``."""
    client = PrometheusClient(secret_reader=secret_reader, timeout=timeout)
    return client.evaluate(queries, max_concurrency=max_concurrency)


def is_online(address: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> bool:
    """Flagger's availability check against ``address``: ``vector(1)`` answers 1."""
    return PrometheusClient(timeout=timeout).is_online(address)
