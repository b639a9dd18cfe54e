"""Turning a discovered canary and a decision into files: one step of a rollout on disk.

Owns the bridge between what discovery read from git and what the pure renderer needs: which pod
template and configs the primary runs (the target's when promoting, the committed ones otherwise),
the render inputs at a given status, and writing the owned directory plus the one-line replicas
edit. The same inputs always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from gitops_canary.core.decisions import Decision
from gitops_canary.core.render import PrimarySource, RenderInputs, render
from gitops_canary.core.status import CanaryStatus
from gitops_canary.repo.discovery import DiscoveredCanary
from gitops_canary.repo.edits import set_replicas
from gitops_canary.repo.layout import write_generated

PRIMARY_SUFFIX = "-primary"


def primary_source(found: DiscoveredCanary, *, promote: bool) -> PrimarySource:
    """What the primary runs after this step.

    When promoting (and at initialization) it is the target's effective pod template and its
    tracked configs as they are in git now. Otherwise it is what the last promotion committed:
    the primary Deployment's template and the ``-primary`` config copies, renamed back so the
    renderer copies them under the same names again.
    """
    assert found.target is not None
    assert found.template is not None
    committed = found.primary_template()
    if promote or committed is None:
        replicas = found.target.data.get("spec", {}).get("replicas")
        return PrimarySource(
            template=found.template,
            configs=tuple(obj.data for obj in found.configs.values()),
            revision=found.revision or "",
            replicas=replicas if isinstance(replicas, int) and replicas > 0 else None,
        )
    configs = []
    for obj in found.committed_config_copies().values():
        name = str(obj.get("metadata", {}).get("name", ""))
        original = dict(obj)
        original["metadata"] = {
            **obj.get("metadata", {}),
            "name": name.removesuffix(PRIMARY_SUFFIX),
        }
        configs.append(original)
    deployment = next(o for o in found.generated.values() if o.get("kind") == "Deployment")
    replicas = deployment.get("spec", {}).get("replicas")
    return PrimarySource(
        template=committed,
        configs=tuple(configs),
        revision=found.status.last_promoted_spec or found.revision or "",
        replicas=replicas if isinstance(replicas, int) else None,
    )


def render_inputs(
    found: DiscoveredCanary,
    status: CanaryStatus,
    *,
    promote: bool,
    ingress_class: str | None = None,
) -> RenderInputs:
    assert found.canary is not None
    assert found.target is not None
    assert found.provider is not None
    return RenderInputs(
        canary=found.canary,
        provider=found.provider,
        target=found.target.data,
        hpa=found.hpa.data if found.hpa else None,
        primary=primary_source(found, promote=promote),
        status=status,
        source_file=found.file,
        ingress_class=ingress_class,
    )


def write_step(
    worktree: Path, found: DiscoveredCanary, decision: Decision, *, ingress_class: str | None = None
) -> list[str]:
    """Write the owned directory and the replicas edit; the repo-relative paths that changed."""
    assert found.canary is not None
    assert found.target is not None
    objects = render(
        render_inputs(found, decision.status, promote=decision.promote, ingress_class=ingress_class)
    )
    changed = [
        p.as_posix()
        for p in write_generated(
            worktree,
            found.canary_dir,
            found.canary.name,
            [(o.filename, o.obj) for o in objects],
            decision.status,
            found.file,
            namespace=found.canary.namespace,
        )
    ]
    if decision.target_replicas is not None and set_replicas(
        worktree / found.target.file, found.target.index, decision.target_replicas.replicas
    ):
        changed.append(found.target.file)
    return changed
