"""Deterministic YAML for the objects gitops-canary generates (DESIGN D3: same inputs, same bytes).

Owns the one serialisation every generated file goes through: block style, two-space indent,
sequences written the way ``kubectl get -o yaml`` writes them (``- `` level with the parent key),
keys in the order the caller built them, no anchors or aliases, and strings quoted only when a
YAML parser would otherwise read them as something else. That includes YAML 1.1 readings
(``yes``, ``on``, ``0755``, ``1:30``), because parts of the Kubernetes tool chain still parse
YAML 1.1 and would turn an unquoted ``on`` label into a boolean.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

#: Scalars a YAML 1.1 parser reads as booleans, numbers or null although YAML 1.2 reads strings.
_YAML11_SPECIAL = re.compile(
    r"""^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF
    |[-+]?0[0-7]+
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
    |[-+]?(?:[0-9][0-9_]*)?\.?[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?0b[01_]+|[-+]?0x[0-9a-fA-F_]+|=|~)$""",
    re.VERBOSE,
)


class _Representer(RoundTripRepresenter):
    def ignore_aliases(self, data: Any) -> bool:
        # Generated files are read by people and by kubectl; an alias saves nothing worth that.
        return True


def _represent_str(representer: RoundTripRepresenter, value: str) -> Any:
    if _YAML11_SPECIAL.match(value):
        return representer.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value and _literal_safe(value):
        return representer.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return representer.represent_str(value)


def _literal_safe(value: str) -> bool:
    """A literal block keeps the text byte for byte only without trailing spaces or tabs."""
    return not any(line != line.rstrip(" \t") for line in value.split("\n")) and "\t" not in value


class _Emitter(Emitter):
    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        # One quoting style in generated files: double quotes wherever quotes are needed.
        return '"' if style == "'" else style


_Representer.add_representer(str, _represent_str)
_Representer.add_representer(DoubleQuotedScalarString, RoundTripRepresenter.represent_str)
_Representer.add_representer(LiteralScalarString, RoundTripRepresenter.represent_str)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.Emitter = _Emitter
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold long strings (a folded query is hard to review)
    yaml.allow_unicode = True
    return yaml


def dump(obj: Mapping[str, Any]) -> str:
    """One object as a YAML document, without ``---``; the text ends with a newline."""
    plain = _plain(obj)
    try:
        # Most generated objects are the same at every step, and serialising is what costs:
        # remember the text by a digest of the object (keys in order, types kept).
        digest: bytes | None = hashlib.blake2b(
            json.dumps(plain, ensure_ascii=False).encode("utf-8", "surrogatepass"), digest_size=20
        ).digest()
    except (TypeError, ValueError):
        digest = None
    if digest is not None:
        with _dumped_lock:
            cached = _dumped.get(digest)
            if cached is not None:
                _dumped.move_to_end(digest)
                return cached
    stream = io.StringIO()
    _yaml().dump(plain, stream)
    text = stream.getvalue()
    if digest is not None:
        with _dumped_lock:
            _dumped[digest] = text
            if len(_dumped) > _DUMPED_MAX:
                _dumped.popitem(last=False)
    return text


#: Digest of a plain object -> its YAML, least recently used first.
_dumped: OrderedDict[bytes, str] = OrderedDict()
_dumped_lock = threading.Lock()
_DUMPED_MAX = 16_384


def _plain(value: Any) -> Any:
    """Copy into plain dicts and lists, so no round-trip formatting leaks in from a read file."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value
