"""Has the applier (Flux, Argo CD, or nothing but the live objects) applied a given commit?

Each applier answers :meth:`applied` with an :class:`AppliedState`. A commit counts as applied
when the applier reports that commit, or a descendant of it (someone may have pushed after us),
and says it is done with it (gitops-anchors.md §1.7, §5 point 3):

- Flux ``Kustomization``: ``status.lastAppliedRevision`` (``main@sha1:<sha>``, ``sha1:<sha>``,
  legacy ``main/<sha>``), ``Ready=True`` and ``observedGeneration == metadata.generation``.
- Argo CD ``Application``: ``status.sync.revision`` (or ``revisions[]``), ``Synced``,
  ``Healthy``, no ``operation`` in flight, ``reconciledAt`` not before
  ``operationState.finishedAt``, no ``ComparisonError``/``InvalidSpecError`` condition.
- Compare-live: every committed object exists and carries the committed values.

Ancestry comes from the caller (``is_ancestor(ancestor, descendant)``, backed by the repo), so
this adapter never touches git. Cluster failures propagate as
:class:`~gitops_canary.observe.cluster.ClusterError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gitops_canary.observe.cluster import ClusterReader, first_difference, parse_time

IsAncestor = Callable[[str, str], bool]

_SHA = re.compile(r"^[0-9a-f]{7,64}$")


@dataclass(frozen=True)
class AppliedState:
    """The applier's answer: ``applied_at`` is when it finished, if it says; ``revision`` is
    the commit it reports having applied; ``message`` is for the operator."""

    applied: bool
    applied_at: datetime | None
    revision: str | None
    message: str


class Applier(Protocol):
    def applied(
        self,
        commit: str,
        is_ancestor: IsAncestor,
        expected_objects: Sequence[Mapping[str, Any]] | None = None,
    ) -> AppliedState: ...


def short(sha: str | None) -> str:
    return sha[:7] if sha else "nothing"


def parse_flux_revision(revision: Any) -> str | None:
    """The commit in a Flux revision string, lower-case; ``None`` if it names none.

    ``main@sha1:<sha>``, ``v1.0.0@sha1:<sha>``, ``sha1:<sha>`` (source-controller >= 0.35) and
    the legacy ``main/<sha>`` / ``HEAD/<sha>``.
    """
    if not isinstance(revision, str) or not revision:
        return None
    sha = revision.rsplit("@", 1)[-1]
    if ":" in sha:
        sha = sha.split(":", 1)[1]
    elif "/" in sha:
        sha = sha.rsplit("/", 1)[1]
    sha = sha.strip().lower()
    return sha if _SHA.match(sha) else None


def _includes(commit: str, applied_sha: str, is_ancestor: IsAncestor) -> bool:
    """``applied_sha`` is ``commit`` or a descendant of it."""
    commit, applied_sha = commit.lower(), applied_sha.lower()
    if applied_sha == commit or (len(applied_sha) < len(commit) and commit.startswith(applied_sha)):
        return True
    return is_ancestor(commit, applied_sha)


def _condition(status: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    return next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == condition_type),
        None,
    )


def _generation(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class FluxKustomizationApplier:
    """Reads a Flux ``Kustomization`` (kustomize.toolkit.fluxcd.io/v1)."""

    def __init__(self, reader: ClusterReader, namespace: str, name: str) -> None:
        self._reader = reader
        self.namespace = namespace
        self.name = name

    @property
    def label(self) -> str:
        return f"Flux Kustomization {self.namespace}/{self.name}"

    def applied(
        self,
        commit: str,
        is_ancestor: IsAncestor,
        expected_objects: Sequence[Mapping[str, Any]] | None = None,
    ) -> AppliedState:
        obj = self._reader.get(
            "kustomize.toolkit.fluxcd.io/v1", "Kustomization", self.namespace, self.name
        )
        return flux_applied_state(self.label, obj, commit, is_ancestor)


def _health_check_failed(
    label: str, status: Mapping[str, Any], commit: str, is_ancestor: IsAncestor
) -> AppliedState | None:
    """With ``wait: true`` or ``healthChecks``, Flux applies a revision but does not record it in
    ``lastAppliedRevision`` until the workloads are healthy. A canary that never becomes ready
    would then never count as applied, and its progress deadline would never roll it back. The
    objects *are* applied, so when Ready is False for a failed health check of a revision that
    includes the commit, the step counts as applied; the engine's own readiness check decides.
    """
    ready = _condition(status, "Ready")
    if (
        ready is None
        or ready.get("status") != "False"
        or ready.get("reason") != "HealthCheckFailed"
    ):
        return None
    attempted = parse_flux_revision(status.get("lastAttemptedRevision"))
    if attempted is None or not _includes(commit, attempted, is_ancestor):
        return None
    return AppliedState(
        True,
        parse_time(ready.get("lastTransitionTime")),
        attempted,
        f"{label} has applied {short(attempted)}; its health check fails: "
        f"{ready.get('message', '')}",
    )


def flux_applied_state(
    label: str, obj: Mapping[str, Any] | None, commit: str, is_ancestor: IsAncestor
) -> AppliedState:
    """The Flux rules on a Kustomization dict (pure apart from ``is_ancestor``)."""
    if obj is None:
        return AppliedState(False, None, None, f"{label} does not exist in the cluster")
    status = obj.get("status") or {}
    raw_revision = status.get("lastAppliedRevision")
    applied_sha = parse_flux_revision(raw_revision)
    waiting = f"waiting for {label} to apply {short(commit)}"
    health_failed = _health_check_failed(label, status, commit, is_ancestor)
    if health_failed is not None:
        return health_failed
    if applied_sha is None:
        if raw_revision:
            why = f"cannot read its lastAppliedRevision {raw_revision!r}"
        else:
            why = "it has not applied anything yet"
        return AppliedState(False, None, None, f"{waiting} ({why})")
    if not _includes(commit, applied_sha, is_ancestor):
        return AppliedState(
            False, None, applied_sha, f"{waiting} (it has applied {short(applied_sha)})"
        )
    generation = _generation((obj.get("metadata") or {}).get("generation"))
    observed = _generation(status.get("observedGeneration"))
    if generation is not None and observed != generation:
        return AppliedState(
            False,
            None,
            applied_sha,
            f"{waiting} (it has not yet reconciled its own latest spec: observed generation "
            f"{observed}, current generation {generation})",
        )
    ready = _condition(status, "Ready")
    if ready is None or ready.get("status") != "True":
        state = "no Ready condition" if ready is None else f"Ready is {ready.get('status')}"
        detail = ": ".join(str(ready[k]) for k in ("reason", "message") if ready and ready.get(k))
        return AppliedState(
            False,
            None,
            applied_sha,
            f"{waiting} (it has applied {short(applied_sha)} but has {state}"
            + (f": {detail})" if detail else ")"),
        )
    # Flux moves Ready's lastTransitionTime when the revision in its message changes.
    applied_at = parse_time(ready.get("lastTransitionTime"))
    return AppliedState(
        True, applied_at, applied_sha, f"{label} has applied {short(applied_sha)} and is Ready"
    )


class ArgoApplicationApplier:
    """Reads an Argo CD ``Application`` (argoproj.io/v1alpha1)."""

    def __init__(self, reader: ClusterReader, namespace: str, name: str) -> None:
        self._reader = reader
        self.namespace = namespace
        self.name = name

    @property
    def label(self) -> str:
        return f"Argo CD Application {self.namespace}/{self.name}"

    def applied(
        self,
        commit: str,
        is_ancestor: IsAncestor,
        expected_objects: Sequence[Mapping[str, Any]] | None = None,
    ) -> AppliedState:
        obj = self._reader.get("argoproj.io/v1alpha1", "Application", self.namespace, self.name)
        return argo_applied_state(self.label, obj, commit, is_ancestor)


def _argo_revisions(section: Any) -> list[str]:
    if not isinstance(section, Mapping):
        return []
    found = [section.get("revision"), *(section.get("revisions") or [])]
    return [r.lower() for r in found if isinstance(r, str) and _SHA.match(r.lower())]


_ARGO_BLOCKING_CONDITIONS = ("ComparisonError", "InvalidSpecError")


def argo_applied_state(
    label: str, obj: Mapping[str, Any] | None, commit: str, is_ancestor: IsAncestor
) -> AppliedState:
    """The Argo CD rules on an Application dict (pure apart from ``is_ancestor``)."""
    if obj is None:
        return AppliedState(False, None, None, f"{label} does not exist in the cluster")
    status = obj.get("status") or {}
    sync = status.get("sync") or {}
    waiting = f"waiting for {label} to apply {short(commit)}"
    revisions = _argo_revisions(sync)
    if not revisions:
        return AppliedState(False, None, None, f"{waiting} (it reports no synced revision yet)")
    matching = next((r for r in revisions if _includes(commit, r, is_ancestor)), None)
    if matching is None:
        return AppliedState(
            False, None, revisions[0], f"{waiting} (it has synced {short(revisions[0])})"
        )

    def not_yet(why: str) -> AppliedState:
        return AppliedState(False, None, matching, f"{waiting} ({why})")

    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") in _ARGO_BLOCKING_CONDITIONS:
            return not_yet(f"{condition.get('type')}: {condition.get('message', '')}".rstrip(": "))
    if obj.get("operation"):
        return not_yet("a sync operation is queued or running")
    operation_state = status.get("operationState") or {}
    if operation_state.get("phase") in ("Running", "Terminating"):
        return not_yet(f"its sync operation is {operation_state.get('phase')}")
    if sync.get("status") != "Synced":
        return not_yet(f"sync status is {sync.get('status') or 'unknown'}, not Synced")
    health = (status.get("health") or {}).get("status")
    if health != "Healthy":
        return not_yet(f"health is {health or 'unknown'}, not Healthy")
    finished_at = parse_time(operation_state.get("finishedAt"))
    reconciled_at = parse_time(status.get("reconciledAt"))
    if finished_at is not None and (reconciled_at is None or reconciled_at < finished_at):
        return not_yet("it has not compared the cluster since its last sync finished")
    # The last sync may predate this commit (a commit that changes nothing this app renders
    # needs no sync); then its time says nothing about this commit.
    synced_by_operation = _argo_revisions(operation_state.get("syncResult"))
    applied_at = (
        finished_at if any(_includes(commit, r, is_ancestor) for r in synced_by_operation) else None
    )
    return AppliedState(
        True, applied_at, matching, f"{label} has synced {short(matching)} and is Healthy"
    )


class CompareLiveApplier:
    """No applier to ask: the commit is applied when the live objects carry its values."""

    def __init__(self, reader: ClusterReader) -> None:
        self._reader = reader

    def applied(
        self,
        commit: str,
        is_ancestor: IsAncestor,
        expected_objects: Sequence[Mapping[str, Any]] | None = None,
    ) -> AppliedState:
        """Every expected object exists and each committed field has its committed value.

        Only the fields present in the committed object are compared (``metadata.labels``,
        ``metadata.annotations`` and every top-level field but ``status``), so server defaults
        do not count. ``applied_at`` is ``None``: the caller uses when it first saw a match.
        """
        waiting = f"waiting for the cluster to match commit {short(commit)}"
        if not expected_objects:
            return AppliedState(False, None, None, f"{waiting} (no objects to compare given)")
        for expected in expected_objects:
            api_version, kind = expected.get("apiVersion"), expected.get("kind")
            metadata = expected.get("metadata") or {}
            name, namespace = metadata.get("name"), metadata.get("namespace")
            if not isinstance(api_version, str) or not isinstance(kind, str):
                return AppliedState(False, None, None, f"{waiting} (an object has no kind)")
            if not isinstance(name, str):
                return AppliedState(False, None, None, f"{waiting} ({kind} has no name)")
            where = f"{namespace}/{name}" if namespace else name
            live = self._reader.get(api_version, kind, namespace, name)
            if live is None:
                return AppliedState(False, None, None, f"{waiting} ({kind} {where} does not exist)")
            differs = first_difference(_comparable(expected), _comparable(live))
            if differs is not None:
                return AppliedState(
                    False, None, None, f"{waiting} ({kind} {where} differs at {differs})"
                )
        return AppliedState(
            True, None, commit, f"the cluster matches commit {short(commit)} (compared live)"
        )


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    compared: dict[str, Any] = {
        k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")
    }
    meta = {k: metadata[k] for k in ("labels", "annotations") if k in metadata}
    if meta:
        compared["metadata"] = meta
    return compared
