"""The one edit gitops-canary makes to a file people own: the target Deployment's ``spec.replicas``.

DESIGN D3: people's files keep their comments, key order, quoting, indentation, flow sections,
anchors, document markers, line endings and byte-order mark, and the diff shows only the field
that changed. To guarantee that, the file is parsed with ruamel.yaml's round-trip composer only
to *locate* the field (every node carries its exact position in the text); the edit itself then
replaces, inserts or removes exactly those characters. Nothing else is re-serialised, so nothing
else can move. The diff is one changed line, one added line or one removed line.

Rule for callers: never pin in git a replica count that an HPA manages, except ``0`` to park the
Deployment. With an HPA (``autoscalerRef``), scaling up means ``set_replicas(..., None)``: the key
is removed and the HPA owns the count again. Without an HPA the caller writes the number.
"""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

_BOM = "\ufeff"
#: Anchors and tags that may precede a scalar (``&n 3``, ``!!int 3``); kept when the value changes.
_NODE_PROPERTIES = re.compile(r"(?:[&!][^\s]*\s+)*")
_ALIAS = re.compile(r"\s*\*[^\s,\]}#]+")


class EditError(Exception):
    """The edit cannot be made safely; the message names the file, the document and why."""


def set_replicas(path: Path, doc_index: int, replicas: int | None) -> bool:
    """Set (or, with ``None``, remove) ``spec.replicas`` of the Deployment that is document
    ``doc_index`` (0-based, counting every document in the file) of ``path``.

    Returns True if the file changed. Raises :class:`EditError` when the document is not a
    Deployment or the field is shared through an anchor, so that an edit can never change
    anything but this one field.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EditError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    bom = text.startswith(_BOM)
    body = text[1:] if bom else text
    new_body = edit_replicas_text(body, doc_index, replicas, where=str(path))
    if new_body == body:
        return False
    path.write_bytes(((_BOM if bom else "") + new_body).encode("utf-8"))
    return True


def edit_replicas_text(text: str, doc_index: int, replicas: int | None, *, where: str) -> str:
    """The text-level edit behind :func:`set_replicas` (``text`` without a byte-order mark)."""
    if replicas is not None and (isinstance(replicas, bool) or replicas < 0):
        raise EditError(f"{where}: refusing to write spec.replicas: {replicas!r}")
    try:
        documents = list(YAML(typ="rt").compose_all(text))
    except YAMLError as error:
        raise EditError(f"{where}: not valid YAML: {_one_line(error)}") from None
    if not 0 <= doc_index < len(documents):
        raise EditError(
            f"{where}: has {len(documents)} YAML document(s); document {doc_index} does not exist"
        )
    root = documents[doc_index]
    label = f"{where} (document {doc_index + 1})"
    if not isinstance(root, MappingNode) or _scalar_value(_lookup(root, "kind")) != "Deployment":
        raise EditError(f"{label}: is not a Deployment; will not edit spec.replicas there")
    spec_key, spec = _lookup_pair(root, "spec")
    if spec_key is None or not isinstance(spec, MappingNode):
        raise EditError(f"{label}: Deployment has no spec mapping to hold replicas")
    if _is_alias(spec_key, spec):
        raise EditError(
            f"{label}: spec is an alias of an anchor defined elsewhere in the file; "
            "editing it would change every place that uses the anchor"
        )
    newline = "\r\n" if "\r\n" in text else "\n"
    key, value = _lookup_pair(spec, "replicas")
    if key is None:
        if replicas is None:
            if _lookup(spec, "<<") is not None:
                raise EditError(
                    f"{label}: spec.replicas comes from a merged anchor (<<); "
                    "remove it there or write spec.replicas explicitly"
                )
            return text
        return _insert(text, spec_key, spec, f"replicas: {replicas}", newline)
    assert value is not None
    if replicas is None:
        return _remove(text, key, value)
    return _replace(text, key, value, str(replicas), label)


# --------------------------------------------------------------------------- locating


def _lookup_pair(mapping: MappingNode, name: str) -> tuple[Node | None, Node | None]:
    for key, value in mapping.value:
        if isinstance(key, ScalarNode) and key.value == name:
            return key, value
    return None, None


def _lookup(mapping: MappingNode, name: str) -> Node | None:
    return _lookup_pair(mapping, name)[1]


def _scalar_value(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def _is_alias(key: Node, value: Node) -> bool:
    """The composer hands out the anchored node for an alias; it then sits before its key."""
    return bool(value.start_mark.index < key.end_mark.index)


def _one_line(error: YAMLError) -> str:
    return " ".join(str(error).split())


# --------------------------------------------------------------------------- the three edits


def _replace(text: str, key: Node, value: Node, new: str, label: str) -> str:
    if _is_alias(key, value):
        match = _ALIAS.match(text, _after_colon(text, key))
        if match is None:
            raise EditError(f"{label}: cannot find the alias used for spec.replicas")
        start = match.end() - len(match.group(0).lstrip())
        return str(text[:start] + new + text[match.end() :])
    if value.start_mark.index == value.end_mark.index:  # ``replicas:`` with no value
        colon = _after_colon(text, key)
        return text[:colon] + " " + new + text[colon:]
    if value.anchor is not None:
        raise EditError(
            f"{label}: spec.replicas carries the anchor &{value.anchor}; changing it would "
            "change every place that uses the anchor"
        )
    start, end = value.start_mark.index, value.end_mark.index
    span = text[start:end]
    properties = _NODE_PROPERTIES.match(span)
    keep = properties.group(0) if properties else ""
    if span[len(keep) :] == new:
        return text
    return text[: start + len(keep)] + new + text[end:]


def _after_colon(text: str, key: Node) -> int:
    """Index just after the ``:`` that follows ``key``."""
    colon = text.index(":", key.end_mark.index)
    return colon + 1


def _remove(text: str, key: Node, value: Node) -> str:
    start = key.start_mark.index
    end = _value_end(text, key, value)
    line_start = text.rfind("\n", 0, start) + 1
    line_end = _line_end(text, end)
    before = text[line_start:start]
    after = text[end:line_end]
    if before.strip() == "" and (after.strip() == "" or after.strip().startswith("#")):
        # The key has its own line (block style): drop the line and its line break.
        stop = line_end + 1 if line_end < len(text) else line_end
        return text[:line_start] + text[stop:]
    # Flow style: remove ``replicas: N`` and one separating comma.
    tail = re.compile(r"\s*,[ \t]*").match(text, end)
    if tail is not None:
        return text[:start] + text[tail.end() :]
    head = re.compile(r",\s*$").search(text, 0, start)
    if head is not None:
        return text[: head.start()] + text[end:]
    return text[:start] + text[end:]


def _value_end(text: str, key: Node, value: Node) -> int:
    if _is_alias(key, value):
        match = _ALIAS.match(text, _after_colon(text, key))
        if match is not None:
            return match.end()
    if value.start_mark.index == value.end_mark.index:
        return _after_colon(text, key)
    return int(value.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """Index of the ``\\n`` ending the line that holds ``index`` (or the end of the text)."""
    newline = text.find("\n", index)
    if newline == -1:
        return len(text)
    # A CRLF line's "content" stops before the \r; the \r\n pair goes with the line.
    return newline


def _insert(text: str, spec_key: Node, spec: MappingNode, entry: str, newline: str) -> str:
    if spec.flow_style:
        brace = text.index("{", spec_key.end_mark.index)
        if not spec.value:
            return text[: brace + 1] + entry + text[brace + 1 :]
        return text[: brace + 1] + entry + ", " + text[brace + 1 :]
    first_key = spec.value[0][0]
    indent = " " * int(first_key.start_mark.column)
    # At the top of spec, where a Deployment's replicas conventionally sits: on the line after
    # ``spec:``, so comments that introduce the first key stay attached to it.
    spec_line_end = text.find("\n", spec_key.end_mark.index)
    if spec_line_end == -1:
        raise EditError("spec: mapping has no line break after the key")
    at = spec_line_end + 1
    return text[:at] + indent + entry + newline + text[at:]
