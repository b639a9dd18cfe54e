"""Reading the kustomize subset Flux users write, without running kustomize.

Owns the answer to "what does this directory apply, and from which file did each object come":
``resources`` (files and directories, recursively), ``components``, ``namespace`` and ``images``
are applied the way kustomize applies them; ``commonLabels``/``labels`` are recorded only; every
other transformer or generator (``patches``, ``configMapGenerator``, ``replicas``, ...) is *not*
applied but recorded in :attr:`Build.unapplied`, so a caller can fall back to
:func:`kubectl_build` (``kubectl kustomize``) when it needs the exact output.

Facts followed (checked against ``kubectl kustomize`` in the tests):

- A kustomization's transformers act on everything it accumulated, including what nested
  kustomizations produced, so an outer ``namespace:`` or ``images:`` wins over an inner one.
- ``namespace:`` *overrides* the namespace written in a manifest for namespaced objects; it
  leaves cluster-scoped objects alone (and renames ``Namespace`` objects to it).
- ``images:`` rewrites ``image`` in every ``containers`` and ``initContainers`` list of the
  object; a new tag replaces an existing digest and vice versa.

A directory without a kustomization file is read the way Flux's kustomize-controller reads a
path without one: every manifest below it, and each sub-directory holding a kustomization as a
unit.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_canary.repo.manifests import (
    Document,
    ManifestError,
    iter_yaml_files,
    load_file,
    load_text,
)

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUBECTL_TIMEOUT_SECONDS = 60.0

#: Fields that kustomize reads and this reader does not apply (callers may use kubectl instead).
_UNAPPLIED_FIELDS = (
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "replacements",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generators",
    "transformers",
    "validators",
    "helmCharts",
    "namePrefix",
    "nameSuffix",
    "vars",
    "openapi",
    "crds",
)
#: Cluster-scoped kinds in the Kubernetes API and the CRDs Flux users commonly apply; every
#: other kind is namespaced, as kustomize assumes for kinds it has no schema for.
_CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "GatewayClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/|gitlab\.com/|bitbucket\.org/)")


class KustomizeError(Exception):
    """A kustomization that cannot be read; the message names the file and the entry."""


#: Reads one YAML file; discovery passes a cached reader. ``display`` is the repo-relative name.
Loader = Callable[[Path, str], list[Document]]


def _default_loader(path: Path, display: str) -> list[Document]:
    return load_file(path, display=display)


@dataclass(frozen=True)
class Resource:
    """One object a build produces, with where it came from."""

    file: str  # repo-relative path of the manifest (posix)
    index: int  # document index in that file (as :class:`Document` counts)
    data: dict[str, Any]  # the object after this build's namespace and images transformers
    namespace: str | None  # effective namespace (None: not set anywhere, the applier decides)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        metadata = self.data.get("metadata")
        return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


@dataclass
class Build:
    """What one directory applies."""

    root: str  # repo-relative directory that was built
    resources: list[Resource] = field(default_factory=list)
    #: Every kustomization file read, repo-relative.
    kustomization_files: list[str] = field(default_factory=list)
    #: Every file and directory the build reads (resolved absolute paths).
    includes: set[Path] = field(default_factory=set)
    #: ``"<kustomization file>: <field>"`` for each field read but not applied.
    unapplied: list[str] = field(default_factory=list)
    #: ``commonLabels`` and ``labels[].pairs`` of every kustomization, merged (outer wins).
    labels: dict[str, str] = field(default_factory=dict)
    #: ``images:`` entries seen, per kustomization file, as written.
    images: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def uses_patches(self) -> bool:
        """True when the output may differ from :attr:`resources` (use :func:`kubectl_build`)."""
        return bool(self.unapplied)


def find_kustomization(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, if it has one."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def build(directory: Path, repo_root: Path, *, load: Loader | None = None) -> Build:
    """Build ``directory`` (with or without a kustomization file).

    Raises :class:`KustomizeError` naming the kustomization file and entry that is wrong.
    """
    builder = _Builder(repo_root.resolve(), load or _default_loader)
    result = Build(root=builder.rel(directory.resolve()))
    builder.result = result
    result.resources = builder.build_dir(directory.resolve(), stack=())
    return result


def includes(
    directory: Path, repo_root: Path | None = None, *, load: Loader | None = None
) -> set[Path]:
    """Every file and directory that building ``directory`` reads (resolved absolute paths)."""
    root = repo_root if repo_root is not None else directory
    return build(directory, root, load=load).includes


# --------------------------------------------------------------------------- the builder


class _Builder:
    def __init__(self, repo_root: Path, load: Loader) -> None:
        self.repo_root = repo_root
        self.load = load
        self.result = Build(root="")

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.repo_root).as_posix() or "."
        except ValueError:
            return str(path)

    def build_dir(self, directory: Path, stack: tuple[Path, ...]) -> list[Resource]:
        if directory in stack:
            chain = " -> ".join(self.rel(p) for p in (*stack, directory))
            raise KustomizeError(
                f"{self.rel(directory)}: kustomizations include each other ({chain})"
            )
        self.result.includes.add(directory)
        kustomization = find_kustomization(directory)
        if kustomization is None:
            return self.build_implicit(directory, (*stack, directory))
        return self.build_kustomization(kustomization, (*stack, directory), component=False)

    def build_implicit(self, directory: Path, stack: tuple[Path, ...]) -> list[Resource]:
        """Flux's generated kustomization: every manifest, sub-kustomizations as units."""
        resources: list[Resource] = []
        units: set[Path] = set()
        for path in iter_yaml_files(directory):
            if any(unit in path.parents for unit in units):
                continue
            owner = next(
                (
                    parent
                    for parent in reversed(path.parents)
                    if directory in parent.parents and find_kustomization(parent) is not None
                ),
                None,
            )
            if owner is not None:
                units.add(owner)
                resources.extend(self.build_dir(owner, stack))
                continue
            for document in self.load_documents(path):
                if _is_kubernetes_object(document.data) and not _is_kustomize_config(document.data):
                    resources.append(self.resource(path, document))
        return resources

    def build_kustomization(
        self,
        file: Path,
        stack: tuple[Path, ...],
        *,
        component: bool,
        accumulated: list[Resource] | None = None,
    ) -> list[Resource]:
        """Build one kustomization; a component starts from its parent's ``accumulated``
        resources, because its transformers act on them too."""
        where = self.rel(file)
        self.result.kustomization_files.append(where)
        self.result.includes.add(file)
        spec = self.read_kustomization(file, component=component)
        directory = file.parent
        resources: list[Resource] = list(accumulated or [])
        for position, entry in _string_list(spec, "resources", where) + _string_list(
            spec, "bases", where
        ):
            resources.extend(self.include(directory, entry, position, where, stack))
        for position, entry in _string_list(spec, "components", where):
            target = self.resolve_entry(directory, entry, position, where, "components")
            if target is None:
                continue
            component_file = find_kustomization(target) if target.is_dir() else None
            if component_file is None:
                raise KustomizeError(
                    f"{where}: {position} {entry!r}: a component must be a directory with a "
                    "kustomization.yaml of kind Component"
                )
            if target in stack:
                raise KustomizeError(f"{where}: {position} {entry!r}: includes itself")
            self.result.includes.add(target)
            # A component's resources join ours and its transformers act on everything so far.
            resources = self.build_kustomization(
                component_file, (*stack, target), component=True, accumulated=resources
            )
        self.record(spec, where)
        return self.transform(spec, where, resources)

    def include(
        self, directory: Path, entry: str, position: str, where: str, stack: tuple[Path, ...]
    ) -> list[Resource]:
        target = self.resolve_entry(directory, entry, position, where, "resources")
        if target is None:
            return []
        if target.is_dir():
            if find_kustomization(target) is None:
                raise KustomizeError(
                    f"{where}: {position} {entry!r}: the directory has no kustomization.yaml "
                    "(kustomize needs one in every directory listed in resources)"
                )
            if target in stack:
                chain = " -> ".join(self.rel(p) for p in (*stack, target))
                raise KustomizeError(
                    f"{where}: {position} {entry!r}: kustomizations include each other "
                    f"({chain}); kustomize refuses such cycles"
                )
            return self.build_dir(target, stack)
        self.result.includes.add(target)
        try:
            documents = self.load_documents(target)
        except KustomizeError as error:
            raise KustomizeError(f"{where}: {position} {entry!r}: {error}") from None
        resources = []
        for document in documents:
            if not _is_kubernetes_object(document.data):
                raise KustomizeError(
                    f"{where}: {position} {entry!r}: document {document.index + 1} has no "
                    "apiVersion/kind, so it is not a Kubernetes object"
                )
            resources.append(self.resource(target, document))
        return resources

    def resolve_entry(
        self, directory: Path, entry: str, position: str, where: str, field_name: str
    ) -> Path | None:
        if _REMOTE.match(entry):
            self.result.unapplied.append(f"{where}: remote {field_name} entry {entry!r}")
            return None
        target = (directory / entry).resolve()
        if target != self.repo_root and self.repo_root not in target.parents:
            raise KustomizeError(
                f"{where}: {position} {entry!r}: points outside the repository ({target})"
            )
        if not target.exists():
            raise KustomizeError(f"{where}: {position} {entry!r}: no such file or directory")
        return target

    def load_documents(self, path: Path) -> list[Document]:
        try:
            return self.load(path, self.rel(path))
        except ManifestError as error:
            raise KustomizeError(str(error)) from None

    def read_kustomization(self, file: Path, *, component: bool) -> dict[str, Any]:
        where = self.rel(file)
        documents = self.load_documents(file)
        if len(documents) != 1:
            raise KustomizeError(
                f"{where}: must hold exactly one YAML document, found {len(documents)}"
            )
        spec = documents[0].data
        api_version = spec.get("apiVersion")
        kind = spec.get("kind")
        if isinstance(api_version, str) and "toolkit.fluxcd.io" in api_version:
            raise KustomizeError(
                f"{where}: is a Flux Kustomization ({api_version}), not a kustomize "
                "kustomization.yaml; rename the file"
            )
        expected = "Component" if component else "Kustomization"
        if kind is not None and kind != expected:
            raise KustomizeError(f"{where}: kind is {kind!r}, expected {expected!r}")
        return spec

    def resource(self, path: Path, document: Document) -> Resource:
        data = document.data
        metadata = data.get("metadata")
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        return Resource(
            file=self.rel(path),
            index=document.index,
            data=data,
            namespace=namespace if isinstance(namespace, str) and namespace else None,
        )

    def record(self, spec: dict[str, Any], where: str) -> None:
        for name in _UNAPPLIED_FIELDS:
            if spec.get(name):
                self.result.unapplied.append(f"{where}: {name}")
        labels: dict[str, str] = {}
        common = spec.get("commonLabels")
        if isinstance(common, dict):
            labels.update({str(k): str(v) for k, v in common.items()})
        for position, item in enumerate(spec.get("labels") or []):
            pairs = item.get("pairs") if isinstance(item, dict) else None
            if not isinstance(pairs, dict):
                raise KustomizeError(f"{where}: labels[{position}] needs a 'pairs' mapping")
            labels.update({str(k): str(v) for k, v in pairs.items()})
        self.result.labels.update(labels)

    def transform(
        self, spec: dict[str, Any], where: str, resources: list[Resource]
    ) -> list[Resource]:
        namespace = spec.get("namespace")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise KustomizeError(f"{where}: namespace must be a non-empty string")
        images = _images(spec, where)
        if images:
            self.result.images[where] = [dict(image) for image in images]
        if not namespace and not images:
            return resources
        out = []
        for resource in resources:
            data = copy.deepcopy(resource.data)
            effective = resource.namespace
            if namespace:
                effective = _set_namespace(data, namespace) or effective
            for image in images:
                _apply_image(data, image)
            out.append(
                Resource(file=resource.file, index=resource.index, data=data, namespace=effective)
            )
        return out


