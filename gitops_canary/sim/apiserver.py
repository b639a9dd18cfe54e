"""The simulator's Kubernetes API server: the REST paths the real ``kubernetes`` client uses.

It serves the objects of a :class:`~gitops_canary.sim.store.Store` over plain HTTP on loopback so
that gitops-canary reads the simulated cluster exactly as it reads a real one: through a
kubeconfig and the official client. It is honest about being a simulator (``Server:
gitops-canary-sim`` on every response, and a log line on start). It answers discovery, get and
list (label and simple field selectors), and, for tests and the simulator's tools, create,
replace, merge-patch and delete, including the ``status`` subresource. There is no watch, no
admission and no TLS.

Tests inject faults per path (:meth:`ApiServer.set_fault`): an HTTP status answered as a real
``Status`` object, a delay, or a raw body.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from gitops_canary.sim.kinds import KINDS, Kind, UnknownKind, kind_for_path
from gitops_canary.sim.store import InvalidObject, Store

log = logging.getLogger(__name__)

SERVER_NAME = "gitops-canary-sim"
SIMULATED_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-gitops-canary-sim",
    "gitCommit": "simulator",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "none (Python simulator)",
    "compiler": "none",
    "platform": "simulator",
}
_MAX_BODY_BYTES = 8 * 1024 * 1024

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class _Fault:
    pattern: re.Pattern[str]
    status: int | None
    delay: float
    body: str | None


@dataclass(frozen=True)
class _Target:
    """What a resource path names. ``name`` is ``None`` for a collection."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None = None

    @property
    def resource(self) -> str:
        """``deployments.apps`` as the real server writes it in messages."""
        return f"{self.kind.plural}.{self.kind.group}" if self.kind.group else self.kind.plural


class _Reply(Exception):
    """Raised inside a handler to answer with a ``Status`` object."""

    def __init__(self, code: int, message: str, *, target: _Target | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.target = target


def status_object(code: int, message: str, *, reason: str | None = None) -> dict[str, Any]:
    """A ``meta/v1 Status`` failure as the real API server sends it."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or _REASONS.get(code, HTTPStatus(code).phrase.replace(" ", "")),
        "code": code,
    }


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``null`` deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


_SET_REQUIREMENT = re.compile(
    r"^\s*(!?)([\w./-]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*(\S*))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (a, b)`` parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _matches_labels(labels: Mapping[str, str], selector: str) -> bool:
    """Kubernetes label selector semantics (equality and set-based)."""
    for requirement in _split_selector(selector):
        match = _SET_REQUIREMENT.match(requirement)
        if match is None:
            raise _Reply(400, f"unable to parse requirement: {requirement!r}")
        negated, key, set_op, set_values, op, value = match.groups()
        present = key in labels
        if set_op is not None:
            values = {v.strip() for v in set_values.split(",") if v.strip()}
            inside = present and labels[key] in values
            ok = inside if set_op == "in" else not inside
        elif op is not None:
            equal = present and labels[key] == value
            ok = not equal if op == "!=" else equal
        else:
            ok = not present if negated else present
        if not ok:
            return False
    return True


def _matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    """The field selectors every kind supports: ``metadata.name`` and ``metadata.namespace``."""
    metadata = obj.get("metadata", {})
    for requirement in _split_selector(selector):
        field, op, value = re.split(r"(!=|==|=)", requirement.strip(), maxsplit=1)
        if field not in ("metadata.name", "metadata.namespace"):
            raise _Reply(400, f'field label not supported: "{field}"')
        equal = metadata.get(field.split(".", 1)[1]) == value
        if equal == (op == "!="):
            return False
    return True


class ApiServer:
    """A threaded HTTP server on loopback answering Kubernetes REST paths from a store."""

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
    ) -> None:
        self.store = store
        self._token = token
        self._faults: list[_Fault] = []
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiServer:
        self._stopping.clear()
        self._thread = threading.Thread(
            # A short poll interval keeps stop() (and every test's teardown) quick.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sim-apiserver",
            daemon=True,
        )
        self._thread.start()
        log.info("simulated Kubernetes API server (a simulator, not a cluster) at %s", self.url)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in an injected delay
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, context: str = "gitops-canary-sim"
    ) -> Path:
        """Write a kubeconfig pointing at this server; ``token`` becomes the user's bearer token."""
        user: dict[str, Any] = {"token": token} if token is not None else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": "default"},
                }
            ],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Kubeconfig for the gitops-canary simulator (not a real cluster).\n"
            + yaml.safe_dump(config, sort_keys=False),
            encoding="utf-8",
        )
        path.chmod(0o600)
        return path

    # -- fault injection (tests) ------------------------------------------------------------------

    def set_fault(
        self,
        path_regex: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        body: str | None = None,
    ) -> None:
        """Make requests whose path matches ``path_regex`` (``re.search``) misbehave.

        ``delay`` seconds pass first; then ``body`` is sent as-is with ``status`` (default 200),
        or, without a body, ``status`` is answered as a real ``Status`` object. With only a
        delay the request is then served normally.
        """
        fault = _Fault(re.compile(path_regex), status, delay, body)
        with self._faults_lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _fault_for(self, path: str) -> _Fault | None:
        with self._faults_lock:
            return next((f for f in self._faults if f.pattern.search(path)), None)

    # -- request handling -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            api = server

        return Handler


