"""Finding canaries in the config repository and everything each one needs for a tick.

Owns turning a checkout plus the ``--path`` list into :class:`Discovery`: every Canary,
MetricTemplate and AlertProvider under the paths (whether or not a kustomization lists the
file), and for each canary its target Deployment *as it will be applied*: built through the
kustomizations under the paths (``namespace:`` and ``images:`` applied, see
:mod:`gitops_canary.repo.kustomize`) or read from a manifest no kustomization includes. From
that come the revision (hash of the effective pod template, so an image bumped in either
``deployment.yaml`` or the kustomization's ``images:`` is a new revision), the tracked
ConfigMaps and Secrets (``flagger-behaviour.md`` §3.2), the HPA, and the committed state of the
owned directory (status and generated objects).

A problem with one canary (invalid spec, missing target, missing MetricTemplate, broken
kustomization on its path) is recorded on that canary, which is then not runnable; discovery of
the others goes on. Problems with no canary to pin them on land in :attr:`Discovery.issues`.

Parsing goes through :class:`ParseCache`, keyed by git blob id, so a tick re-parses only the
files that changed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast

from gitops_canary.core.hashing import config_checksum, pod_template_hash
from gitops_canary.core.promql import QueryPlanError, plan_queries
from gitops_canary.core.specs import AlertProvider, Canary, MetricTemplate
from gitops_canary.core.status import CanaryStatus
from gitops_canary.core.validation import Issue, effective_provider, parse_document
from gitops_canary.repo.kustomize import (
    KUSTOMIZATION_FILES,
    Build,
    KustomizeError,
    Resource,
    build,
    kustomization_dirs,
)
from gitops_canary.repo.layout import (
    OWNED_DIR,
    LayoutError,
    generated_dir,
    read_generated,
    read_status,
)
from gitops_canary.repo.manifests import (
    MAX_FILE_BYTES,
    Document,
    ManifestError,
    iter_yaml_files,
    load_file,
    load_text,
    refuse_oversized,
)

_T = TypeVar("_T")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

FLAGGER_KINDS = frozenset({"Canary", "MetricTemplate", "AlertProvider"})
#: Secret types Flagger tracks (``config_tracker.go``); a Secret without ``type`` is Opaque.
TRACKED_SECRET_TYPES = frozenset(
    {"Opaque", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/tls"}
)
CONFIG_TRACKING_ANNOTATION = "flagger.app/config-tracking"
GIT_TIMEOUT_SECONDS = 30.0


# --------------------------------------------------------------------------- the parse cache


#: A provider, or a function of the Canary's repo-relative file that picks one.
DefaultProvider = str | None | Callable[[str], str | None]


def git_blob_id(content: bytes) -> str:
    """The id git gives a blob with this content (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def blob_ids(repo_root: Path) -> dict[str, str]:
    """Repo-relative path -> blob id of the index (``git ls-files -s``); empty outside git."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(repo_root), "ls-files", "-s", "-z"],
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if completed.returncode != 0:
        return {}
    ids: dict[str, str] = {}
    for entry in completed.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3:
            ids[path.decode("utf-8", "surrogateescape")] = parts[1].decode()
    return ids


#: The committed state of an owned directory: its status and generated objects, or the error.
_Owned = tuple[CanaryStatus, dict[str, dict[str, Any]]] | LayoutError


class ParseCache:
    """Parsed documents keyed by (file, git blob id of its content).

    The content is read and hashed on every tick (cheap); it is parsed only when its blob id is
    new. :attr:`parses` counts real parses, so tests and benchmarks can see the reuse. Values
    derived from a file (a validated Canary, an owned directory's status) are kept the same way,
    so an unchanged file costs a read and a hash, never a parse or a validation.
    """

    def __init__(self) -> None:
        self._documents: dict[tuple[str, str], list[Document] | ManifestError] = {}
        self._seen: set[tuple[str, str]] = set()
        #: display -> blob id of the content loaded since the last prune.
        self._blobs: dict[str, str] = {}
        self._by_blob: dict[str, list[Document]] = {}
        self._derived: dict[tuple[str, str, Hashable], Any] = {}
        self._owned: dict[tuple[str, tuple[tuple[str, str], ...]], _Owned] = {}
        self._owned_seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._builds: dict[Path, tuple[Build, _BuildInputs]] = {}
        self._builds_seen: set[Path] = set()
        self.parses = 0

    def load(self, path: Path, display: str) -> list[Document]:
        try:
            refuse_oversized(path, display)  # before reading: a huge file costs nothing
            content = path.read_bytes()
        except OSError as error:
            raise ManifestError(display, f"cannot read the file: {error.strerror}") from None
        key = (display, git_blob_id(content))
        self._seen.add(key)
        self._blobs[display] = key[1]
        cached = self._documents.get(key)
        if cached is None:
            same = self._by_blob.get(key[1])
            if same is not None:
                # The same bytes under another name (the owned-directory reader names files by
                # absolute path, kustomize builds by repo-relative path): parsed once.
                cached = [replace(document, file=display) for document in same]
            else:
                self.parses += 1
                try:
                    cached = _parse(content, display)
                except ManifestError as error:
                    cached = error
                else:
                    self._by_blob[key[1]] = cached
            self._documents[key] = cached
        if isinstance(cached, ManifestError):
            raise cached
        return cached

    def derived(self, display: str, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()``, a function of file ``display`` (loaded earlier in this discovery) and
        ``key`` only; reused for as long as the file's content is unchanged."""
        blob = self._blobs.get(display)
        if blob is None:
            return compute()
        full_key = (display, blob, key)
        if full_key in self._derived:
            return cast(_T, self._derived[full_key])
        value = compute()
        self._derived[full_key] = value
        return value

    def owned(self, directory: Path) -> tuple[CanaryStatus, dict[str, dict[str, Any]]]:
        """:func:`read_status` and :func:`read_generated` of an owned directory, read again
        only when a file in it changed. Raises :class:`LayoutError` as they do."""
        try:
            files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
            if any(path.stat().st_size > MAX_FILE_BYTES for path in files):
                raise OSError("too large to read")
            key = (
                str(directory),
                tuple((path.name, git_blob_id(path.read_bytes())) for path in files),
            )
        except OSError:
            return read_status(directory), read_generated(directory)  # let them word the error
        self._owned_seen.add(key)
        # Keep their parsed documents too: a kustomize build that reads them again reuses them.
        self._seen.update((str(directory / name), blob) for name, blob in key[1])
        cached = self._owned.get(key)
        if cached is None:
            try:
                load = self._load_as_layout_does
                cached = (read_status(directory, load=load), read_generated(directory, load=load))
            except LayoutError as error:
                cached = error
            self._owned[key] = cached
        if isinstance(cached, LayoutError):
            raise cached
        return cached

    def build(self, directory: Path, make: Callable[[], Build]) -> Build:
        """``make()``, the kustomize build of ``directory``, reused for as long as every file
        it read has the same content and every directory on the way the same entries.

        Only builds that stay inside ``directory``, without symlinks or directories lacking a
        kustomization (read by walking them), are kept; the others are built every time.
        """
        self._builds_seen.add(directory)
        kept = self._builds.get(directory)
        if kept is not None and _build_inputs(kept[0], directory) == kept[1]:
            return kept[0]
        self._builds.pop(directory, None)
        made = make()
        inputs = _build_inputs(made, directory)
        if inputs is not None:
            self._builds[directory] = (made, inputs)
        return made

    def _load_as_layout_does(self, path: Path) -> list[Document]:
        """:func:`load_file` through the cache: same documents, and for a file that cannot be
        read, load_file's own error."""
        try:
            return self.load(path, str(path))
        except ManifestError:
            return load_file(path)

    def prune(self) -> None:
        """Forget entries not used since the last prune (call once per discovery)."""
        self._documents = {k: v for k, v in self._documents.items() if k in self._seen}
        blobs = {blob for _, blob in self._seen}
        self._by_blob = {k: v for k, v in self._by_blob.items() if k in blobs}
        self._derived = {k: v for k, v in self._derived.items() if (k[0], k[1]) in self._seen}
        self._owned = {k: v for k, v in self._owned.items() if k in self._owned_seen}
        self._builds = {k: v for k, v in self._builds.items() if k in self._builds_seen}
        self._builds_seen = set()
        self._seen = set()
        self._blobs = {}
        self._owned_seen = set()


#: What a kustomize build read: each directory's entries (name, is a directory), each file's blob.
_BuildInputs = tuple[
    tuple[tuple[str, tuple[tuple[str, bool], ...]], ...], tuple[tuple[str, str], ...]
]


def _build_inputs(made: Build, directory: Path) -> _BuildInputs | None:
    """The inputs of ``made``, to tell whether building ``directory`` again would read the
    same; None when they cannot be told that way (see :meth:`ParseCache.build`)."""
    root = str(directory)
    inside = root + os.sep
    built: set[str] = set()  # directories the build read as kustomizations
    scanned = {root}
    files: list[tuple[str, str]] = []
    for path in sorted(str(p) for p in made.includes):
        if path != root and not path.startswith(inside):
            return None  # reads outside its directory (a shared base): built every time
        if os.path.isdir(path):
            built.add(path)
            scanned.add(path)
        else:
            try:
                if os.path.getsize(path) > MAX_FILE_BYTES:
                    return None
                with open(path, "rb") as handle:
                    files.append((path, git_blob_id(handle.read())))
            except OSError:
                return None
        parent = os.path.dirname(path)
        while parent.startswith(inside) and parent not in scanned:
            scanned.add(parent)
            parent = os.path.dirname(parent)
    listings: list[tuple[str, tuple[tuple[str, bool], ...]]] = []
    for folder in sorted(scanned):
        try:
            with os.scandir(folder) as entries:
                listing = sorted(
                    (entry.name, entry.is_dir(follow_symlinks=False), entry.is_symlink())
                    for entry in entries
                )
        except OSError:
            return None
        if any(is_link for _, _, is_link in listing):
            return None
        names = {name for name, is_dir, _ in listing if not is_dir}
        if folder in built and names.isdisjoint(KUSTOMIZATION_FILES):
            return None  # a directory read by walking it
        listings.append((folder, tuple((name, is_dir) for name, is_dir, _ in listing)))
    return tuple(listings), tuple(files)


def _parse(content: bytes, display: str) -> list[Document]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(
            display, f"is not valid UTF-8 (byte {error.start}); save it as UTF-8"
        ) from None
    return load_text(text, display)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SourceObject:
    """An object as it will be applied, and where it is written."""

    file: str  # repo-relative file holding it
    index: int  # document index in that file
    data: dict[str, Any]  # after kustomize's namespace and images transformers
    build_root: str | None  # the kustomization directory it was built through (None: loose)


@dataclass
class DiscoveredCanary:
    file: str  # repo-relative file of the Canary
    index: int
    name: str
    namespace: str
    canary: Canary | None = None  # None when the spec is invalid (see issues)
    provider: str | None = None
    target: SourceObject | None = None
    #: The effective pod template (images applied) and its hash.
    template: dict[str, Any] | None = None
    revision: str | None = None
    hpa: SourceObject | None = None
    #: ``"configmap/<name>"``/``"secret/<name>"`` -> checksum of its data (Flagger's format).
    tracked_configs: dict[str, str] = field(default_factory=dict)
    #: The tracked ConfigMaps and Secrets themselves, same keys (to render ``-primary`` copies).
    configs: dict[str, SourceObject] = field(default_factory=dict)
    metric_templates: dict[str, MetricTemplate] = field(default_factory=dict)
    alert_providers: dict[str, AlertProvider] = field(default_factory=dict)
    generated_dir: str = ""  # repo-relative owned directory
    generated_included: bool = False  # some kustomization under the paths lists it
    status: CanaryStatus = field(default_factory=CanaryStatus)
    #: The committed generated objects by file name (e.g. ``deployment-podinfo-primary.yaml``).
    generated: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)  # blocking: the canary is not runnable
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def runnable(self) -> bool:
        return self.canary is not None and self.target is not None and not self.issues

    @property
    def canary_dir(self) -> str:
        # ``file`` is normalised (discovery makes it), so this is PurePosixPath(file).parent,
        # without building a path object for every canary on every tick.
        parent, _, _ = self.file.rpartition("/")
        return parent or ("/" if self.file.startswith("/") else ".")

    def primary_template(self) -> dict[str, Any] | None:
        """The pod template of the committed primary Deployment, if there is one."""
        for obj in self.generated.values():
            if obj.get("kind") == "Deployment":
                spec = obj.get("spec")
                if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
                    return dict(spec["template"])
        return None

    def committed_config_copies(self) -> dict[str, dict[str, Any]]:
        """Committed ``-primary`` ConfigMaps and Secrets by file name."""
        return {
            name: obj
            for name, obj in self.generated.items()
            if obj.get("kind") in ("ConfigMap", "Secret")
        }


@dataclass
class Discovery:
    canaries: list[DiscoveredCanary] = field(default_factory=list)
    metric_templates: dict[str, MetricTemplate] = field(default_factory=dict)
    alert_providers: dict[str, AlertProvider] = field(default_factory=dict)
    #: Problems not tied to one canary (unreadable files, broken kustomizations, bad templates).
    issues: list[str] = field(default_factory=list)

    def canary(self, key: str) -> DiscoveredCanary | None:
        return next((c for c in self.canaries if c.key == key), None)


# --------------------------------------------------------------------------- discover


def discover(
    repo_root: Path,
    paths: Sequence[str],
    *,
    default_provider: DefaultProvider,
    cache: ParseCache | None = None,
) -> Discovery:
    """Find every canary under ``paths`` (repo-relative) and resolve what it needs.

    ``default_provider`` is the provider for canaries without ``spec.provider``: one value, or a
    function of the Canary's repo-relative file (per-path defaults from the configuration).
    """
    return _Discoverer(repo_root.resolve(), paths, default_provider, cache or ParseCache()).run()


class _Discoverer:
    def __init__(
        self,
        repo_root: Path,
        paths: Sequence[str],
        default_provider: DefaultProvider,
        cache: ParseCache,
    ) -> None:
        self.repo_root = repo_root
        self.paths = list(paths) or ["."]
        self.default_provider = default_provider
        self.cache = cache
        self.result = Discovery()
        self.builds: list[Build] = []
        self.broken: dict[Path, str] = {}  # kustomization dir -> error
        self.index: list[SourceObject] = []
        self.flagger_docs: list[Document] = []
        self.included_files: set[Path] = set()
        self.kustomization_dirs: list[Path] = []
        self.canary_docs: list[tuple[Document, Canary | None, list[Issue]]] = []
        #: The file each MetricTemplate came from, to name it in query problems.
        self.template_files: dict[str, str] = {}
        self._by_kind_and_name: dict[tuple[str, str], list[SourceObject]] | None = None
        self._resources_under: dict[str, list[tuple[Build, Resource]]] | None = None
        self._builds_by_root: dict[str, list[Build]] | None = None

    def provider_for(self, file: str) -> str | None:
        if callable(self.default_provider):
            return self.default_provider(file)
        return self.default_provider

    # -- helpers

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.repo_root).as_posix() or "."
        except ValueError:
            return str(path)

    def load(self, path: Path, display: str) -> list[Document]:
        return self.cache.load(path, display)

    def searched(self) -> str:
        return ", ".join(p.rstrip("/") + "/" if p != "." else "./" for p in self.paths)

    # -- phases

    def run(self) -> Discovery:
        roots = self.roots()
        files = self.files(roots)
        documents = self.parse(files)
        self.build_kustomizations(roots)
        self.index_loose(files, documents)
        self.read_flagger_objects()
        self.resolve_all()
        self.cache.prune()
        return self.result

    def roots(self) -> list[Path]:
        roots = []
        for given in self.paths:
            path = (self.repo_root / given).resolve()
            if path != self.repo_root and self.repo_root not in path.parents:
                self.result.issues.append(f"--path {given!r} points outside the repository")
            elif not path.exists():
                self.result.issues.append(f"--path {given!r} does not exist in the repository")
            else:
                roots.append(path)
        return roots

    def files(self, roots: Iterable[Path]) -> list[Path]:
        found: dict[Path, None] = {}
        for root in roots:
            for path in iter_yaml_files(root):
                if _in_owned_dir(path):
                    continue  # our own output is read through read_generated/read_status
                # Roots are resolved and the walk does not enter symlinked directories, so only
                # a symlinked file needs resolving (resolving every path is slow in a monorepo).
                found.setdefault(path.resolve() if path.is_symlink() else path, None)
        return list(found)

    def parse(self, files: Iterable[Path]) -> dict[Path, list[Document]]:
        parsed: dict[Path, list[Document]] = {}
        for path in files:
            try:
                parsed[path] = self.load(path, self.rel(path))
            except ManifestError as error:
                self.result.issues.append(str(error))
                continue
            for document in parsed[path]:
                if _is_flagger(document.data):
                    self.flagger_docs.append(document)
        return parsed

    def build_kustomizations(self, roots: list[Path]) -> None:
        attempted: list[Build] = []
        self.kustomization_dirs = kustomization_dirs(roots)
        for directory in self.kustomization_dirs:
            if _in_owned_dir(directory / "x"):
                continue
            try:
                attempted.append(
                    self.cache.build(
                        directory, partial(build, directory, self.repo_root, load=self.load)
                    )
                )
            except KustomizeError as error:
                self.broken[directory] = str(error)
        included: set[Path] = set()
        for one in attempted:
            root = (self.repo_root / one.root).resolve()
            included.update(p for p in one.includes if p != root)
        # Only top-level builds: a base is seen through the overlay that applies it.
        self.builds = [b for b in attempted if (self.repo_root / b.root).resolve() not in included]
        for one in self.builds:
            for resource in one.resources:
                if _is_flagger(resource.data):
                    continue
                self.index.append(_source(resource, one.root))
        for one in attempted:
            self.included_files.update(one.includes)

    def index_loose(self, files: list[Path], documents: dict[Path, list[Document]]) -> None:
        kustomization_dirs = set(self.kustomization_dirs)
        for path in files:
            if path in self.included_files:
                continue
            if not kustomization_dirs.isdisjoint(path.parents):
                continue  # a kustomization decides what its directory applies; this is not listed
            for document in documents.get(path, []):
                data = document.data
                if _is_flagger(data) or not _is_object(data) or _is_kustomize_config(data):
                    continue
                self.index.append(SourceObject(self.rel(path), document.index, data, None))

    def read_flagger_objects(self) -> None:
        for document in self.flagger_docs:
            provider = self.provider_for(document.file)
            parsed, issues = self.cache.derived(
                document.file,
                ("flagger", document.index, provider),
                partial(parse_document, document.data, document.file, default_provider=provider),
            )
            kind = document.data.get("kind")
            if kind == "Canary":
                self.canary_docs.append(
                    (document, parsed if isinstance(parsed, Canary) else None, list(issues))
                )
                continue
            self.result.issues.extend(str(issue) for issue in issues)
            if isinstance(parsed, MetricTemplate):
                self.add_unique(self.result.metric_templates, parsed.key, parsed, document)
                self.template_files.setdefault(parsed.key, document.file)
            elif isinstance(parsed, AlertProvider):
                self.add_unique(self.result.alert_providers, parsed.key, parsed, document)

    def add_unique(self, into: dict[str, Any], key: str, value: Any, document: Document) -> None:
        if key in into:
            self.result.issues.append(
                f"{document.file}: {document.data.get('kind')} {key} is defined more than once "
                "under the paths; the first one found is used"
            )
            return
        into[key] = value

    def resolve_all(self) -> None:
        found = [
            self.resolve(document, canary, issues) for document, canary, issues in self.canary_docs
        ]
        self.flag_conflicts(found)
        self.result.canaries = sorted(found, key=lambda c: (c.namespace, c.name, c.file))

    # -- one canary

    def resolve(
        self, document: Document, canary: Canary | None, issues: list[Issue]
    ) -> DiscoveredCanary:
        metadata = document.data.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name = str(metadata.get("name") or "")
        namespace = str(metadata.get("namespace") or "default")
        found = DiscoveredCanary(
            file=document.file,
            index=document.index,
            name=name,
            namespace=namespace,
            canary=canary,
            issues=[str(issue) for issue in issues if issue.is_error],
            warnings=[str(issue) for issue in issues if not issue.is_error],
        )
        if _DNS1123.match(name):
            # Only a DNS-1123 name becomes a path: anything else could point outside the
            # repository.
            canary_dir = PurePosixPath(document.file).parent
            found.generated_dir = generated_dir(canary_dir, name).as_posix()
            self.read_owned(found)
        self.blame_broken_kustomizations(found)
        if canary is None:
            if not found.issues:
                found.issues.append(f"{document.file}: Canary {found.key}: the spec is invalid")
            return found
        found.provider = effective_provider(canary, self.provider_for(document.file))
        where = f"{document.file}: Canary {canary.key}"
        self.resolve_target(found, canary, where)
        self.resolve_hpa(found, canary, where)
        self.resolve_templates(found, canary, where)
        self.resolve_alerts(found, canary, where)
        return found

    def read_owned(self, found: DiscoveredCanary) -> None:
        directory = self.repo_root / found.generated_dir
        try:
            found.status, found.generated = self.cache.owned(directory)
        except LayoutError as error:
            found.issues.append(f"{error} (gitops-canary owns this file; restore it from git)")
        # Every build's includes are in included_files (see build_kustomizations).
        included = directory.resolve() in self.included_files
        found.generated_included = included
        self.warn_rewritten_generated(found)
        if directory.is_dir() and not included:
            found.warnings.append(
                f"{found.file}: Canary {found.key}: {found.generated_dir} is not listed in any "
                f"kustomization's resources under {self.searched()}; add "
                f"'gitops-canary/{found.name}' to the resources of the kustomization next to "
                "the Canary so the primary, Services and route get applied"
            )

    def warn_rewritten_generated(self, found: DiscoveredCanary) -> None:
        """A kustomization ``images:`` entry also rewrites the generated primary when the owned
        directory is listed below it: the primary would then run the new image before the
        analysis promoted it."""
        for one, resource in self.resources_under().get(found.generated_dir, []):
            committed = found.generated.get(PurePosixPath(resource.file).name)
            if committed is None or _images(committed) == _images(resource.data):
                continue
            found.warnings.append(
                f"{found.file}: Canary {found.key}: the kustomization in {one.root} rewrites "
                f"the images of the generated {resource.file} ({', '.join(one.images)} "
                "images:), so the primary would change before promotion; list "
                f"{found.generated_dir} in a kustomization without images: entries"
            )

    def resources_under(self) -> dict[str, list[tuple[Build, Resource]]]:
        """Every build resource under each directory (any depth), in build order; built once.

        Looking a directory up here instead of scanning every build keeps discovery linear in
        the number of canaries."""
        if self._resources_under is None:
            index: dict[str, list[tuple[Build, Resource]]] = {}
            for one in self.builds:
                for resource in one.resources:
                    parts = resource.file.split("/")
                    for end in range(1, len(parts)):
                        index.setdefault("/".join(parts[:end]), []).append((one, resource))
            self._resources_under = index
        return self._resources_under

    def blame_broken_kustomizations(self, found: DiscoveredCanary) -> None:
        canary_dir = (self.repo_root / found.file).resolve().parent
        for directory, message in self.broken.items():
            if directory == canary_dir or directory in canary_dir.parents:
                found.issues.append(f"{found.file}: Canary {found.key}: {message}")

    def lookup(
        self, kind: str, name: str, namespace: str, canary_dir: str
    ) -> tuple[SourceObject | None, list[SourceObject], list[SourceObject]]:
        """(chosen, ambiguous candidates, same name in other namespaces)."""
        named = self.by_kind_and_name().get((kind, name), [])
        here = [o for o in named if _namespace(o) in (namespace, None)]
        elsewhere = [o for o in named if _namespace(o) not in (namespace, None)]
        distinct = _distinct(here)
        if len(distinct) > 1:
            # Prefer what the kustomization around the Canary applies (overlay layouts).
            near = [
                o
                for o in distinct
                if o.build_root is not None
                and (o.build_root == "." or _under(canary_dir, o.build_root))
            ]
            near = _distinct(near)
            if len(near) == 1:
                return near[0], [], elsewhere
            exact = _distinct([o for o in distinct if _namespace(o) == namespace])
            if len(exact) == 1:
                return exact[0], [], elsewhere
            return None, distinct, elsewhere
        return (distinct[0] if distinct else None), [], elsewhere

    def by_kind_and_name(self) -> dict[tuple[str, str], list[SourceObject]]:
        """:attr:`index` grouped by (kind, name), in index order (built once, on first use)."""
        if self._by_kind_and_name is None:
            grouped: dict[tuple[str, str], list[SourceObject]] = {}
            for obj in self.index:
                grouped.setdefault((str(obj.data.get("kind")), _name(obj.data)), []).append(obj)
            self._by_kind_and_name = grouped
        return self._by_kind_and_name

    def resolve_target(self, found: DiscoveredCanary, canary: Canary, where: str) -> None:
        ref = canary.spec.target_ref
        if ref.kind != "Deployment":
            found.issues.append(
                f"{where}: spec.targetRef.kind: {ref.kind} targets are not supported; "
                "gitops-canary handles Deployments"
            )
            return
        target, ambiguous, elsewhere = self.lookup(
            "Deployment", ref.name, canary.namespace, found.canary_dir
        )
        if ambiguous:
            places = ", ".join(_where(o) for o in ambiguous)
            found.issues.append(
                f"{where}: spec.targetRef: Deployment {canary.namespace}/{ref.name} is defined "
                f"more than once under {self.searched()} ({places}); narrow --path to one cluster"
            )
            return
        if target is None:
            message = (
                f"{where}: spec.targetRef: Deployment {canary.namespace}/{ref.name} not found "
                f"under {self.searched()} (looked in {self.looked_in()})"
            )
            if elsewhere:
                message += (
                    f"; found it in namespace {_namespace(elsewhere[0])} ({_where(elsewhere[0])}),"
                    " but a Canary can only target a Deployment in its own namespace"
                )
            found.issues.append(message)
            return
        found.target = target
        spec = target.data.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        if not isinstance(template, dict):
            found.issues.append(
                f"{target.file}: Deployment {canary.namespace}/{ref.name}: spec.template is "
                "missing; the Deployment is invalid"
            )
            return
        found.template = template
        found.revision = pod_template_hash(template)
        self.warn_unapplied(found, target, where)
        self.resolve_configs(found, canary, template, where)

    def looked_in(self) -> str:
        places = [
            b.kustomization_files[0] if b.kustomization_files else b.root for b in self.builds
        ]
        loose = sorted({o.file for o in self.index if o.build_root is None})
        places.extend(loose[:5])
        if len(loose) > 5:
            places.append(f"{len(loose) - 5} more files")
        return ", ".join(places) or "no manifests"

    def builds_by_root(self) -> dict[str, list[Build]]:
        if self._builds_by_root is None:
            grouped: dict[str, list[Build]] = {}
            for one in self.builds:
                grouped.setdefault(one.root, []).append(one)
            self._builds_by_root = grouped
        return self._builds_by_root

    def warn_unapplied(self, found: DiscoveredCanary, target: SourceObject, where: str) -> None:
        for one in self.builds_by_root().get(target.build_root or "", []):
            if one.unapplied:
                found.warnings.append(
                    f"{where}: the kustomization that applies the target uses fields this reader "
                    f"does not apply ({'; '.join(one.unapplied)}); the revision is computed "
                    "without them"
                )

    def resolve_hpa(self, found: DiscoveredCanary, canary: Canary, where: str) -> None:
        ref = canary.spec.autoscaler_ref
        if ref is None:
            return
        hpa, ambiguous, _ = self.lookup(ref.kind, ref.name, canary.namespace, found.canary_dir)
        if hpa is None:
            what = "defined more than once" if ambiguous else "not found"
            found.issues.append(
                f"{where}: spec.autoscalerRef: {ref.kind} {canary.namespace}/{ref.name} {what} "
                f"under {self.searched()}"
            )
            return
        found.hpa = hpa

    def resolve_configs(
        self, found: DiscoveredCanary, canary: Canary, template: dict[str, Any], where: str
    ) -> None:
        for (kind, name), optional in sorted(config_references(template).items()):
            source, _, _ = self.lookup(kind, name, canary.namespace, found.canary_dir)
            if source is None:
                if not optional:
                    found.warnings.append(
                        f"{where}: the target uses {kind} {canary.namespace}/{name}, which is not "
                        f"in the manifests under {self.searched()} (created another way?); "
                        "changes to it will not start a canary run"
                    )
                continue
            if not _tracked(source.data):
                continue
            key = f"{kind.lower()}/{name}"
            found.tracked_configs[key] = config_checksum(_config_data(source.data))
            found.configs[key] = source

    def resolve_templates(self, found: DiscoveredCanary, canary: Canary, where: str) -> None:
        for position, metric in enumerate(canary.spec.analysis.metrics):
            ref = metric.template_ref
            if ref is None:
                continue
            key = f"{ref.namespace or canary.namespace}/{ref.name}"
            template = self.result.metric_templates.get(key)
            if template is None:
                found.issues.append(
                    f"{where}: spec.analysis.metrics[{position}].templateRef: MetricTemplate "
                    f"{key} not found under {self.searched()}"
                )
            else:
                found.metric_templates[key] = template
        self.check_queries(found, canary, where)

    def check_queries(self, found: DiscoveredCanary, canary: Canary, where: str) -> None:
        """Render every query now, so a template using something gitops-canary does not render
        (``{{ .Env }}``, pipelines, a missing variable) stops this canary here, with the file
        and field named, not as a failed check in the middle of a rollout."""
        if found.provider is None:
            return
        plan = plan_queries(canary, found.provider, found.metric_templates, "http://prometheus")
        metrics = canary.spec.analysis.metrics
        for item in plan:
            if not isinstance(item, QueryPlanError) or "no usable metrics template" in item.message:
                continue
            position = metrics.index(item.metric)
            ref = item.metric.template_ref
            reason = item.message.split(" render error: ", 1)[-1]
            if ref is None or item.source.value != "template":
                found.issues.append(f"{where}: spec.analysis.metrics[{position}].query: {reason}")
                continue
            key = f"{ref.namespace or canary.namespace}/{ref.name}"
            if key not in found.metric_templates:
                continue  # reported above as not found
            template_file = self.template_files.get(key, "(unknown file)")
            found.issues.append(
                f"{template_file}: MetricTemplate {key}: spec.query: {reason} (used by "
                f"spec.analysis.metrics[{position}] of {where})"
            )

    def resolve_alerts(self, found: DiscoveredCanary, canary: Canary, where: str) -> None:
        for position, alert in enumerate(canary.spec.analysis.alerts):
            ref = alert.provider_ref
            key = f"{ref.namespace or canary.namespace}/{ref.name}"
            provider = self.result.alert_providers.get(key)
            if provider is None:
                found.issues.append(
                    f"{where}: spec.analysis.alerts[{position}].providerRef: AlertProvider "
                    f"{key} not found under {self.searched()}"
                )
            else:
                found.alert_providers[key] = provider

    def flag_conflicts(self, found: list[DiscoveredCanary]) -> None:
        by_key: dict[str, list[DiscoveredCanary]] = {}
        by_target: dict[tuple[str, str], list[DiscoveredCanary]] = {}
        for one in found:
            by_key.setdefault(one.key, []).append(one)
            if one.canary is not None:
                by_target.setdefault((one.namespace, one.canary.target_name), []).append(one)
        for canary_key, same in by_key.items():
            if len(same) > 1:
                files = ", ".join(c.file for c in same)
                for one in same:
                    one.issues.append(
                        f"{one.file}: Canary {canary_key}: defined more than once ({files}); "
                        "keep one"
                    )
        for (namespace, target), same in by_target.items():
            if len({c.key for c in same}) > 1:
                names = ", ".join(sorted(c.key for c in same))
                for one in same:
                    one.issues.append(
                        f"{one.file}: Canary {one.key}: spec.targetRef: Deployment "
                        f"{namespace}/{target} is the target of several canaries ({names}); "
                        "a Deployment can have only one"
                    )