# --------------------------------------------------------------------------- transformers


def _set_namespace(data: dict[str, Any], namespace: str) -> str | None:
    """kustomize's namespace transformer; returns the object's new namespace (None if none)."""
    metadata = data.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        return None
    kind = data.get("kind")
    if kind == "Namespace":
        metadata["name"] = namespace
        return None
    if kind in _CLUSTER_SCOPED_KINDS:
        return None
    metadata["namespace"] = namespace
    return namespace


def _images(spec: dict[str, Any], where: str) -> list[dict[str, str]]:
    raw = spec.get("images")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise KustomizeError(f"{where}: images must be a list")
    images = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise KustomizeError(f"{where}: images[{position}] needs a 'name'")
        image = {"name": item["name"]}
        for key in ("newName", "newTag", "digest"):
            value = item.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise KustomizeError(f"{where}: images[{position}].{key} must be a string")
            image[key] = str(value)
        images.append(image)
    return images


def _apply_image(node: Any, image: dict[str, str]) -> None:
    """Rewrite every matching ``image`` in ``containers``/``initContainers`` lists, anywhere."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        container["image"] = rewrite_image(container["image"], image)
            _apply_image(value, image)
    elif isinstance(node, list):
        for item in node:
            _apply_image(item, image)


def split_image(reference: str) -> tuple[str, str, str]:
    """``(name, tag, digest)`` of an image reference, as kustomize splits it."""
    slash = reference.find("/")
    offset = slash if slash > 0 else 0
    search = reference[offset:]
    at = search.find("@")
    colon = search.find(":")
    if colon < 0 and at < 0:
        return reference, "", ""
    if at >= 0 and (at < colon or colon < 0):
        return reference[: offset + at], "", reference[offset + at + 1 :]
    if at >= 0 and colon >= 0:
        return (
            reference[: offset + colon],
            reference[offset + colon + 1 : offset + at],
            reference[offset + at + 1 :],
        )
    return reference[: offset + colon], reference[offset + colon + 1 :], ""


def rewrite_image(reference: str, image: dict[str, str]) -> str:
    """Apply one ``images:`` entry to one image reference (unchanged when the name differs)."""
    pattern = "^" + re.escape(image["name"]) + r"(@sha256)?(:[a-zA-Z0-9_.{}-]*)?$"
    if not re.match(pattern, reference):
        return reference
    name, tag, digest = split_image(reference)
    name = image.get("newName") or name
    new_tag, new_digest = image.get("newTag", ""), image.get("digest", "")
    if new_tag and new_digest:
        tag, digest = new_tag, new_digest
    elif new_tag:
        tag, digest = new_tag, ""
    elif new_digest:
        tag, digest = "", new_digest
    return name + (":" + tag if tag else "") + ("@" + digest if digest else "")


# --------------------------------------------------------------------------- helpers


def _string_list(spec: dict[str, Any], key: str, where: str) -> list[tuple[str, str]]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise KustomizeError(f"{where}: {key} must be a list of paths")
    out = []
    for position, entry in enumerate(value):
        if not isinstance(entry, str) or not entry:
            raise KustomizeError(f"{where}: {key}[{position}] must be a path, got {entry!r}")
        out.append((f"{key}[{position}]", entry))
    return out


def _is_kubernetes_object(data: dict[str, Any]) -> bool:
    return isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str)


def _is_kustomize_config(data: dict[str, Any]) -> bool:
    api_version = data.get("apiVersion")
    return isinstance(api_version, str) and api_version.startswith("kustomize.config.k8s.io/")


def kustomization_dirs(paths: Iterable[Path]) -> list[Path]:
    """Directories holding a kustomization file under ``paths`` (resolved, sorted)."""
    found: set[Path] = set()
    for given in paths:
        base = given.resolve()
        if base.is_dir() and find_kustomization(base) is not None:
            found.add(base)
        for path in iter_yaml_files(base):
            if path.name in KUSTOMIZATION_FILES:
                found.add(path.parent.resolve())
        # ``Kustomization`` has no YAML suffix, so it needs its own search.
        if base.is_dir():
            found.update(p.parent.resolve() for p in base.rglob("Kustomization") if p.is_file())
    return sorted(found)


def kubectl_build(
    directory: Path, *, timeout: float = KUBECTL_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """``kubectl kustomize <directory>``: the exact output, for checks and tests."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise KustomizeError("kubectl is not installed (needed to run 'kubectl kustomize')")
    try:
        completed = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise KustomizeError(
            f"{directory}: 'kubectl kustomize' did not finish within {timeout:g}s"
        ) from None
    if completed.returncode != 0:
        message = completed.stderr.strip().splitlines()
        raise KustomizeError(
            f"{directory}: 'kubectl kustomize' failed: {message[-1] if message else 'no output'}"
        )
    try:
        return _parse_kubectl_output(completed.stdout)
    except ManifestError as error:
        raise KustomizeError(str(error)) from None


def _parse_kubectl_output(text: str) -> list[dict[str, Any]]:
    return [document.data for document in load_text(text, "kubectl kustomize output")]
