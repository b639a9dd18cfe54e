"""Scenario files: how the simulated cluster behaves (speed, traffic, and what each image does).

A scenario is a small YAML file. It says how fast Deployments roll out, how many requests each
route receives, which share of requests carry the A/B header, and per container image the error
rate, the latency and whether its pods ever become ready. Everything has a default, so an empty
file (or no file) is a valid scenario. Bad input raises :class:`ScenarioError` naming the file
and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Behaviour:
    """What the pods of one image do: error share, latency percentiles, readiness."""

    error_rate: float = 0.0
    latency_p50_ms: float = 15.0
    latency_p99_ms: float = 60.0
    never_ready: bool = False

    @property
    def latency_sigma(self) -> float:
        """Sigma of the log-normal latency whose median is p50 and 99th percentile is p99."""
        # 2.326 is the standard normal's 99th percentile.
        return math.log(self.latency_p99_ms / self.latency_p50_ms) / 2.3263478740408408


@dataclass(frozen=True)
class Scenario:
    """The whole scenario; :meth:`behaviour_for` resolves an image to its behaviour."""

    time_factor: float = 1.0
    rollout_seconds: float = 2.0
    requests_per_second: float = 20.0
    header_share: float = 0.1
    headers: Mapping[str, str] = field(default_factory=lambda: {"x-canary": "insider"})
    returning_client_share: float = 0.5
    seed: int = 1
    images: Mapping[str, Behaviour] = field(default_factory=dict)
    default: Behaviour = field(default_factory=Behaviour)
    source: str = "<built-in defaults>"

    def behaviour_for(self, image: str) -> Behaviour:
        return self.images.get(image, self.default)

    def describe(self) -> str:
        """One line for the operator: where the scenario came from and its speed."""
        return (
            f"scenario {self.source}: time factor {self.time_factor:g} (progress deadlines are "
            f"divided by it), rollouts take {self.rollout_seconds:g}s, "
            f"{self.requests_per_second:g} requests/s per route"
        )


_TOP_LEVEL = {
    "timeFactor",
    "rolloutSeconds",
    "requestsPerSecond",
    "headerShare",
    "returningClientShare",
    "seed",
    "images",
    "default",
}
_BEHAVIOUR_FIELDS = {"errorRate", "latencyMs", "neverReady"}


class _Reader:
    """Validates one file's parsed content, naming ``<file>: <field>`` in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"scenario file {self.source}: field {where}: {problem}")

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"must be a number, got {value!r}")
        number = float(value)
        too_low = number <= minimum if exclusive_minimum else number < minimum
        if too_low or (maximum is not None and number > maximum):
            bounds = f"{'above' if exclusive_minimum else 'at least'} {minimum:g}"
            if maximum is not None:
                bounds += f" and at most {maximum:g}"
            raise self.fail(where, f"must be {bounds}, got {value!r}")
        return number

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__} {value!r}")
        result = {str(k): v for k, v in value.items()}
        if allowed is not None:
            unknown = sorted(set(result) - allowed)
            if unknown:
                raise self.fail(
                    f"{where}.{unknown[0]}" if where else unknown[0],
                    f"unknown field (known fields: {', '.join(sorted(allowed))})",
                )
        return result

    def behaviour(self, value: Any, where: str, base: Behaviour) -> Behaviour:
        data = self.mapping(value, where, _BEHAVIOUR_FIELDS)
        error_rate = self.number(
            data, "errorRate", f"{where}.errorRate", base.error_rate, maximum=1.0
        )
        latency = self.mapping(data.get("latencyMs"), f"{where}.latencyMs", {"p50", "p99"})
        p50 = self.number(
            latency, "p50", f"{where}.latencyMs.p50", base.latency_p50_ms, exclusive_minimum=True
        )
        p99 = self.number(
            latency, "p99", f"{where}.latencyMs.p99", base.latency_p99_ms, exclusive_minimum=True
        )
        if p99 < p50:
            raise self.fail(
                f"{where}.latencyMs.p99", f"must not be below p50 ({p50:g}), got {p99:g}"
            )
        never_ready = data.get("neverReady", base.never_ready)
        if not isinstance(never_ready, bool):
            raise self.fail(f"{where}.neverReady", f"must be true or false, got {never_ready!r}")
        return Behaviour(error_rate, p50, p99, never_ready)


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate parsed YAML content; ``source`` names the file in error messages."""
    reader = _Reader(source)
    top = reader.mapping(data, "", _TOP_LEVEL)
    defaults = Scenario()
    header_data = reader.mapping(top.get("headerShare"), "headerShare")
    header_share = reader.number(
        header_data, "share", "headerShare.share", defaults.header_share, maximum=1.0
    )
    headers: dict[str, str] = dict(defaults.headers)
    named = {k: v for k, v in header_data.items() if k != "share"}
    if named:
        headers = {}
        for name, value in named.items():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise reader.fail(f"headerShare.{name}", f"must be a header value, got {value!r}")
            headers[name.lower()] = str(value)
    seed = top.get("seed", defaults.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise reader.fail("seed", f"must be an integer, got {seed!r}")
    default = reader.behaviour(top.get("default"), "default", Behaviour())
    images: dict[str, Behaviour] = {}
    for image, behaviour in reader.mapping(top.get("images"), "images").items():
        images[image] = reader.behaviour(behaviour, f"images.{image!r}", default)
    return Scenario(
        time_factor=reader.number(
            top, "timeFactor", "timeFactor", defaults.time_factor, exclusive_minimum=True
        ),
        rollout_seconds=reader.number(
            top, "rolloutSeconds", "rolloutSeconds", defaults.rollout_seconds
        ),
        requests_per_second=reader.number(
            top, "requestsPerSecond", "requestsPerSecond", defaults.requests_per_second
        ),
        header_share=header_share,
        headers=headers,
        returning_client_share=reader.number(
            top,
            "returningClientShare",
            "returningClientShare",
            defaults.returning_client_share,
            maximum=1.0,
        ),
        seed=seed,
        images=images,
        default=default,
        source=source,
    )


def load_scenario(path: Path | str | None) -> Scenario:
    """Read a scenario file; ``None`` gives the built-in defaults."""
    if path is None:
        return Scenario()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read scenario file {file}: {error.strerror}") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise ScenarioError(f"scenario file {file} is not valid YAML: {error}") from None
    return parse_scenario(data, str(file))
