"""The simulator's object store: what the simulated cluster "has", with server-side metadata.

It plays the part of etcd plus the API server's bookkeeping: ``uid``, ``creationTimestamp``, a
global ``resourceVersion`` and ``metadata.generation``. It is thread-safe; objects are deep-copied
in and out, so no caller can change stored state behind the store's back. Subscribers hear about
every change after the lock is released, so a callback may call back into the store.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from gitops_canary.sim.kinds import Kind, kind_for

Event = str  # "ADDED", "MODIFIED" or "DELETED"
Subscriber = Callable[[Event, dict[str, Any]], None]

# Metadata that the server owns: a manifest cannot set or reset these by being re-applied.
_SERVER_METADATA = ("uid", "creationTimestamp", "resourceVersion", "generation")


class InvalidObject(ValueError):
    """A manifest the store cannot accept; the message names the object and the field."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{obj.get('apiVersion', '?')} {obj.get('kind', '?')} {name or '?'}"


def _generation_content(obj: Mapping[str, Any]) -> Any:
    """What bumps ``metadata.generation``: ``spec``, or for spec-less kinds the payload fields."""
    if "spec" in obj:
        return obj["spec"]
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


# Module-level aliases: inside the class, ``list`` names the method, not the builtin.
_Objects = list[dict[str, Any]]
_Key = tuple[str, str, str, str]  # group, kind, namespace ("" when cluster-scoped), name


class Store:
    """In-memory objects keyed by group, kind, namespace and name."""

    def __init__(self, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._objects: dict[_Key, dict[str, Any]] = {}
        self._resource_version = 0
        self._subscribers: list[Subscriber] = []

    # -- reading ---------------------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        served = kind_for(api_version, kind)
        with self._lock:
            stored = self._objects.get(self._key(served, namespace, name))
            return None if stored is None else self._out(served, stored)

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> _Objects:
        """Objects of one kind, in one namespace or (``None``) all, sorted by namespace, name."""
        served = kind_for(api_version, kind)
        group, kind_name = served.storage_key
        with self._lock:
            return [
                self._out(served, obj)
                for (g, k, ns, _), obj in sorted(self._objects.items())
                if g == group and k == kind_name and (namespace is None or ns == namespace)
            ]

    def all(self) -> _Objects:
        """Every stored object, in the ``apiVersion`` it was last written with."""
        with self._lock:
            return [copy.deepcopy(obj) for _, obj in sorted(self._objects.items())]

    @property
    def resource_version(self) -> str:
        """The latest ``resourceVersion`` handed out (for List objects)."""
        with self._lock:
            return str(self._resource_version)

    # -- writing ---------------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object, or replace everything but its ``status`` and server metadata.

        A new object keeps a ``status`` it arrives with (handy for seeding tests); an existing
        one keeps its stored status, as with a real status subresource. Re-applying identical
        content changes nothing: no new ``resourceVersion``, no event.
        """
        served = self._kind_of(obj)
        incoming = copy.deepcopy(dict(obj))
        metadata = incoming.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
            raise InvalidObject(f"{_describe(obj)}: metadata.name must be a string")
        if not metadata["name"]:
            raise InvalidObject(f"{_describe(obj)}: metadata.name must not be empty")
        if served.namespaced:
            metadata["namespace"] = metadata.get("namespace") or "default"
        else:
            metadata.pop("namespace", None)
        key = self._key(served, metadata.get("namespace"), metadata["name"])

        with self._lock:
            existing = self._objects.get(key)
            if existing is None:
                event = "ADDED"
                metadata["uid"] = str(uuid.uuid4())
                metadata["creationTimestamp"] = _timestamp(self._clock())
                metadata["generation"] = 1
            else:
                event = "MODIFIED"
                old_metadata = existing["metadata"]
                for field in _SERVER_METADATA:
                    metadata[field] = old_metadata[field]
                incoming.pop("status", None)
                if "status" in existing:
                    incoming["status"] = existing["status"]
                if _generation_content(incoming) != _generation_content(existing):
                    metadata["generation"] = old_metadata["generation"] + 1
                if incoming == existing:
                    return self._out(served, existing)
            metadata["resourceVersion"] = self._next_resource_version()
            self._objects[key] = incoming
            result = self._out(served, incoming)
        self._notify(event, result)
        return copy.deepcopy(result)

    def update_status(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """Replace ``status`` (only ``resourceVersion`` moves); ``None`` if the object is gone."""
        served = kind_for(api_version, kind)
        with self._lock:
            stored = self._objects.get(self._key(served, namespace, name))
            if stored is None:
                return None
            stored["status"] = copy.deepcopy(dict(status))
            stored["metadata"]["resourceVersion"] = self._next_resource_version()
            result = self._out(served, stored)
        self._notify("MODIFIED", result)
        return copy.deepcopy(result)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Remove the object; ``False`` if there was none."""
        served = kind_for(api_version, kind)
        with self._lock:
            stored = self._objects.pop(self._key(served, namespace, name), None)
            if stored is None:
                return False
            stored["metadata"]["resourceVersion"] = self._next_resource_version()
            result = self._out(served, stored)
        self._notify("DELETED", result)
        return True

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event, object)`` after every change, outside the store's lock."""
        with self._lock:
            self._subscribers.append(callback)

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _kind_of(obj: Mapping[str, Any]) -> Kind:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise InvalidObject(f"{_describe(obj)}: apiVersion and kind must be strings")
        return kind_for(api_version, kind)

    @staticmethod
    def _key(served: Kind, namespace: str | None, name: str) -> _Key:
        group, kind = served.storage_key
        return (group, kind, (namespace or "") if served.namespaced else "", name)

    @staticmethod
    def _out(served: Kind, stored: Mapping[str, Any]) -> dict[str, Any]:
        """A copy as the caller asked for it: same storage, the requested ``apiVersion``."""
        result = copy.deepcopy(dict(stored))
        result["apiVersion"] = served.api_version
        return result

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _notify(self, event: Event, obj: dict[str, Any]) -> None:
        with self._lock:
            subscribers = self._subscribers.copy()
        for callback in subscribers:
            callback(event, copy.deepcopy(obj))
