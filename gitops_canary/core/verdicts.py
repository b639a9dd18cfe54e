"""Metric verdicts: a query's answer compared with the canary's threshold, in Flagger's words.

This module owns the threshold rules of ``flagger-behaviour.md`` §5.3 and the exact event texts
of §5.1 and §7.2 (``Halt podinfo.test advancement success rate 69.17% < 99%``, ``Prometheus query
failed: ...``, the "no values found" variants). Numbers are printed the way Go prints them
(``%v`` of a float, ``%.2f``, ``time.Duration``), so messages read like Flagger's.

Deviation (D8): request durations are compared as exact numbers. Flagger truncates both the
value and the thresholds to whole milliseconds, so ``thresholdRange.max: 0.5`` becomes 0 ms and
fails every request; here 0.5 means half a millisecond. ``+Inf``/``-Inf`` compare as numbers.

A metric without ``thresholdRange`` and without ``threshold`` has Flagger's zero threshold: a
success rate then always passes, a duration or custom value passes only when it is at most 0.

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from gitops_canary.core.observations import MetricResult
from gitops_canary.core.promql import (
    DURATION,
    SUCCESS_RATE,
    MetricQuery,
    QueryPlanError,
    QuerySource,
    UnitKind,
)
from gitops_canary.core.specs import Canary, CanaryMetric

NO_VALUES_FOUND = "no values found"


class OutcomeKind(StrEnum):
    VALUE = "value"
    NO_VALUES = "no-values"
    ERROR = "error"


@dataclass(frozen=True)
class QueryOutcome:
    """What Prometheus answered to one query: a number, nothing, or an error text.

    ``no values`` covers an empty vector and NaN (Flagger's ``ErrNoValuesFound``). ``error`` is
    a one-line text for an operator, never a traceback and never a credential.
    """

    kind: OutcomeKind
    value: float | None = None
    error: str = ""

    @classmethod
    def of(cls, value: float) -> QueryOutcome:
        if math.isnan(value):
            return cls(OutcomeKind.NO_VALUES)
        return cls(OutcomeKind.VALUE, value=value)

    @classmethod
    def no_values(cls) -> QueryOutcome:
        return cls(OutcomeKind.NO_VALUES)

    @classmethod
    def failed(cls, error: str) -> QueryOutcome:
        return cls(OutcomeKind.ERROR, error=error)


# --------------------------------------------------------------------------- Go formatting


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form from 1e+06 and below 1e-04."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits_tuple = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)
    sign = "-" if digits_tuple.sign else ""
    decimal_point = len(digits) + exponent  # position of the point relative to the digits
    exp10 = decimal_point - 1
    # Go's shortest %g switches to exponent form below 1e-04 and from 1e+06 (1e+06, 1.5e-05).
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if decimal_point <= 0:
        return f"{sign}0.{'0' * -decimal_point}{digits}"
    if decimal_point >= len(digits):
        return f"{sign}{digits}{'0' * (decimal_point - len(digits))}"
    return f"{sign}{digits[:decimal_point]}.{digits[decimal_point:]}"


def go_fixed2(value: float) -> str:
    """Go's ``%.2f``: like Python's, but infinities print as ``+Inf``/``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.2f}"


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String``: ``500ms``, ``1.2s``, ``1m30s``, ``1h0m0s``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    ns = abs(nanoseconds)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_with_fraction(ns, 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_with_fraction(ns, 1_000_000, 6)}ms"
    whole_seconds, rest = divmod(ns, 1_000_000_000)
    hours, remainder = divmod(whole_seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    text = _with_fraction(seconds * 1_000_000_000 + rest, 1_000_000_000, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return f"{sign}{text}"


def _with_fraction(amount: int, unit: int, places: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(places, '0').rstrip('0')}"


def milliseconds_text(milliseconds: float) -> str:
    """A duration given in milliseconds, printed like Go (infinite values as ``+Inf``)."""
    if not math.isfinite(milliseconds):
        return go_fixed2(milliseconds)
    return go_duration(round(milliseconds * 1_000_000))


# --------------------------------------------------------------------------- judging


def kind_of(metric: CanaryMetric, query: MetricQuery | None) -> UnitKind:
    if query is not None:
        return query.kind
    if metric.name == SUCCESS_RATE:
        return UnitKind.PERCENT
    if metric.name == DURATION:
        return UnitKind.DURATION_MS
    return UnitKind.PLAIN


def _bound_text(kind: UnitKind, bound: float) -> str:
    if kind is UnitKind.PERCENT:
        return f"{go_float(bound)}%"
    if kind in (UnitKind.DURATION_MS, UnitKind.DURATION_S):
        return milliseconds_text(bound)  # duration thresholds are always milliseconds
    return go_float(bound)


def threshold_text(metric: CanaryMetric, kind: UnitKind) -> str:
    """The bound in words: ``max 1``, ``min 99%``, ``max 500ms``, ``min 1 max 5``."""
    bounds = metric.threshold_range
    if bounds is not None:
        parts = []
        if bounds.min is not None:
            parts.append(f"min {_bound_text(kind, bounds.min)}")
        if bounds.max is not None:
            parts.append(f"max {_bound_text(kind, bounds.max)}")
        return " ".join(parts) or "none"
    legacy = metric.threshold or 0.0
    word = "min" if kind is UnitKind.PERCENT else "max"
    return f"{word} {_bound_text(kind, legacy)}"


def comparable_value(kind: UnitKind, value: float) -> float:
    """The value in the threshold's unit: milliseconds for durations, else unchanged."""
    if kind is UnitKind.DURATION_S:
        return value * 1000.0
    return value


def exported_value(kind: UnitKind, value: float) -> float:
    """The value for ``flagger_canary_metric_analysis``: durations in seconds, like Flagger."""
    if kind is UnitKind.DURATION_MS:
        return value / 1000.0
    return value


def _value_text(kind: UnitKind, value: float) -> str:
    if kind is UnitKind.PERCENT:
        return f"{go_fixed2(value)}%"
    if kind in (UnitKind.DURATION_MS, UnitKind.DURATION_S):
        return milliseconds_text(comparable_value(kind, value))
    return go_fixed2(value)


def _halt(canary: Canary, query: MetricQuery, value: float, relation: str, bound: float) -> str:
    kind = query.kind
    if kind is UnitKind.PERCENT:
        what = "success rate"
    elif kind in (UnitKind.DURATION_MS, UnitKind.DURATION_S):
        what = "request duration"
    else:
        what = query.name
    shown = _value_text(kind, value)
    return f"Halt {canary.dotted} advancement {what} {shown} {relation} {_bound_text(kind, bound)}"


def _violation(query: MetricQuery, value: float) -> tuple[str, float] | None:
    """``("<", min)`` or ``(">", max)`` when the value is out of bounds; bounds are inclusive."""
    metric = query.metric
    compared = comparable_value(query.kind, value)
    bounds = metric.threshold_range
    if bounds is not None:
        if bounds.min is not None and compared < bounds.min:
            return "<", bounds.min
        if bounds.max is not None and compared > bounds.max:
            return ">", bounds.max
        return None
    legacy = metric.threshold or 0.0
    if query.kind is UnitKind.PERCENT:
        return ("<", legacy) if legacy > compared else None
    return (">", legacy) if compared > legacy else None


def _no_values_message(canary: Canary, query: MetricQuery) -> str:
    if query.source is QuerySource.BUILTIN:
        text = (
            f"Halt advancement no values found for {query.provider} metric {query.name} "
            f"probably {canary.target_name}.{canary.namespace} is not receiving traffic"
        )
        # Flagger appends the error to the success-rate variant only.
        return f"{text}: {NO_VALUES_FOUND}" if query.kind is UnitKind.PERCENT else text
    if query.source is QuerySource.INLINE:
        return f"Halt advancement no values found for metric: {query.name}"
    return f"Halt advancement no values found for custom metric: {query.name}: {NO_VALUES_FOUND}"


def _error_message(query: MetricQuery, error: str) -> str:
    if query.source is QuerySource.BUILTIN:
        return f"Prometheus query failed: {error}"
    if query.source is QuerySource.INLINE:
        return f"Prometheus query failed for {query.name}: {error}"
    return f"Metric query failed for {query.name}: {error}"


def judge(canary: Canary, query: MetricQuery, outcome: QueryOutcome) -> MetricResult:
    """Compare one answer with the metric's threshold and word the result like Flagger."""
    threshold = threshold_text(query.metric, query.kind)
    if outcome.kind is OutcomeKind.ERROR:
        return MetricResult(
            name=query.name,
            ok=False,
            value=None,
            threshold=threshold,
            message=_error_message(query, outcome.error),
            error=True,
        )
    if outcome.kind is OutcomeKind.NO_VALUES or outcome.value is None or math.isnan(outcome.value):
        return MetricResult(
            name=query.name,
            ok=False,
            value=None,
            threshold=threshold,
            message=_no_values_message(canary, query),
        )
    value = outcome.value
    violation = _violation(query, value)
    if violation is not None:
        relation, bound = violation
        return MetricResult(
            name=query.name,
            ok=False,
            value=value,
            threshold=threshold,
            message=_halt(canary, query, value, relation, bound),
        )
    return MetricResult(
        name=query.name,
        ok=True,
        value=value,
        threshold=threshold,
        message=f"{query.name} {_value_text(query.kind, value)} is within {threshold}",
    )


def plan_error_result(error: QueryPlanError) -> MetricResult:
    """A metric that could not be queried at all: a failed check with Flagger's error text."""
    return MetricResult(
        name=error.name,
        ok=False,
        value=None,
        threshold=threshold_text(error.metric, kind_of(error.metric, None)),
        message=error.message,
        error=True,
    )
