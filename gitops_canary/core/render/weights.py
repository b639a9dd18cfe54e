"""The route weights a status asks for. Pure: no I/O."""

from __future__ import annotations

from gitops_canary.core.render.model import RenderError
from gitops_canary.core.status import CanaryStatus


def route_weights(status: CanaryStatus) -> tuple[int, int]:
    """``(primary, canary)`` for the weighted rule (the match rule in A/B).

    ``status.canaryWeight`` is the canary's share of the routed traffic: 0-100 for a canary run,
    100 during A/B iterations and for blue/green's final switch.
    """
    canary = status.canary_weight
    if not 0 <= canary <= 100:
        raise RenderError(f"status.canaryWeight must be between 0 and 100, got {canary}")
    return 100 - canary, canary
