"""Reading YAML manifests from the config repository, safely.

This module owns turning the bytes of a ``*.yaml`` file into plain Python documents
(dicts, lists, str, int, float, bool, None) and refusing, with a one-line message that names
the file, anything that is not a clean Kubernetes-style manifest: files that are too large,
not UTF-8, not valid YAML, documents that are not mappings, duplicate keys, and anchor/alias
"bombs" that expand to far more data than the file holds.

The file is composed into a YAML node graph first and converted by hand, so that every
limit is checked on the graph (where an alias is one shared node) before anything is
expanded. No ruamel type escapes this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

#: Files larger than this are refused before they are read.
MAX_FILE_BYTES: int = 5 * 1024 * 1024
#: How many nodes aliases may add on top of what the file literally contains. Real manifests
#: reuse a few anchors; a billion-laughs file asks for ~10^9 and is refused from the graph alone.
MAX_ALIAS_EXPANSION_NODES: int = 250_000
#: Deepest nesting accepted. Kubernetes objects are rarely more than ~20 levels deep.
MAX_NESTING_DEPTH: int = 100

YAML_SUFFIXES = (".yaml", ".yml")

_TAG_PREFIX = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG_PREFIX + "merge"


class ManifestError(Exception):
    """A file that cannot be read as manifests. ``str(error)`` is ``"<file>: <message>"``."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


@dataclass(frozen=True)
class Document:
    """One non-empty YAML document of a file."""

    file: str  # path as given for display (repo-relative when known)
    index: int  # 0-based position of the document in the file, empty documents included
    data: dict[str, Any]  # plain dicts/lists/str/int/float/bool/None


def load_file(
    path: Path, *, display: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> list[Document]:
    """Read and parse ``path``. ``display`` is the name used in documents and errors."""
    file = display if display is not None else str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            # Checked before opening: a huge file is never read into memory.
            raise ManifestError(file, _too_large(size, max_bytes))
        if path.is_dir():
            raise ManifestError(file, "is a directory, expected a YAML file")
        with path.open("rb") as handle:
            # Bounded read, in case the file grew after stat() or is not a regular file.
            raw = handle.read(max_bytes + 1)
    except OSError as error:
        raise ManifestError(file, f"cannot read the file: {error.strerror or error}") from None
    if len(raw) > max_bytes:
        raise ManifestError(file, _too_large(len(raw), max_bytes))
    return load_text(_decode(raw, file), file, max_bytes=max_bytes)


def load_text(text: str, file: str, *, max_bytes: int = MAX_FILE_BYTES) -> list[Document]:
    """Parse YAML text (one or more documents) into :class:`Document` objects."""
    # len(text) <= encoded length, so the cheap test first, the exact one only when close.
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ManifestError(file, _too_large(len(text.encode("utf-8", "surrogatepass")), max_bytes))
    text = text.removeprefix("\ufeff")
    yaml = YAML(typ="safe", pure=True)
    yaml.max_depth = MAX_NESTING_DEPTH  # refused while composing, before Python recursion runs out
    roots = _compose(yaml, text, file)
    _check_expansion(roots, file)
    converter = _Converter(file, yaml.constructor)
    documents: list[Document] = []
    for index, root in enumerate(roots):
        if root is None or _is_empty(root):
            continue
        if not isinstance(root, MappingNode):
            raise ManifestError(
                file,
                f"document {index + 1} (index {index}, line {root.start_mark.line + 1}) is "
                f"{_node_kind(root)}; every document must be a mapping (a Kubernetes object)",
            )
        data = converter.convert(root, depth=0)
        assert isinstance(data, dict)
        documents.append(Document(file=file, index=index, data=data))
    return documents


def iter_yaml_files(root: Path) -> Iterator[Path]:
    """Every ``*.yaml``/``*.yml`` file under ``root``, sorted, skipping hidden directories
    (``.git`` included) and symlinks that lead outside ``root``. A file ``root`` is yielded
    as is when it has a YAML suffix."""
    if root.is_file():
        if root.suffix in YAML_SUFFIXES:
            yield root
        return
    if not root.is_dir():
        return
    real_root = root.resolve()
    found: list[Path] = []
    # os.walk does not descend into symlinked directories (followlinks=False).
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.endswith(YAML_SUFFIXES):
                continue
            candidate = Path(directory, name)
            if candidate.is_symlink() and not _inside(candidate.resolve(), real_root):
                continue
            if candidate.is_file():
                found.append(candidate)
    yield from sorted(found, key=lambda path: path.relative_to(root).parts)


# --------------------------------------------------------------------------- internals


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def refuse_oversized(path: Path, display: str, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Raise :class:`ManifestError` for a file over the limit, from its size alone."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ManifestError(display, _too_large(size, max_bytes))


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"file is {_human_bytes(size)}, larger than the {_human_bytes(max_bytes)} limit for "
        "manifests; split it into smaller files"
    )


def _human_bytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ManifestError(
            file,
            f"is not valid UTF-8 (byte 0x{raw[error.start]:02x} at line {line}, column {column}); "
            "save it as UTF-8",
        ) from None


def _compose(yaml: YAML, text: str, file: str) -> list[Node | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ReusedAnchorWarning: not an error in YAML
            return list(yaml.compose_all(text))
    except MaxDepthExceededError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise ManifestError(
            file, f"line {line}: nested more than {MAX_NESTING_DEPTH} levels deep"
        ) from None
    except MarkedYAMLError as error:
        raise ManifestError(file, _describe_yaml_error(error)) from None
    except ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise ManifestError(
            file,
            f"invalid YAML at line {line}, column {column}: character U+{error.character:04X} "
            "is not allowed in YAML (a control character?)",
        ) from None
    except YAMLError as error:
        raise ManifestError(file, f"invalid YAML: {str(error).splitlines()[0]}") from None
    except RecursionError:
        raise ManifestError(file, "invalid YAML: nesting is too deep") from None


def _describe_yaml_error(error: MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "cannot be parsed"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = f" ({error.context})" if error.context and error.problem else ""
    return f"invalid YAML{where}: {problem}{context}"


def _tag(node: Node) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag))


def _is_empty(node: Node | None) -> bool:
    return node is None or (
        isinstance(node, ScalarNode)
        and _tag(node) == _TAG_PREFIX + "null"
        and node.value in ("", "~", "null")
    )


def _node_kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode):
        return f"a plain value ({str(node.value)[:40]!r})"
    return "not a mapping"


