"""The simulator's applier: it follows the config repo the way Flux's controllers do.

Every ``interval`` it fetches the branch into its own clone (it never pushes), renders each
configured path with ``kubectl kustomize`` (or, when kubectl is missing, with a small reader of
the kustomize subset the examples use: ``resources``, ``namespace``, ``images``), applies every
rendered object to the simulator's store, prunes what it applied earlier for that path and no
longer renders, and reports in a ``kustomize.toolkit.fluxcd.io/v1`` Kustomization object, with
Flux's fields and wording: ``status.lastAppliedRevision: <branch>@sha1:<sha>``, a ``Ready``
condition ``ReconciliationSucceeded`` / ``Applied revision: ...`` or ``BuildFailed`` with the
kustomize error (the objects of the last good build stay applied). A GitRepository object
reports the fetched revision, like Flux's source-controller.

It also honours Flux's "reconcile now" annotation (``reconcile.fluxcd.io/requestedAt``) on its
Kustomizations, and can be paused to rehearse a stuck GitOps agent.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitops_canary.sim.kinds import UnknownKind, kind_for
from gitops_canary.sim.store import InvalidObject, Store

log = logging.getLogger(__name__)

KUSTOMIZATION_API_VERSION = "kustomize.toolkit.fluxcd.io/v1"
GITREPOSITORY_API_VERSION = "source.toolkit.fluxcd.io/v1"
REQUESTED_AT_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
_PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"
_KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_GIT_TIMEOUT_SECONDS = 60
_BUILD_TIMEOUT_SECONDS = 60


class BuildError(Exception):
    """A path could not be rendered; the message is what Flux would put in ``BuildFailed``."""


class ApplyError(Exception):
    """A rendered object could not be applied; the message names the object."""


@dataclass(frozen=True)
class _Ref:
    """An applied object's identity, as kept in the inventory for pruning."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def flux_id(self) -> str:
        group = self.api_version.rpartition("/")[0]
        return f"{self.namespace}_{self.name}_{group}_{self.kind}"

    def describe(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _yaml_documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        documents = list(YAML(typ="safe", pure=True).load_all(text))
    except YAMLError as error:
        raise BuildError(f"{source}: invalid YAML: {error}") from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise BuildError(f"{source}: a document is not a mapping")
        if document.get("kind") == "List" and isinstance(document.get("items"), list):
            objects.extend(item for item in document["items"] if isinstance(item, dict))
        else:
            objects.append(document)
    return objects


def _kustomization_file(directory: Path) -> Path | None:
    for name in _KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _generate_kustomization(directory: Path) -> None:
    """Like Flux: a path without a kustomization file gets one listing its manifests."""
    resources: list[str] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if _kustomization_file(entry) is not None:
                    resources.append(entry.relative_to(directory).as_posix())
                else:
                    walk(entry)
            elif entry.suffix in (".yaml", ".yml"):
                try:
                    documents = _yaml_documents(entry.read_text(encoding="utf-8"), str(entry))
                except (BuildError, OSError, UnicodeDecodeError):
                    continue
                if any("apiVersion" in d and "kind" in d for d in documents):
                    resources.append(entry.relative_to(directory).as_posix())

    walk(directory)
    text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    text += "".join(f"- {resource}\n" for resource in resources) if resources else ""
    if not resources:
        text = text.replace("resources:\n", "resources: []\n")
    (directory / "kustomization.yaml").write_text(text, encoding="utf-8")


# -- the kustomize subset reader (used when kubectl is missing) -------------------------------

_SUBSET_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images"}


def _split_image(image: str) -> tuple[str, str, str]:
    """``name[:tag][@digest]`` into its three parts (a registry port is not a tag)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest


def _set_images(obj: dict[str, Any], images: list[Mapping[str, Any]]) -> None:
    def containers(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    yield from (c for c in value if isinstance(c, dict))
                else:
                    yield from containers(value)
        elif isinstance(node, list):
            for item in node:
                yield from containers(item)

    for container in containers(obj.get("spec")):
        image = container.get("image")
        if not isinstance(image, str):
            continue
        name, tag, digest = _split_image(image)
        for rule in images:
            if rule.get("name") != name:
                continue
            name = str(rule.get("newName") or name)
            if rule.get("newTag") is not None:
                tag, digest = str(rule["newTag"]), ""
            if rule.get("digest"):
                tag, digest = "", str(rule["digest"])
            container["image"] = (
                name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            )
            break


def _is_namespaced(obj: Mapping[str, Any]) -> bool:
    try:
        return kind_for(str(obj.get("apiVersion")), str(obj.get("kind"))).namespaced
    except UnknownKind:
        return obj.get("kind") not in ("Namespace", "CustomResourceDefinition", "ClusterRole")


def build_subset(directory: Path, root: Path, _depth: int = 0) -> list[dict[str, Any]]:
    """Render a kustomization with only ``resources``, ``namespace`` and ``images``."""
    if _depth > 20:
        raise BuildError(f"{directory}: kustomizations nest too deeply (a cycle?)")
    file = _kustomization_file(directory)
    if file is None:
        raise BuildError(f"{directory}: no kustomization.yaml")
    documents = _yaml_documents(file.read_text(encoding="utf-8"), str(file.relative_to(root)))
    spec = documents[0] if documents else {}
    unsupported = sorted(set(spec) - _SUBSET_FIELDS)
    if unsupported:
        raise BuildError(
            f"{file.relative_to(root)}: field {unsupported[0]!r} is not supported by the "
            "simulator's kustomize subset reader (it reads resources, namespace and images); "
            "install kubectl so the simulator can use `kubectl kustomize`"
        )
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources") or []:
        target = (directory / str(resource)).resolve()
        if not target.is_relative_to(root.resolve()):
            raise BuildError(f"{file.relative_to(root)}: resource {resource!r} is outside the repo")
        if target.is_dir():
            objects.extend(build_subset(target, root, _depth + 1))
        elif target.is_file():
            objects.extend(
                _yaml_documents(target.read_text(encoding="utf-8"), str(target.relative_to(root)))
            )
        else:
            raise BuildError(f"{file.relative_to(root)}: resource {resource!r} does not exist")
    namespace = spec.get("namespace")
    for obj in objects:
        if namespace and _is_namespaced(obj):
            obj.setdefault("metadata", {})["namespace"] = str(namespace)
        if spec.get("images"):
            _set_images(obj, list(spec["images"]))
    return objects


# -- the applier ------------------------------------------------------------------------------


class FluxLikeApplier:
    """Follows ``branch`` of ``repo_url`` and applies ``paths`` (Kustomization name -> path)."""

    def __init__(
        self,
        store: Store,
        repo_url: str,
        branch: str,
        paths: Mapping[str, str],
        *,
        namespace: str = "flux-system",
        interval: float = 2.0,
        workdir: Path,
        source_name: str = "flux-system",
        kubectl: str | None = "auto",
    ) -> None:
        self._store = store
        self._repo_url = repo_url
        self._branch = branch
        self._paths = dict(paths)
        self._namespace = namespace
        self._interval = interval
        self._checkout = Path(workdir) / "applier-checkout"
        self._source_name = source_name
        self._kubectl = shutil.which("kubectl") if kubectl == "auto" else kubectl
        self._inventory: dict[str, set[_Ref]] = {name: set() for name in self._paths}
        self._last_applied: dict[str, str] = {}
        self._cycle_lock = threading.Lock()
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        store.subscribe(self._on_change)

    @property
    def builder(self) -> str:
        """Which renderer is in use, for the operator."""
        if self._kubectl:
            return f"`{self._kubectl} kustomize`"
        return "the simulator's kustomize subset reader (kubectl not found)"

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def last_applied_revision(self, name: str) -> str | None:
        """``<branch>@sha1:<sha>`` last applied for Kustomization ``name``, if any."""
        return self._last_applied.get(name)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        log.info("simulated Flux: rendering with %s", self.builder)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-applier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=_GIT_TIMEOUT_SECONDS)
            self._thread = None

    def pause(self) -> None:
        """Stop applying (a stuck GitOps agent); :meth:`apply_now` still works."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._paused.is_set():
                try:
                    self.apply_now()
                except Exception:
                    log.exception("simulated Flux: reconciliation failed; retrying")
            self._wake.wait(self._interval)
            self._wake.clear()

    def _on_change(self, event: str, obj: dict[str, Any]) -> None:
        # "flux reconcile" sets the requestedAt annotation; answer it before the next interval.
        if event == "DELETED" or obj.get("kind") != "Kustomization":
            return
        metadata = obj.get("metadata") or {}
        requested = (metadata.get("annotations") or {}).get(REQUESTED_AT_ANNOTATION)
        handled = (obj.get("status") or {}).get("lastHandledReconcileAt")
        if requested and requested != handled and metadata.get("name") in self._paths:
            self._wake.set()

    # -- one cycle -------------------------------------------------------------------------------

    def apply_now(self) -> str | None:
        """Fetch and apply every path once (even when paused); returns the revision or None."""
        with self._cycle_lock:
            try:
                sha = self._fetch()
            except BuildError as error:
                log.warning("simulated Flux: %s", error)
                self._write_source_status(None, str(error))
                return None
            revision = f"{self._branch}@sha1:{sha}"
            self._write_source_status(revision, None)
            for name, path in sorted(self._paths.items()):
                self._reconcile(name, path, revision)
            return revision

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BuildError(f"git {args[0]} failed: {error}") from None
        if done.returncode != 0:
            detail = done.stderr.strip() or done.stdout.strip()
            raise BuildError(f"git {args[0]} failed: {detail}")
        return done.stdout.strip()

    def _fetch(self) -> str:
        if not (self._checkout / ".git").is_dir():
            self._checkout.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", str(self._checkout))
            self._git("remote", "add", "origin", self._repo_url, cwd=self._checkout)
        remote_ref = f"refs/remotes/origin/{self._branch}"
        try:
            self._git(
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                f"+refs/heads/{self._branch}:{remote_ref}",
                cwd=self._checkout,
            )
        except BuildError as error:
            raise BuildError(
                f"cannot fetch branch {self._branch!r} of {self._repo_url}: {error}"
            ) from None
        sha = self._git("rev-parse", remote_ref, cwd=self._checkout)
        self._git("checkout", "--quiet", "--force", "--detach", sha, cwd=self._checkout)
        self._git("clean", "--quiet", "-fdx", cwd=self._checkout)
        return sha

    def _build(self, path: str) -> list[dict[str, Any]]:
        relative = PurePosixPath(path.lstrip("/") or ".")
        directory = (self._checkout / relative).resolve()
        if not directory.is_relative_to(self._checkout.resolve()):
            raise BuildError(f"kustomization path {path!r} is outside the repository")
        if not directory.is_dir():
            raise BuildError(f"kustomization path not found: {path!r} is not a directory")
        if _kustomization_file(directory) is None:
            _generate_kustomization(directory)
        if not self._kubectl:
            return build_subset(directory, self._checkout)
        try:
            done = subprocess.run(
                [self._kubectl, "kustomize", str(directory)],
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BuildError(f"kubectl kustomize {path} failed: {error}") from None
        if done.returncode != 0:
            # Paths in kustomize's errors point into this private checkout; show repo paths.
            detail = done.stderr.strip().removeprefix("Error: ")
            detail = detail.replace(str(self._checkout.resolve()) + "/", "")
            raise BuildError(f"kustomize build failed: {detail}")
        return _yaml_documents(done.stdout, f"kubectl kustomize {path}")

    def _reconcile(self, name: str, path: str, revision: str) -> None:
        try:
            objects = self._build(path)
            refs = self._apply(name, objects)
        except BuildError as error:
            log.warning("simulated Flux: Kustomization %s: %s", name, error)
            self._write_kustomization(
                name, path, revision, ok=False, reason="BuildFailed", message=str(error)
            )
            return
        except ApplyError as error:
            log.warning("simulated Flux: Kustomization %s: %s", name, error)
            self._write_kustomization(
                name, path, revision, ok=False, reason="ReconciliationFailed", message=str(error)
            )
            return
        self._prune(name, refs)
        self._inventory[name] = refs
        if self._last_applied.get(name) != revision:
            log.info("simulated Flux: Kustomization %s applied revision %s", name, revision)
        self._last_applied[name] = revision
        self._write_kustomization(
            name,
            path,
            revision,
            ok=True,
            reason="ReconciliationSucceeded",
            message=f"Applied revision: {revision}",
        )

    def _apply(self, name: str, objects: Iterable[dict[str, Any]]) -> set[_Ref]:
        rendered = list(objects)
        # Like Flux's server-side dry run: an unknown kind fails the whole apply, before any write.
        for obj in rendered:
            try:
                kind_for(str(obj.get("apiVersion")), str(obj.get("kind")))
            except UnknownKind as error:
                metadata = obj.get("metadata") or {}
                raise ApplyError(
                    f"{obj.get('kind')}/{metadata.get('name', '?')} dry-run failed: {error}"
                ) from None
        # Namespaces first, as Flux applies cluster-wide objects before namespaced ones.
        rendered.sort(key=lambda o: o.get("kind") != "Namespace")
        refs: set[_Ref] = set()
        for obj in rendered:
            labels = obj.setdefault("metadata", {}).setdefault("labels", {}) or {}
            labels["kustomize.toolkit.fluxcd.io/name"] = name
            labels["kustomize.toolkit.fluxcd.io/namespace"] = self._namespace
            obj["metadata"]["labels"] = labels
            try:
                stored = self._store.apply(obj)
            except (InvalidObject, UnknownKind) as error:
                raise ApplyError(str(error)) from None
            metadata = stored["metadata"]
            refs.add(
                _Ref(
                    str(stored["apiVersion"]),
                    str(stored["kind"]),
                    str(metadata.get("namespace", "")),
                    str(metadata["name"]),
                )
            )
        return refs

    def _prune(self, name: str, current: set[_Ref]) -> None:
        for ref in sorted(self._inventory.get(name, set()) - current, key=lambda r: r.flux_id):
            existing = self._store.get(ref.api_version, ref.kind, ref.namespace or None, ref.name)
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(_PRUNE_ANNOTATION) == "disabled":
                continue
            if self._store.delete(ref.api_version, ref.kind, ref.namespace or None, ref.name):
                log.info("simulated Flux: Kustomization %s pruned %s", name, ref.describe())

    # -- status objects --------------------------------------------------------------------------

    def _write_kustomization(
        self, name: str, path: str, revision: str, *, ok: bool, reason: str, message: str
    ) -> None:
        existing = self._store.get(
            KUSTOMIZATION_API_VERSION, "Kustomization", self._namespace, name
        )
        old_metadata = (existing or {}).get("metadata") or {}
        metadata: dict[str, Any] = {"name": name, "namespace": self._namespace}
        for field in ("labels", "annotations"):
            if old_metadata.get(field):
                metadata[field] = old_metadata[field]
        stored = self._store.apply(
            {
                "apiVersion": KUSTOMIZATION_API_VERSION,
                "kind": "Kustomization",
                "metadata": metadata,
                "spec": {
                    "interval": f"{self._interval:g}s",
                    "path": path,
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": self._source_name},
                },
            }
        )
        old_status = (existing or {}).get("status") or {}
        old_ready = next(
            (c for c in old_status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        status_text = "True" if ok else "False"
        transition = _timestamp()
        if (
            old_ready is not None
            and old_ready.get("status") == status_text
            and old_ready.get("message") == message
        ):
            transition = str(old_ready.get("lastTransitionTime", transition))
        status: dict[str, Any] = {
            "observedGeneration": stored["metadata"]["generation"],
            "lastAttemptedRevision": revision,
            "conditions": [
                {
                    "type": "Ready",
                    "status": status_text,
                    "reason": reason,
                    "message": message,
                    "observedGeneration": stored["metadata"]["generation"],
                    "lastTransitionTime": transition,
                }
            ],
            "inventory": {
                "entries": [
                    {"id": ref.flux_id, "v": ref.api_version.rpartition("/")[2]}
                    for ref in sorted(self._inventory.get(name, set()), key=lambda r: r.flux_id)
                ]
            },
        }
        if name in self._last_applied:
            status["lastAppliedRevision"] = self._last_applied[name]
        requested = (old_metadata.get("annotations") or {}).get(REQUESTED_AT_ANNOTATION)
        if requested:
            status["lastHandledReconcileAt"] = requested
        if status != old_status:
            self._store.update_status(
                KUSTOMIZATION_API_VERSION, "Kustomization", self._namespace, name, status
            )

    def _write_source_status(self, revision: str | None, error: str | None) -> None:
        existing = self._store.get(
            GITREPOSITORY_API_VERSION, "GitRepository", self._namespace, self._source_name
        )
        stored = self._store.apply(
            {
                "apiVersion": GITREPOSITORY_API_VERSION,
                "kind": "GitRepository",
                "metadata": {"name": self._source_name, "namespace": self._namespace},
                "spec": {
                    "interval": f"{self._interval:g}s",
                    "url": self._repo_url,
                    "ref": {"branch": self._branch},
                },
            }
        )
        old_status = (existing or {}).get("status") or {}
        status = dict(old_status)
        status["observedGeneration"] = stored["metadata"]["generation"]
        if revision is not None:
            status["artifact"] = {"revision": revision}
            ready = ("True", "Succeeded", f"stored artifact for revision '{revision}'")
        else:
            ready = ("False", "GitOperationFailed", error or "fetch failed")
        old_ready: Mapping[str, Any] = next(
            (c for c in old_status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        transition = _timestamp()
        if (old_ready.get("status"), old_ready.get("reason"), old_ready.get("message")) == ready:
            transition = str(old_ready.get("lastTransitionTime", transition))
        status["conditions"] = [
            {
                "type": "Ready",
                "status": ready[0],
                "reason": ready[1],
                "message": ready[2],
                "lastTransitionTime": transition,
            }
        ]
        if status != old_status:
            self._store.update_status(
                GITREPOSITORY_API_VERSION,
                "GitRepository",
                self._namespace,
                self._source_name,
                status,
            )
