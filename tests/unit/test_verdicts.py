"""Threshold comparisons and Flagger's event texts for metric checks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gitops_canary.core.promql import MetricQuery, QueryPlanError, QuerySource, UnitKind
from gitops_canary.core.specs import Canary, CanaryMetric
from gitops_canary.core.verdicts import (
    OutcomeKind,
    QueryOutcome,
    exported_value,
    go_duration,
    go_float,
    judge,
    plan_error_result,
)

CANARY = Canary.model_validate(
    {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-app"},
            "service": {"port": 9898},
            "analysis": {},
        },
    }
)


def query(
    name: str,
    kind: UnitKind = UnitKind.PLAIN,
    source: QuerySource = QuerySource.TEMPLATE,
    **metric: Any,
) -> MetricQuery:
    return MetricQuery(
        metric=CanaryMetric.model_validate({"name": name, **metric}),
        query="q",
        address="http://prom:9090",
        source=source,
        kind=kind,
        provider="contour",
    )


SUCCESS = {"kind": UnitKind.PERCENT, "source": QuerySource.BUILTIN}
CONTOUR_LATENCY = {"kind": UnitKind.DURATION_MS, "source": QuerySource.BUILTIN}
APP_LATENCY = {"kind": UnitKind.DURATION_S, "source": QuerySource.BUILTIN}


def test_success_rate_below_min_uses_flaggers_words() -> None:
    q = query("request-success-rate", thresholdRange={"min": 99}, **SUCCESS)
    result = judge(CANARY, q, QueryOutcome.of(69.1666))
    assert not result.ok
    assert not result.error
    assert result.value == 69.1666
    assert result.threshold == "min 99%"
    assert result.message == "Halt podinfo.test advancement success rate 69.17% < 99%"


def test_success_rate_legacy_threshold_is_a_minimum() -> None:
    q = query("request-success-rate", threshold=99.5, **SUCCESS)
    assert judge(CANARY, q, QueryOutcome.of(99.5)).ok
    failed = judge(CANARY, q, QueryOutcome.of(99.4))
    assert failed.message == "Halt podinfo.test advancement success rate 99.40% < 99.5%"
    assert judge(CANARY, q, QueryOutcome.of(100)).message == (
        "request-success-rate 100.00% is within min 99.5%"
    )


def test_duration_in_milliseconds_prints_go_durations() -> None:
    q = query("request-duration", thresholdRange={"max": 500}, **CONTOUR_LATENCY)
    result = judge(CANARY, q, QueryOutcome.of(1200))
    assert result.message == "Halt podinfo.test advancement request duration 1.2s > 500ms"
    assert result.threshold == "max 500ms"
    assert judge(CANARY, q, QueryOutcome.of(500)).ok  # inclusive


def test_duration_is_not_truncated_to_whole_milliseconds() -> None:
    # Flagger truncates 500.9 ms to 500 ms and passes; the exact value fails.
    q = query("request-duration", thresholdRange={"max": 500}, **CONTOUR_LATENCY)
    assert judge(CANARY, q, QueryOutcome.of(500.9)).message == (
        "Halt podinfo.test advancement request duration 500.9ms > 500ms"
    )
    # Flagger turns a 0.5 ms maximum into 0 ms; here it is half a millisecond.
    half = query("request-duration", thresholdRange={"max": 0.5}, **APP_LATENCY)
    assert judge(CANARY, half, QueryOutcome.of(0.0004)).ok
    assert judge(CANARY, half, QueryOutcome.of(0.0006)).message == (
        "Halt podinfo.test advancement request duration 600µs > 500µs"
    )


def test_duration_in_seconds_and_legacy_threshold_and_min() -> None:
    q = query("request-duration", threshold=500, **APP_LATENCY)
    assert judge(CANARY, q, QueryOutcome.of(0.25)).ok
    assert judge(CANARY, q, QueryOutcome.of(90.5)).message == (
        "Halt podinfo.test advancement request duration 1m30.5s > 500ms"
    )
    low = query("request-duration", thresholdRange={"min": 10, "max": 100}, **APP_LATENCY)
    result = judge(CANARY, low, QueryOutcome.of(0.005))
    assert result.message == "Halt podinfo.test advancement request duration 5ms < 10ms"
    assert result.threshold == "min 10ms max 100ms"


def test_custom_metric_messages() -> None:
    q = query("error-rate", thresholdRange={"max": 1})
    result = judge(CANARY, q, QueryOutcome.of(69.1666))
    assert result.message == "Halt podinfo.test advancement error-rate 69.17 > 1"
    assert result.threshold == "max 1"
    assert judge(CANARY, q, QueryOutcome.of(1.0)).ok
    ranged = query("apdex", thresholdRange={"min": 0.9})
    assert judge(CANARY, ranged, QueryOutcome.of(0.5)).message == (
        "Halt podinfo.test advancement apdex 0.50 < 0.9"
    )


def test_custom_legacy_threshold_is_a_maximum_and_defaults_to_zero() -> None:
    q = query("errors", threshold=5)
    assert judge(CANARY, q, QueryOutcome.of(5)).ok
    assert judge(CANARY, q, QueryOutcome.of(6)).message == (
        "Halt podinfo.test advancement errors 6.00 > 5"
    )
    unset = query("errors")
    assert judge(CANARY, unset, QueryOutcome.of(0)).ok
    assert not judge(CANARY, unset, QueryOutcome.of(0.01)).ok


def test_infinities_compare_as_numbers() -> None:
    q = query("error-rate", thresholdRange={"max": 1})
    result = judge(CANARY, q, QueryOutcome.of(math.inf))
    assert result.message == "Halt podinfo.test advancement error-rate +Inf > 1"
    assert judge(CANARY, q, QueryOutcome.of(-math.inf)).ok
    slow = query("request-duration", thresholdRange={"max": 500}, **CONTOUR_LATENCY)
    assert judge(CANARY, slow, QueryOutcome.of(math.inf)).message == (
        "Halt podinfo.test advancement request duration +Inf > 500ms"
    )


def test_no_values_messages_per_kind() -> None:
    none = QueryOutcome.no_values()
    rate = judge(CANARY, query("request-success-rate", **SUCCESS), none)
    assert rate.message == (
        "Halt advancement no values found for contour metric request-success-rate probably "
        "podinfo-app.test is not receiving traffic: no values found"
    )
    assert rate.value is None
    assert not rate.ok
    assert not rate.error
    latency = judge(CANARY, query("request-duration", **CONTOUR_LATENCY), none)
    assert latency.message == (
        "Halt advancement no values found for contour metric request-duration probably "
        "podinfo-app.test is not receiving traffic"
    )
    inline = judge(CANARY, query("q", source=QuerySource.INLINE), none)
    assert inline.message == "Halt advancement no values found for metric: q"
    custom = judge(CANARY, query("error-rate"), QueryOutcome.of(math.nan))
    assert custom.message == (
        "Halt advancement no values found for custom metric: error-rate: no values found"
    )


def test_query_errors() -> None:
    failed = QueryOutcome.failed("connection refused")
    builtin = judge(CANARY, query("request-success-rate", **SUCCESS), failed)
    assert builtin.message == "Prometheus query failed: connection refused"
    assert builtin.error
    assert builtin.value is None
    inline = judge(CANARY, query("q", source=QuerySource.INLINE), failed)
    assert inline.message == "Prometheus query failed for q: connection refused"
    custom = judge(CANARY, query("error-rate"), failed)
    assert custom.message == "Metric query failed for error-rate: connection refused"


def test_plan_error_result_is_a_failed_check() -> None:
    metric = CanaryMetric(name="nothing")
    result = plan_error_result(QueryPlanError(metric, "Metric query failed for no usable"))
    assert (result.ok, result.error, result.value) == (False, True, None)
    assert result.message == "Metric query failed for no usable"


def test_outcome_of_nan_is_no_values() -> None:
    assert QueryOutcome.of(math.nan).kind is OutcomeKind.NO_VALUES
    assert QueryOutcome.of(1.5) == QueryOutcome(OutcomeKind.VALUE, value=1.5)


@pytest.mark.parametrize(
    ("value", "text"),
    [(99, "99"), (99.5, "99.5"), (0.1, "0.1"), (1e6, "1e+06"), (123456, "123456"),
     (1.5e-5, "1.5e-05"), (0.0001, "0.0001"), (-2.25, "-2.25"), (math.inf, "+Inf")],
)  # fmt: skip
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (999, "999ns"), (1500, "1.5µs"), (500_000_000, "500ms"),
     (1_200_000_000, "1.2s"), (3_600_000_000_000, "1h0m0s"), (-1_500_000, "-1.5ms")],
)  # fmt: skip
def test_go_duration(nanoseconds: int, text: str) -> None:
    assert go_duration(nanoseconds) == text


def test_exported_value_is_seconds_for_durations() -> None:
    assert exported_value(UnitKind.DURATION_MS, 250) == 0.25
    assert exported_value(UnitKind.DURATION_S, 0.25) == 0.25
    assert exported_value(UnitKind.PERCENT, 99) == 99