def _check_expansion(roots: list[Node | None], file: str) -> None:
    """Refuse alias bombs, cycles and deep nesting by measuring the graph, not expanding it."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def expanded_size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise ManifestError(
                file,
                f"line {node.start_mark.line + 1}: an alias refers to its own anchor "
                "(recursive data cannot be a manifest)",
            )
        if depth > MAX_NESTING_DEPTH:
            raise ManifestError(
                file,
                f"line {node.start_mark.line + 1}: nested more than "
                f"{MAX_NESTING_DEPTH} levels deep",
            )
        in_progress.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(expanded_size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                total += expanded_size(key_node, depth + 1) + expanded_size(value_node, depth + 1)
        in_progress.discard(key)
        sizes[key] = total
        return total

    expanded = sum(expanded_size(root, 0) for root in roots if root is not None)
    literal = len(sizes)
    if expanded - literal > MAX_ALIAS_EXPANSION_NODES:
        raise ManifestError(
            file,
            f"aliases expand {literal} YAML nodes into {expanded}, more than the "
            f"{MAX_ALIAS_EXPANSION_NODES} extra allowed; this looks like a YAML alias bomb",
        )


class _Converter:
    """YAML nodes to plain Python values, with duplicate-key and tag checks."""

    _SCALAR_TAGS = frozenset(
        _TAG_PREFIX + name
        for name in ("str", "int", "float", "bool", "null", "timestamp", "binary")
    )

    def __init__(self, file: str, constructor: SafeConstructor) -> None:
        self.file = file
        self.constructor = constructor

    def error(self, node: Node, message: str) -> ManifestError:
        mark = node.start_mark
        return ManifestError(
            self.file, f"line {mark.line + 1}, column {mark.column + 1}: {message}"
        )

    def convert(self, node: Node, depth: int) -> Any:
        if isinstance(node, MappingNode):
            self.plain_collection(node, _TAG_PREFIX + "map")
            return self.mapping(node, depth)
        if isinstance(node, SequenceNode):
            self.plain_collection(node, _TAG_PREFIX + "seq")
            return [self.convert(child, depth + 1) for child in node.value]
        return self.scalar(node)

    def plain_collection(self, node: Node, expected: str) -> None:
        """A list or mapping with a tag (``!!python/object/apply:...``) is refused too."""
        tag = _tag(node)
        if tag not in (expected, _TAG_PREFIX + "omap", _TAG_PREFIX + "set"):
            raise self.error(node, f"unsupported YAML tag {tag!r}; manifests use plain YAML")

    def scalar(self, node: Node) -> Any:
        tag = _tag(node)
        if tag not in self._SCALAR_TAGS:
            if tag in (_TAG_PREFIX + "map", _TAG_PREFIX + "seq", _TAG_PREFIX + "omap"):
                raise self.error(node, f"tag {tag!r} on a plain value")
            raise self.error(node, f"unsupported YAML tag {tag!r}; manifests use plain YAML")
        if tag in (_TAG_PREFIX + "timestamp", _TAG_PREFIX + "binary", _TAG_PREFIX + "str"):
            # Kubernetes reads dates (and binary) as strings too.
            return str(node.value)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError) as error:
            raise self.error(node, f"invalid value {node.value!r}: {error}") from None

    def mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if _tag(key_node) == _MERGE_TAG:
                for source in self.merge_sources(value_node):
                    for key, value in self.mapping(source, depth + 1).items():
                        merged.setdefault(key, value)
                continue
            key = self.key(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise self.error(
                    key_node,
                    f"duplicate key {key!r} (first defined at line {first_line[key]}); "
                    "YAML keeps only one of them, remove the other",
                )
            first_line[key] = line
            result[key] = self.convert(value_node, depth + 1)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode):
            return [node]
        if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            return list(node.value)
        raise self.error(node, "'<<' (merge key) needs a mapping or a list of mappings")

    def key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise self.error(node, "a mapping key must be a plain value, not a list or mapping")
        # Kubernetes (JSON) keys are strings; the key as written is the string it means.
        return str(node.value)
