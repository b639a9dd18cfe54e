"""Traffic arithmetic: the next canary weight and the promotion steps (reference §3.5, §3.8).

Deviation from Flagger (D8): a step never overshoots ``maxWeight``. Flagger only checks
``canaryWeight < maxWeight`` before adding a step, so stepWeight 20 with maxWeight 50 goes
20, 40, 60; here it goes 20, 40, 50. ``maxWeight`` above 100 is read as 100, so a canary at
100 can always reach promotion (Flagger would advance to 100 forever).

Pure: no I/O.
"""

from __future__ import annotations

from itertools import pairwise

from gitops_canary.core.specs import CanaryAnalysis


def max_weight(analysis: CanaryAnalysis) -> int:
    """Flagger's ``maxWeight`` (last of ``stepWeights``, ``maxWeight``, or 100), at most 100."""
    return max(0, min(100, analysis.effective_max_weight()))


def next_step(analysis: CanaryAnalysis, weight: int) -> int:
    """Flagger's ``nextStepWeight``: how much to add to the canary weight ``weight``.

    With ``stepWeight`` (or without ``stepWeights``) it is ``stepWeight``. With ``stepWeights``
    it is the distance to the next listed weight, or to 100 when ``weight`` is not listed.
    """
    step = analysis.step_weight or 0
    steps = analysis.step_weights or []
    if step > 0 or not steps:
        return step
    room = 100 - weight
    if room <= 0:
        return 1
    if weight == 0:
        return min(room, steps[0])
    for current, following in pairwise(steps):
        if weight == current:
            return min(room, following - weight)
    return room


def next_weight(analysis: CanaryAnalysis, weight: int) -> int:
    """The canary weight after one step: never above ``maxWeight`` (D8), never below 0."""
    return max(0, min(weight + next_step(analysis, weight), max_weight(analysis)))


def promotion_step(step_weight_promotion: int, canary_weight: int) -> tuple[int, int]:
    """One ``Promoting`` step: ``(primary, canary)`` after moving ``step_weight_promotion``."""
    primary = min(100, 100 - canary_weight + step_weight_promotion)
    return primary, max(0, canary_weight - step_weight_promotion)
