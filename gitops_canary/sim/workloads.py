"""The simulated controllers: Deployments that roll out, and routes that a gateway accepts.

:class:`WorkloadController` ticks a few times a second. For each Deployment it plays the
Deployment controller and the kubelet together: after a spec change ``observedGeneration``
catches up, pods of the new template become ready over ``rolloutSeconds`` while old pods are
retired, and the status carries Kubernetes' own conditions and reasons (``NewReplicaSetAvailable``,
``MinimumReplicasUnavailable``, ``ProgressDeadlineExceeded``). An image marked ``neverReady`` in the
scenario never gets ready pods, so the progress deadline (divided by the scenario's time factor)
expires. It also writes HTTPRoute parent status (``Accepted``) and HTTPProxy status (``valid``) a
moment after each change, as a gateway controller would. The ready pods it computes are what the
traffic simulator sends requests to.

Nothing here runs containers: pods are names with labels and an image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitops_canary.sim.scenario import Scenario
from gitops_canary.sim.store import Store

log = logging.getLogger(__name__)

#: The controller name the simulated gateway writes into HTTPRoute parent status.
GATEWAY_CONTROLLER_NAME = "sim.gitops-canary.io/gateway-controller"

# Kubernetes' alphabet for generated name suffixes (no vowels, no look-alike characters).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DEFAULT_PROGRESS_DEADLINE_SECONDS = 600.0
_ROUTE_KINDS = (
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("projectcontour.io/v1", "HTTPProxy"),
)


@dataclass(frozen=True)
class Pod:
    """A simulated ready pod: enough to select it by labels and know what it runs."""

    namespace: str
    name: str
    deployment: str
    image: str
    labels: Mapping[str, str]


def template_hash(template: Any) -> str:
    """10 hex characters that identify a pod template (stable across runs)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def pod_name(deployment: str, pod_template_hash: str, index: int) -> str:
    """``<deployment>-<template hash>-<5 chars>``, the same for the same template and index."""
    digest = hashlib.sha256(f"{deployment}/{pod_template_hash}/{index}".encode()).digest()
    suffix = "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:5])
    return f"{deployment}-{pod_template_hash}-{suffix}"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_image(template: Mapping[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or []
    if containers and isinstance(containers[0], Mapping):
        return str(containers[0].get("image", ""))
    return ""


@dataclass
class _PodSet:
    """Pods of one template: identity plus how many are ready."""

    hash: str
    image: str
    labels: dict[str, str]
    ready: float = 0.0


@dataclass
class _Rollout:
    """What the simulated Deployment controller remembers about one Deployment."""

    current: _PodSet
    desired: int
    started_at: float
    retiring: _PodSet | None = None
    retiring_count: int = 0
    last_tick: float = 0.0
    complete: bool = False


class WorkloadController:
    """Rolls Deployments out and keeps route status; call :meth:`start` or :meth:`tick`."""

    def __init__(
        self,
        store: Store,
        scenario: Scenario,
        *,
        tick_seconds: float = 0.2,
        route_status_delay: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._scenario = scenario
        self._tick_seconds = tick_seconds
        self._route_status_delay = route_status_delay
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._route_seen: dict[tuple[str, str, int], float] = {}
        self._pods: list[Pod] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-workloads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                # One malformed object must not stop every Deployment from rolling out.
                log.exception("simulated workload controller: tick failed; retrying")
            self._stop.wait(self._tick_seconds)

    # -- reading ---------------------------------------------------------------------------------

    def ready_pods(self, namespace: str | None = None) -> list[Pod]:
        """The ready pods as of the last tick, optionally in one namespace."""
        with self._lock:
            return [p for p in self._pods if namespace is None or p.namespace == namespace]

    # -- one tick --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        deployments = self._store.list("apps/v1", "Deployment")
        hpa_minimums = self._hpa_minimums()
        pods: list[Pod] = []
        live: set[tuple[str, str]] = set()
        for deployment in deployments:
            namespace = deployment["metadata"]["namespace"]
            name = deployment["metadata"]["name"]
            live.add((namespace, name))
            pods.extend(self._reconcile_deployment(deployment, hpa_minimums, now))
        for key in set(self._rollouts) - live:
            del self._rollouts[key]
        with self._lock:
            self._pods = pods
        self._reconcile_hpas()
        self._reconcile_routes(now)

    def _hpa_minimums(self) -> dict[tuple[str, str], int]:
        minimums: dict[tuple[str, str], int] = {}
        for hpa in self._store.list("autoscaling/v2", "HorizontalPodAutoscaler"):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") == "Deployment" and target.get("name"):
                minimum = (hpa.get("spec") or {}).get("minReplicas", 1)
                key = (hpa["metadata"]["namespace"], str(target["name"]))
                minimums[key] = minimum if isinstance(minimum, int) else 1
        return minimums

    def _reconcile_deployment(
        self,
        deployment: dict[str, Any],
        hpa_minimums: Mapping[tuple[str, str], int],
        now: float,
    ) -> list[Pod]:
        metadata = deployment["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        replicas = spec.get("replicas")
        # An HPA-managed Deployment without spec.replicas runs the HPA's minimum.
        desired = replicas if isinstance(replicas, int) else hpa_minimums.get((namespace, name), 1)
        desired = max(desired, 0)
        labels = {
            str(k): str(v)
            for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()
        }
        current = _PodSet(template_hash(template), _first_image(template), labels)
        behaviour = self._scenario.behaviour_for(current.image)

        rollout = self._rollouts.get((namespace, name))
        if rollout is None:
            rollout = _Rollout(current=current, desired=desired, started_at=now, last_tick=now)
            self._rollouts[(namespace, name)] = rollout
        elif rollout.current.hash != current.hash:
            # A new template: the ready pods of the old one keep serving until replaced.
            previous = rollout.current
            still_serving = math.floor(previous.ready + 1e-9)
            if still_serving == 0 and rollout.retiring is not None:
                previous, still_serving = rollout.retiring, rollout.retiring_count
            rollout.retiring = previous if still_serving > 0 else None
            rollout.retiring_count = still_serving
            rollout.current = current
            rollout.started_at = now
            rollout.complete = False
        elif rollout.desired != desired:
            rollout.started_at = now
            rollout.complete = False
        rollout.desired = desired

        elapsed = max(0.0, now - rollout.last_tick)
        rollout.last_tick = now
        pod_set = rollout.current
        if behaviour.never_ready:
            pod_set.ready = 0.0
        elif desired < pod_set.ready:
            pod_set.ready = float(desired)  # scaling down is immediate
        elif self._scenario.rollout_seconds <= 0:
            pod_set.ready = float(desired)
        else:
            pod_set.ready = min(
                float(desired),
                pod_set.ready + desired * elapsed / self._scenario.rollout_seconds,
            )

        ready_new = math.floor(pod_set.ready + 1e-9)
        if behaviour.never_ready:
            # Only the surge pods get created, and they never pass their readiness probe.
            updated = max(0, min(math.ceil(desired * 0.25), desired - 1))
            retiring = rollout.retiring_count
        else:
            updated = desired
            retiring = max(0, rollout.retiring_count - ready_new) if ready_new < desired else 0
        if retiring == 0:
            rollout.retiring, rollout.retiring_count = None, 0
        complete = ready_new >= desired and retiring == 0 and updated == desired
        if complete:
            rollout.complete = True

        deadline = float(spec.get("progressDeadlineSeconds") or _DEFAULT_PROGRESS_DEADLINE_SECONDS)
        timed_out = not rollout.complete and (now - rollout.started_at) > (
            deadline / self._scenario.time_factor
        )
        available = ready_new + retiring
        self._write_deployment_status(
            deployment,
            replicas=updated + retiring,
            updated=updated,
            ready=available,
            desired=desired,
            complete=rollout.complete,
            timed_out=timed_out,
            replica_set=f"{name}-{current.hash}",
        )

        pods = [
            Pod(
                namespace,
                pod_name(name, current.hash, i),
                name,
                current.image,
                {**current.labels, "pod-template-hash": current.hash},
            )
            for i in range(ready_new)
        ]
        old = rollout.retiring
        if old is not None:
            pods.extend(
                Pod(
                    namespace,
                    pod_name(name, old.hash, i),
                    name,
                    old.image,
                    {**old.labels, "pod-template-hash": old.hash},
                )
                for i in range(retiring)
            )
        return pods

    def _write_deployment_status(
        self,
        deployment: dict[str, Any],
        *,
        replicas: int,
        updated: int,
        ready: int,
        desired: int,
        complete: bool,
        timed_out: bool,
        replica_set: str,
    ) -> None:
        metadata = deployment["metadata"]
        old_status = deployment.get("status") or {}
        old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        if ready >= desired:
            available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            available = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{replica_set}" has successfully progressed.',
            )
        elif timed_out:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{replica_set}" has timed out progressing.',
            )
        else:
            progressing = (
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{replica_set}" is progressing.',
            )
        conditions = [
            self._condition("Available", available, old_conditions.get("Available")),
            self._condition("Progressing", progressing, old_conditions.get("Progressing")),
        ]
        # Like the real API server, zero counts are omitted (the Go fields are omitempty).
        counts = {
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
        }
        status: dict[str, Any] = {"observedGeneration": metadata.get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})
        status["conditions"] = conditions
        if status != old_status:
            self._store.update_status(
                "apps/v1", "Deployment", metadata["namespace"], metadata["name"], status
            )

    def _condition(
        self,
        kind: str,
        state: tuple[str, str, str],
        previous: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        status, reason, message = state
        now = _timestamp(self._wall_clock())
        transition = now
        update = now
        if previous is not None:
            if previous.get("status") == status:
                transition = str(previous.get("lastTransitionTime", now))
            if (previous.get("status"), previous.get("reason"), previous.get("message")) == state:
                update = str(previous.get("lastUpdateTime", now))
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": update,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }

    def _reconcile_hpas(self) -> None:
        ready = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): (d.get("status") or {})
            for d in self._store.list("apps/v1", "Deployment")
        }
        for hpa in self._store.list("autoscaling/v2", "HorizontalPodAutoscaler"):
            spec = hpa.get("spec") or {}
            target = spec.get("scaleTargetRef") or {}
            key = (hpa["metadata"]["namespace"], str(target.get("name", "")))
            current = int((ready.get(key) or {}).get("replicas", 0))
            status = {"currentReplicas": current, "desiredReplicas": spec.get("minReplicas", 1)}
            if hpa.get("status") != status:
                self._store.update_status(
                    "autoscaling/v2",
                    "HorizontalPodAutoscaler",
                    hpa["metadata"]["namespace"],
                    hpa["metadata"]["name"],
                    status,
                )

    # -- routes ----------------------------------------------------------------------------------

    def _reconcile_routes(self, now: float) -> None:
        seen_now: set[tuple[str, str, int]] = set()
        for api_version, kind in _ROUTE_KINDS:
            for route in self._store.list(api_version, kind):
                metadata = route["metadata"]
                generation = int(metadata.get("generation", 1))
                key = (kind, str(metadata.get("uid", "")), generation)
                seen_now.add(key)
                first_seen = self._route_seen.setdefault(key, now)
                # A real gateway takes a moment to accept a change; readers must wait for it.
                if now - first_seen < self._route_status_delay:
                    continue
                if kind == "HTTPRoute":
                    status = self._httproute_status(route, generation)
                else:
                    status = self._httpproxy_status(route, generation)
                if route.get("status") != status:
                    self._store.update_status(
                        api_version, kind, metadata["namespace"], metadata["name"], status
                    )
        self._route_seen = {k: v for k, v in self._route_seen.items() if k in seen_now}

    def _accepted(
        self,
        previous: Mapping[str, Any] | None,
        kind: str,
        reason: str,
        message: str,
        generation: int,
    ) -> dict[str, Any]:
        transition = _timestamp(self._wall_clock())
        if previous is not None and previous.get("status") == "True":
            transition = str(previous.get("lastTransitionTime", transition))
        return {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }

    def _httproute_status(self, route: Mapping[str, Any], generation: int) -> dict[str, Any]:
        old_parents = (route.get("status") or {}).get("parents") or []
        parents: list[dict[str, Any]] = []
        for parent_ref in (route.get("spec") or {}).get("parentRefs") or []:
            old: Mapping[str, Any] = next(
                (p for p in old_parents if p.get("parentRef") == parent_ref), {}
            )
            old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
            parents.append(
                {
                    "parentRef": dict(parent_ref),
                    "controllerName": GATEWAY_CONTROLLER_NAME,
                    "conditions": [
                        self._accepted(
                            old_conditions.get("Accepted"),
                            "Accepted",
                            "Accepted",
                            "Route is accepted by the simulated gateway.",
                            generation,
                        ),
                        self._accepted(
                            old_conditions.get("ResolvedRefs"),
                            "ResolvedRefs",
                            "ResolvedRefs",
                            "All references are resolved.",
                            generation,
                        ),
                    ],
                }
            )
        return {"parents": parents}

    def _httpproxy_status(self, proxy: Mapping[str, Any], generation: int) -> dict[str, Any]:
        old_conditions = {
            c.get("type"): c for c in (proxy.get("status") or {}).get("conditions") or []
        }
        return {
            "currentStatus": "valid",
            "description": "valid HTTPProxy",
            "conditions": [
                self._accepted(
                    old_conditions.get("Valid"), "Valid", "Valid", "Valid HTTPProxy", generation
                )
            ],
        }
