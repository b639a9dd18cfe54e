"""Read-only access to the Kubernetes API, and Flagger's readiness rules for what it reads.

:class:`ClusterReader` gets and lists objects through the official ``kubernetes`` client (a
kubeconfig or the in-cluster service account) and hands back plain dicts. It never writes: the
only HTTP verb it sends is GET, and the RBAC in ``config/rbac.yaml`` grants get/list/watch on
exactly :data:`READ_RESOURCES`. Every call has a short timeout and no retries; any failure raises
one :class:`ClusterError` that names the verb, the object and what the server said, so the caller
reports it once and makes no decision for that canary this tick.

The readiness functions are pure (the dict in, a :class:`Readiness` out, ``now`` a parameter):
:func:`deployment_readiness` follows Flagger's ``isDeploymentReady`` (flagger-behaviour.md §3.4)
and :func:`route_readiness` Flagger's Gateway API parent check (§4.4.3).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from gitops_canary.core.observations import READY, Readiness

DEFAULT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Resource:
    """A kind gitops-canary reads, with its REST plural and scope."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


# Everything gitops-canary reads. ``config/rbac.yaml`` must grant read access to exactly these
# (a test checks it); Secrets are read for a MetricTemplate's ``secretRef``.
READ_RESOURCES: tuple[Resource, ...] = (
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Resource("v1", "Service", "services"),
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Secret", "secrets"),
    Resource("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    Resource("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "httproutes"),
    Resource("projectcontour.io/v1", "HTTPProxy", "httpproxies"),
    Resource("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "kustomizations"),
    Resource("argoproj.io/v1alpha1", "Application", "applications"),
)
_BY_TYPE = {(r.api_version, r.kind): r for r in READ_RESOURCES}


class ClusterError(Exception):
    """The cluster could not answer; the message says what was asked and what the server said."""


def _resource_for(api_version: str, kind: str) -> Resource:
    found = _BY_TYPE.get((api_version, kind))
    if found is None:
        readable = ", ".join(f"{r.api_version} {r.kind}" for r in READ_RESOURCES)
        raise ClusterError(
            f"gitops-canary does not read apiVersion {api_version!r} kind {kind!r} "
            f"(it reads: {readable})"
        )
    return found


def _server_text(status: int, reason: str, body: bytes) -> str:
    """``403 Forbidden: <the Status message>`` or the start of whatever else came back."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = parsed["message"]
    elif len(text) > 200:
        text = text[:200] + "..."
    return f"{status} {reason}: {text}" if text else f"{status} {reason}"


def _api_client(configuration: k8s_client.Configuration) -> k8s_client.ApiClient:
    # No retries: a slow or failing server is reported this tick and asked again the next one,
    # so one call never takes longer than its timeout.
    configuration.retries = False
    return k8s_client.ApiClient(configuration)


class ClusterReader:
    """Gets and lists Kubernetes objects as plain dicts. Never writes."""

    def __init__(
        self, api_client: k8s_client.ApiClient, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self._api = api_client
        self._timeout = timeout_seconds

    @classmethod
    def from_kubeconfig(
        cls,
        path: Path | str,
        context: str | None = None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> ClusterReader:
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as error:
            which = f" (context {context!r})" if context else ""
            raise ClusterError(f"cannot load kubeconfig {path}{which}: {error}") from None
        return cls(_api_client(configuration), timeout_seconds=timeout_seconds)

    @classmethod
    def in_cluster(cls, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> ClusterReader:
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except (ConfigException, OSError) as error:
            raise ClusterError(
                f"cannot use the in-cluster service account (is gitops-canary running in a "
                f"pod?): {error}"
            ) from None
        return cls(_api_client(configuration), timeout_seconds=timeout_seconds)

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # -- reading ---------------------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object as a dict, or ``None`` when the server says 404."""
        resource = _resource_for(api_version, kind)
        where = f"{namespace}/{name}" if resource.namespaced else name
        path = self._collection_path(resource, namespace) + f"/{name}"
        return self._request(path, {}, f"get {resource.plural} {where}", missing_ok=True)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of one kind in ``namespace`` (``None``: all namespaces)."""
        resource = _resource_for(api_version, kind)
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        query = {"labelSelector": label_selector} if label_selector else {}
        found = self._request(
            self._collection_path(resource, namespace), query, f"list {resource.plural} {where}"
        )
        items = found.get("items") if found else None
        if not isinstance(items, list):
            raise ClusterError(f"cannot list {resource.plural} {where}: the answer has no items")
        return [item for item in items if isinstance(item, dict)]

    # Pure rules, also reachable from a reader for convenience.
    @staticmethod
    def deployment_readiness(
        dep: Mapping[str, Any] | None,
        *,
        name_prefix: str,
        threshold_percent: int,
        deadline_seconds: int,
        now: datetime,
    ) -> Readiness:
        return deployment_readiness(
            dep,
            name_prefix=name_prefix,
            threshold_percent=threshold_percent,
            deadline_seconds=deadline_seconds,
            now=now,
        )

    @staticmethod
    def route_readiness(route: Mapping[str, Any] | None) -> Readiness:
        return route_readiness(route)

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _collection_path(resource: Resource, namespace: str | None) -> str:
        base = f"/apis/{resource.api_version}" if resource.group else f"/api/{resource.api_version}"
        if resource.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{resource.plural}"
        return f"{base}/{resource.plural}"

    def _request(
        self, path: str, query: Mapping[str, str], what: str, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        request = self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            body = response.read()  # type: ignore[no-untyped-call]
        except urllib3.exceptions.NewConnectionError as error:
            # Checked first: urllib3 makes it a subclass of its connect-timeout error.
            raise ClusterError(f"cannot {what}: cannot reach {self.server}: {error}") from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise ClusterError(
                f"cannot {what}: {self.server} did not answer within {self._timeout:g}s"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ClusterError(f"cannot {what}: cannot reach {self.server}: {error}") from None
        except k8s_client.ApiException as error:
            reason = error.reason or "no answer"
            raise ClusterError(f"cannot {what}: {reason}") from None
        status = int(response.status)
        if status == 404 and missing_ok:
            return None
        if not 200 <= status <= 299:
            reason = response.reason or ""
            raise ClusterError(f"cannot {what}: {_server_text(status, reason, body or b'')}")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise ClusterError(f"cannot {what}: the answer is not JSON") from None
        if not isinstance(parsed, dict):
            raise ClusterError(f"cannot {what}: the answer is not a JSON object")
        return parsed


# -- readiness rules (pure) ----------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _condition(status: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    return next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == condition_type),
        None,
    )


_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from a status field, or ``None`` when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def ready_threshold_replicas(updated_replicas: int, threshold_percent: int) -> int:
    """``int32(float32(updated) * float32(threshold)/float32(100))`` as Flagger computes it.

    Flagger multiplies in 32-bit floats, so e.g. 53% of 100 replicas is 52, not 53; each
    operation is rounded to float32 to give the same count.
    """
    ratio = _float32(_float32(float(threshold_percent)) / _float32(100.0))
    return int(_float32(_float32(float(updated_replicas)) * ratio))


def deployment_readiness(
    dep: Mapping[str, Any] | None,
    *,
    name_prefix: str,
    threshold_percent: int,
    deadline_seconds: int,
    now: datetime,
) -> Readiness:
    """Flagger's ``isDeploymentReady`` (flagger-behaviour.md §3.4) on a Deployment dict.

    ``name_prefix`` is Flagger's message prefix: ``"podinfo-primary.test not ready: "`` for the
    primary, ``"canary deployment podinfo.test not ready: "`` for the target. ``retriable=False``
    means the rollout is stuck past its deadline. Flagger acts on that only for the canary
    (``IsPrimaryReady`` drops it and just waits); the caller decides.

    As in Flagger, the Available/``MinimumReplicasUnavailable`` deadline rule applies only when
    a Progressing condition exists, and a missing ``lastUpdateTime`` counts as long past.
    """
    if dep is None:
        return Readiness(ready=False, retriable=True, message=f"{name_prefix}deployment not found")
    metadata = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}

    def not_ready(message: str, *, retriable: bool = True) -> Readiness:
        return Readiness(ready=False, retriable=retriable, message=name_prefix + message)

    if _int(metadata.get("generation")) > _int(status.get("observedGeneration")):
        return not_ready(
            "waiting for rollout to finish: observed deployment generation less than desired "
            "generation"
        )

    retriable = True
    progressing = _condition(status, "Progressing")
    if progressing is not None:
        available = _condition(status, "Available")
        if (
            available is not None
            and available.get("status") == "False"
            and available.get("reason") == "MinimumReplicasUnavailable"
        ):
            since = parse_time(available.get("lastUpdateTime")) or _GO_ZERO_TIME
            now_utc = now if now.tzinfo else now.replace(tzinfo=UTC)
            retriable = not since + timedelta(seconds=deadline_seconds) < now_utc

    desired = spec.get("replicas")
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available_replicas = _int(status.get("availableReplicas"))
    needed = ready_threshold_replicas(updated, threshold_percent)

    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        name = metadata.get("name", "")
        return not_ready(f'deployment "{name}" exceeded its progress deadline', retriable=False)
    if isinstance(desired, int) and updated < desired:
        return not_ready(
            f"waiting for rollout to finish: {updated} out of {desired} new replicas have been "
            "updated",
            retriable=retriable,
        )
    if replicas > updated:
        return not_ready(
            f"waiting for rollout to finish: {replicas - updated} old replicas are pending "
            "termination",
            retriable=retriable,
        )
    if available_replicas < needed:
        return not_ready(
            f"waiting for rollout to finish: {available_replicas} of {needed} (readyThreshold "
            f"{threshold_percent}%) updated replicas are available",
            retriable=retriable,
        )
    return READY


_PARENT_REF_DEFAULTS = {"group": "gateway.networking.k8s.io", "kind": "Gateway"}


def _defaulted_parent_ref(ref: Any) -> Any:
    """A parentRef with the CRD defaults filled in, as the API server stores it.

    A real API server has already defaulted ``group`` and ``kind``; filling them here keeps the
    deep-equality rule the same for objects that were never defaulted (the simulator, tests).
    """
    if not isinstance(ref, Mapping):
        return ref
    return {**_PARENT_REF_DEFAULTS, **ref}


def route_readiness(route: Mapping[str, Any] | None) -> Readiness:
    """Whether a route object is in effect: HTTPRoute per Flagger, HTTPProxy by its status.

    HTTPRoute (flagger-behaviour.md §4.4.3): for each ``spec.parentRefs`` entry, every
    ``status.parents`` entry whose ``parentRef`` is deeply equal to it must have its
    ``Accepted`` condition ``True`` with ``observedGeneration >= metadata.generation``. Parents
    whose ``parentRef`` differs (another ``sectionName``, say) are ignored, as Flagger does.

    HTTPProxy: Flagger does not check it. Here it is ready when ``status.currentStatus`` is
    ``valid``, or when there is no status at all (no Contour controller writes one, e.g. the
    simulator without Contour); ``invalid``, ``orphaned`` or ``NotReconciled`` mean not ready.
    """
    if route is None:
        return Readiness(ready=False, retriable=True, message="the route object does not exist")
    kind = route.get("kind")
    metadata = route.get("metadata") or {}
    dotted = f"{metadata.get('name', '')}.{metadata.get('namespace', '')}"
    status = route.get("status")
    if kind == "HTTPProxy":
        if not isinstance(status, Mapping) or not status:
            return READY
        current = status.get("currentStatus")
        if current == "valid":
            return READY
        description = status.get("description") or "no description"
        return Readiness(
            ready=False,
            retriable=True,
            message=f"HTTPProxy {dotted} is not valid (status: {current}: {description})",
        )

    generation = _int(metadata.get("generation"))
    spec_refs = (route.get("spec") or {}).get("parentRefs") or []
    parents = (status.get("parents") if isinstance(status, Mapping) else None) or []
    for spec_ref in spec_refs:
        wanted = _defaulted_parent_ref(spec_ref)
        for parent in parents:
            if not isinstance(parent, Mapping):
                continue
            if _defaulted_parent_ref(parent.get("parentRef")) != wanted:
                continue
            accepted = _condition(parent, "Accepted")
            if accepted is None:
                continue
            observed = _int(accepted.get("observedGeneration"))
            if accepted.get("status") != "True" or observed < generation:
                parent_name = (parent.get("parentRef") or {}).get("name", "")
                return Readiness(
                    ready=False,
                    retriable=True,
                    message=(
                        f"HTTPRoute {dotted} parent {parent_name} is not ready "
                        f"(status: {accepted.get('status')}, observed generation: {observed}, "
                        f"current generation: {generation})"
                    ),
                )
    return READY


def first_difference(committed: Any, live: Any, path: str = "") -> str | None:
    """The first path where ``live`` does not carry ``committed``'s values, or ``None``.

    Only keys present in ``committed`` count, so fields the server adds (defaults, status,
    metadata) never make a difference. Lists must have the same length.
    """
    if isinstance(committed, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for key, value in committed.items():
            here = f"{path}.{key}" if path else str(key)
            if key not in live:
                return here
            found = first_difference(value, live[key], here)
            if found is not None:
                return found
        return None
    if isinstance(committed, Sequence) and not isinstance(committed, str):
        if not isinstance(live, Sequence) or isinstance(live, str) or len(live) != len(committed):
            return path or "."
        for index, (want, have) in enumerate(zip(committed, live, strict=True)):
            found = first_difference(want, have, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if committed == live else (path or ".")
