"""Rendering is deterministic (DESIGN D3): the same inputs give the same bytes, whatever the key
order of the mappings they arrive in."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_render_support import CASES, GW, dump, make_inputs, session

from gitops_canary.core.render import PrimarySource, render
from gitops_canary.core.specs import Canary


def reversed_keys(value: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def reordered(inputs: Any) -> Any:
    canary_dict = inputs.canary.model_dump(by_alias=True, exclude_none=True)
    return replace(
        inputs,
        canary=Canary.model_validate(reversed_keys(canary_dict)),
        target=reversed_keys(dict(inputs.target)),
        hpa=reversed_keys(dict(inputs.hpa)) if inputs.hpa is not None else None,
        primary=PrimarySource(
            template=reversed_keys(dict(inputs.primary.template)),
            configs=[reversed_keys(dict(c)) for c in reversed(inputs.primary.configs)],
            revision=inputs.primary.revision,
        ),
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_whatever_the_key_order(name: str) -> None:
    first = dump(render(CASES[name]))
    assert dump(render(CASES[name])) == first
    assert dump(render(reordered(CASES[name]))) == first


def test_same_bytes_with_reordered_headers_configs_and_labels() -> None:
    canary = session(GW)
    canary["spec"]["service"]["headers"] = {"request": {"set": {"b": "2", "a": "1", "c": "3"}}}
    canary["spec"]["analysis"]["match"] = [
        {"headers": {"x-b": {"exact": "2"}, "x-a": {"exact": "1"}}}
    ]
    canary["spec"]["analysis"]["iterations"] = 5
    configs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "b"},
            "data": {"y": "", "x": ""},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"z": "1"}}},
    ]
    inputs = make_inputs(
        canary, "gatewayapi:v1", 100, configs=configs, session_affinity_cookie="flagger-cookie=Q"
    )
    assert dump(render(reordered(inputs))) == dump(render(inputs))
