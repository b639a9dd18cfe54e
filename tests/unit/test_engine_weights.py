"""Traffic arithmetic: Flagger's ``nextStepWeight`` and the D8 clamp to ``maxWeight``."""

from __future__ import annotations

from typing import Any

import pytest
from test_engine_support import make_canary

from gitops_canary.core.engine.weights import max_weight, next_step, next_weight, promotion_step


@pytest.mark.parametrize(
    ("analysis", "weight", "step", "after"),
    [
        ({"stepWeight": 10, "maxWeight": 50}, 0, 10, 10),
        ({"stepWeight": 20, "maxWeight": 50}, 40, 20, 50),  # Flagger: 60
        ({"stepWeight": 0, "maxWeight": 50}, 10, 0, 10),
        ({"stepWeights": [1, 2, 10, 80], "stepWeight": None, "maxWeight": None}, 0, 1, 1),
        ({"stepWeights": [1, 2, 10, 80], "stepWeight": None, "maxWeight": None}, 2, 8, 10),
        ({"stepWeights": [1, 2, 10, 200], "stepWeight": None, "maxWeight": None}, 10, 90, 100),
        (
            {"stepWeights": [1, 2, 10, 80], "stepWeight": None, "maxWeight": None},
            5,
            95,
            80,
        ),  # not listed
        ({"stepWeights": [50, 100], "stepWeight": None, "maxWeight": None}, 100, 1, 100),  # no room
        ({"stepWeight": 30, "maxWeight": 150}, 90, 30, 100),  # maxWeight above 100 reads as 100
    ],
)
def test_next_step_and_weight(analysis: dict[str, Any], weight: int, step: int, after: int) -> None:
    spec = make_canary(analysis).spec.analysis
    assert next_step(spec, weight) == step
    assert next_weight(spec, weight) == after
    assert 0 <= after <= max_weight(spec) <= 100


def test_promotion_step() -> None:
    assert promotion_step(50, 100) == (50, 50)
    assert promotion_step(30, 20) == (100, 0)