def _discovery_core() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _discovery_groups() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        if kind.group and kind.version not in groups.setdefault(kind.group, []):
            groups[kind.group].append(kind.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[0]}",
                    "version": versions[0],
                },
            }
            for group, versions in groups.items()
        ],
    }


def _discovery_resources(group: str, version: str) -> dict[str, Any] | None:
    kinds = [k for k in KINDS if k.group == group and k.version == version]
    if not kinds:
        return None
    verbs = ["create", "delete", "get", "list", "patch", "update"]
    resources: list[dict[str, Any]] = []
    for kind in kinds:
        common = {"namespaced": kind.namespaced, "kind": kind.kind}
        resources.append(
            {"name": kind.plural, "singularName": kind.kind.lower(), "verbs": verbs, **common}
        )
        resources.append(
            {
                "name": f"{kind.plural}/status",
                "singularName": "",
                "verbs": ["get", "patch", "update"],
                **common,
            }
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer
    server_version = SERVER_NAME
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sim apiserver: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing ---------------------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path).rstrip("/") or "/"
        body = self._read_body()
        try:
            if self._apply_fault(path):
                return
            self._check_token()
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            code, payload = self._route(method, path, query, body)
        except _Reply as reply:
            code, payload = reply.code, status_object(reply.code, reply.message)
            if reply.target is not None:
                payload["details"] = {
                    "name": reply.target.name or "",
                    "kind": reply.target.kind.plural,
                    **({"group": reply.target.kind.group} if reply.target.kind.group else {}),
                }
        except UnknownKind as error:
            code, payload = 404, status_object(404, str(error))
        except InvalidObject as error:
            code, payload = 422, status_object(422, str(error))
        except Exception as error:  # a simulator bug must still answer like a server
            log.exception("sim apiserver: %s %s failed", method, path)
            code, payload = 500, status_object(500, f"simulator error: {error}")
        self._send(code, json.dumps(payload))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            length = 0
            self.close_connection = True
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _apply_fault(self, path: str) -> bool:
        fault = self.api._fault_for(path)
        if fault is None:
            return False
        if fault.delay > 0 and self.api._stopping.wait(fault.delay):
            self.close_connection = True
            return True
        if fault.body is not None:
            self._send(fault.status or 200, fault.body)
            return True
        if fault.status is None:
            return False
        if fault.status == 403:
            message = self._forbidden_message(path)
        else:
            message = f"injected fault: {HTTPStatus(fault.status).phrase}"
        self._send(fault.status, json.dumps(status_object(fault.status, message)))
        return True

    def _forbidden_message(self, path: str) -> str:
        """The real RBAC denial text, for a service account that lacks a verb."""
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(
            self.command, "delete"
        )
        subject = 'User "system:serviceaccount:gitops-canary:gitops-canary"'
        try:
            target = _parse_path(path)
        except (_Reply, UnknownKind):
            return f'{subject} cannot {verb} path "{path}"'
        if target is None:
            return f'{subject} cannot {verb} path "{path}"'
        if target.name is None:
            verb = "list" if verb == "get" else verb
        group = target.kind.group
        where = f' in the namespace "{target.namespace}"' if target.namespace else ""
        named = f' "{target.name}"' if target.name else ""
        return (
            f"{target.resource}{named} is forbidden: {subject} cannot {verb} resource "
            f'"{target.kind.plural}" in API group "{group}"{where}'
        )

    def _check_token(self) -> None:
        if self.api._token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {self.api._token}":
            raise _Reply(401, "Unauthorized")

    # -- routing ----------------------------------------------------------------------------------

    def _route(
        self, method: str, path: str, query: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET":
            discovery = _discovery(path)
            if discovery is not None:
                return 200, discovery
        target = _parse_path(path)
        if target is None:
            raise _Reply(404, f'the server could not find the requested resource ("{path}")')
        store = self.api.store
        kind = target.kind
        if target.name is None:
            if method == "GET":
                return 200, self._list(target, query)
            if method == "POST":
                return self._create(target, self._json(body))
            raise _Reply(405, f"{method} is not supported on a collection")

        if method == "GET":
            return 200, self._existing(target)
        if method == "DELETE":
            found = self._existing(target)
            store.delete(kind.api_version, kind.kind, target.namespace, target.name)
            return 200, found
        if method in ("PUT", "PATCH"):
            incoming = self._json(body)
            current = self._existing(target)
            if method == "PATCH":
                content_type = self.headers.get("Content-Type", "")
                if "json-patch+json" in content_type:
                    raise _Reply(415, "the simulator supports merge patches only")
                incoming = _merge_patch(current, incoming)
            if target.subresource == "status":
                status = incoming.get("status") or {}
                updated = store.update_status(
                    kind.api_version, kind.kind, target.namespace, target.name, status
                )
                return 200, updated or self._existing(target)
            incoming.setdefault("apiVersion", kind.api_version)
            incoming.setdefault("kind", kind.kind)
            self._check_identity(target, incoming)
            return 200, store.apply(incoming)
        raise _Reply(405, f"{method} is not supported")

    def _existing(self, target: _Target) -> dict[str, Any]:
        kind = target.kind
        assert target.name is not None
        found = self.api.store.get(kind.api_version, kind.kind, target.namespace, target.name)
        if found is None:
            raise _Reply(404, f'{target.resource} "{target.name}" not found', target=target)
        return found

    def _list(self, target: _Target, query: Mapping[str, str]) -> dict[str, Any]:
        kind = target.kind
        version_before = self.api.store.resource_version
        items = self.api.store.list(kind.api_version, kind.kind, target.namespace)
        label_selector = query.get("labelSelector", "")
        field_selector = query.get("fieldSelector", "")
        if label_selector:
            items = [
                i
                for i in items
                if _matches_labels(i["metadata"].get("labels") or {}, label_selector)
            ]
        if field_selector:
            items = [i for i in items if _matches_fields(i, field_selector)]
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": version_before},
            "items": items,
        }

    def _create(self, target: _Target, incoming: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kind = target.kind
        incoming.setdefault("apiVersion", kind.api_version)
        incoming.setdefault("kind", kind.kind)
        metadata = incoming.setdefault("metadata", {})
        if target.namespace is not None:
            metadata.setdefault("namespace", target.namespace)
        name = metadata.get("name")
        named = _Target(kind, target.namespace, name if isinstance(name, str) else None)
        self._check_identity(named, incoming)
        if self.api.store.get(kind.api_version, kind.kind, target.namespace, str(name)) is not None:
            raise _Reply(409, f'{target.resource} "{name}" already exists', target=named)
        return 201, self.api.store.apply(incoming)

    @staticmethod
    def _check_identity(target: _Target, incoming: Mapping[str, Any]) -> None:
        metadata = incoming.get("metadata") or {}
        if (incoming.get("apiVersion"), incoming.get("kind")) != (
            target.kind.api_version,
            target.kind.kind,
        ):
            raise _Reply(
                400, f"the body is a {incoming.get('kind')}, the path names {target.resource}"
            )
        if target.name is not None and metadata.get("name") != target.name:
            raise _Reply(400, "the name of the object does not match the name on the URL")
        if target.namespace is not None and metadata.get("namespace", target.namespace) != (
            target.namespace
        ):
            raise _Reply(400, "the namespace of the object does not match the namespace on the URL")

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            parsed = json.loads(body or b"{}")
        except ValueError as error:
            raise _Reply(400, f"the request body is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise _Reply(400, "the request body must be a JSON object")
        return parsed


def _discovery(path: str) -> dict[str, Any] | None:
    if path == "/api":
        return _discovery_core()
    if path == "/apis":
        return _discovery_groups()
    if path == "/version":
        return dict(SIMULATED_VERSION)
    if path == "/api/v1":
        return _discovery_resources("", "v1")
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "apis":
        return _discovery_resources(parts[1], parts[2])
    return None


def _parse_path(path: str) -> _Target | None:
    """Split ``/api/v1/...`` or ``/apis/<group>/<version>/...`` into what it names."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    # /namespaces/<ns>/<plural>[/<name>[/<sub>]] names namespaced objects; anything else
    # (including /api/v1/namespaces/<name>) is a cluster-wide path.
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, plural, tail = rest[1], rest[2], rest[3:]
        kind = kind_for_path(group, version, plural)
        if not kind.namespaced:
            return None
    elif 1 <= len(rest) <= 3:
        namespace, plural, tail = None, rest[0], rest[1:]
        kind = kind_for_path(group, version, plural)
        if kind.namespaced and tail:
            return None  # a namespaced object needs /namespaces/<ns>/
    else:
        return None
    if len(tail) > 2 or (len(tail) == 2 and tail[1] != "status"):
        return None
    name = tail[0] if tail else None
    return _Target(kind, namespace, name, tail[1] if len(tail) == 2 else None)