# --------------------------------------------------------------------------- config tracking


def config_references(template: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(``ConfigMap``|``Secret``, name) -> optional, for every reference in a pod template.

    A name referenced both optionally and not is required.
    """
    refs: dict[tuple[str, str], bool] = {}

    def add(kind: str, holder: Any, name_key: str = "name") -> None:
        if not isinstance(holder, dict):
            return
        name = holder.get(name_key)
        if isinstance(name, str) and name:
            optional = holder.get("optional") is True
            refs[(kind, name)] = refs.get((kind, name), True) and optional

    spec = template.get("spec")
    if not isinstance(spec, dict):
        return refs
    for volume in _dicts(spec.get("volumes")):
        add("ConfigMap", volume.get("configMap"))
        add("Secret", volume.get("secret"), "secretName")
        projected = volume.get("projected")
        if isinstance(projected, dict):
            for source in _dicts(projected.get("sources")):
                add("ConfigMap", source.get("configMap"))
                add("Secret", source.get("secret"))
    for container in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
        for env in _dicts(container.get("env")):
            value_from = env.get("valueFrom")
            if isinstance(value_from, dict):
                add("ConfigMap", value_from.get("configMapKeyRef"))
                add("Secret", value_from.get("secretKeyRef"))
        for env_from in _dicts(container.get("envFrom")):
            add("ConfigMap", env_from.get("configMapRef"))
            add("Secret", env_from.get("secretRef"))
    return refs


def _tracked(data: dict[str, Any]) -> bool:
    metadata = data.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict):
        value = annotations.get(CONFIG_TRACKING_ANNOTATION)
        if isinstance(value, str) and value.startswith("disable"):
            return False
    if data.get("kind") == "Secret":
        return str(data.get("type") or "Opaque") in TRACKED_SECRET_TYPES
    return True


def _config_data(data: dict[str, Any]) -> dict[str, str]:
    """``.data`` as the API server holds it: a Secret's ``stringData`` is base64-encoded into it."""
    out = {str(k): "" if v is None else str(v) for k, v in (data.get("data") or {}).items()}
    if data.get("kind") == "Secret":
        for key, value in (data.get("stringData") or {}).items():
            out[str(key)] = base64.b64encode(str(value).encode()).decode()
    return out


# --------------------------------------------------------------------------- small helpers


def _images(obj: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers"):
                    found.extend(str(c.get("image")) for c in _dicts(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_object(data: dict[str, Any]) -> bool:
    return isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str)


def _is_flagger(data: dict[str, Any]) -> bool:
    api_version = data.get("apiVersion")
    return (
        isinstance(api_version, str)
        and api_version.startswith("flagger.app/")
        and data.get("kind") in FLAGGER_KINDS
    )


def _is_kustomize_config(data: dict[str, Any]) -> bool:
    api_version = data.get("apiVersion")
    return isinstance(api_version, str) and api_version.startswith("kustomize.config.k8s.io/")


def _in_owned_dir(path: Path) -> bool:
    parts = path.parts
    return len(parts) >= 3 and parts[-3] == OWNED_DIR


def _name(data: dict[str, Any]) -> str:
    metadata = data.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _namespace(obj: SourceObject) -> str | None:
    metadata = obj.data.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else None


def _source(resource: Resource, build_root: str) -> SourceObject:
    return SourceObject(resource.file, resource.index, resource.data, build_root)


def _distinct(objects: list[SourceObject]) -> list[SourceObject]:
    """One per (file, document, content): a base seen through two builds alike counts once."""
    seen: dict[tuple[str, int, str], SourceObject] = {}
    for obj in objects:
        seen.setdefault((obj.file, obj.index, repr(obj.data)), obj)
    return list(seen.values())


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _where(obj: SourceObject) -> str:
    via = f" via the kustomization in {obj.build_root}" if obj.build_root is not None else ""
    return f"{obj.file}{via}"
