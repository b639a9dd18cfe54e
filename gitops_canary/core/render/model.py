"""The render package's inputs and outputs: what the primary runs, what a step renders from, and
one generated object with its file name.

Kept apart from ``__init__`` so the router modules can import these types without a cycle.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_canary.core.specs import Canary
from gitops_canary.core.status import CanaryStatus

#: Label every generated object carries (DESIGN D8), on top of Flagger's own labels.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "gitops-canary"

#: Flagger's ``-selector-labels`` default: the first of these found in the target's
#: ``spec.selector.matchLabels`` is "the selector label".
SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")

#: Flagger's ``-include-label-prefix`` as its Contour and Gateway API kustomize overlays set it:
#: which target labels (and annotations) are copied onto primary objects.
INCLUDE_LABEL_PREFIXES = ("app.kubernetes.io",)

#: Providers this package renders routes for.
PROVIDERS = ("gatewayapi:v1", "gatewayapi:v1beta1", "contour")


class RenderError(ValueError):
    """The inputs cannot be rendered; the message names the object and the field at fault."""


@dataclass(frozen=True)
class PrimarySource:
    """What the primary runs: the target's pod template and tracked configs as of the last
    promotion.

    ``replicas`` is the target's ``spec.replicas`` as of that promotion. Without an HPA the primary
    keeps it; the target itself is parked at 0 between runs, so its current value cannot be used.
    ``None`` falls back to the target's current ``spec.replicas`` (Flagger's creation path).
    """

    template: Mapping[str, Any]
    configs: Sequence[Mapping[str, Any]]
    revision: str
    replicas: int | None = None


@dataclass(frozen=True)
class RenderInputs:
    """Everything one rendering depends on; the same inputs always give the same objects."""

    canary: Canary
    provider: str
    target: Mapping[str, Any]
    hpa: Mapping[str, Any] | None
    primary: PrimarySource
    status: CanaryStatus
    source_file: str
    ingress_class: str | None = None


@dataclass(frozen=True)
class GeneratedObject:
    """One generated manifest: its file name in ``gitops-canary/<canary>/``, the object, and the
    header comment the file starts with."""

    filename: str
    obj: dict[str, Any]
    header: str = ""
