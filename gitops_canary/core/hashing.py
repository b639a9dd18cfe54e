"""Stable identifiers derived from content: revisions, config checksums, cookies, UUIDs.

Flagger hashes the target's pod template to detect a new revision, checksums tracked ConfigMaps
and Secrets, and draws random cookie values and a random ``flagger-id`` annotation. gitops-canary
must produce the same bytes for the same inputs (DESIGN D3: generated files are deterministic),
so everything Flagger draws at random is derived here from a seed instead.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

#: Hex characters kept from a SHA-256 digest for a revision: 64 bits, short enough to read in
#: a status file, long enough that two templates of one Deployment never collide in practice.
REVISION_HEX_LENGTH = 16

#: Namespace for :func:`derive_uuid`, so our UUIDs never collide with other name-based UUIDs.
_UUID_NAMESPACE = uuid.UUID("6f1c0f2e-5b8e-4c7e-9d3a-2a1f0c9b7e41")

#: Go's ``encoding/json`` escapes these; Python's ``json`` does not. Matching them keeps
#: :func:`config_checksum` equal to Flagger's for the same data.
_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _plain(value: Any) -> Any:
    """Reduce YAML/JSON-like data to dicts with string keys, lists and JSON scalars.

    Mapping keys become strings (YAML allows integer keys, ``sort_keys`` does not), tuples and
    other sequences become lists, and anything else that JSON cannot hold becomes its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (str, bytes)):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(value, Sequence):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same data gives the same text, whatever the key order."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """The revision of a pod template (``spec.template``): 16 hex characters of SHA-256.

    Key order does not matter, so re-indenting or re-ordering a Deployment file is not a new
    revision; any change of a value, label or annotation is.
    """
    return _sha256(canonical_json(template)).hex()[:REVISION_HEX_LENGTH]


def _go_json(value: Any) -> str:
    text = canonical_json(value)
    for char, escaped in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def config_checksum(data: Mapping[str, str]) -> str:
    """A ConfigMap's or Secret's ``data`` checksum, as Flagger writes it in ``trackedConfigs``.

    Flagger takes the first 8 bytes of ``sha256(json.Marshal(data))`` as 16 hex characters;
    ``json.Marshal`` sorts map keys, writes no spaces and escapes ``<``, ``>`` and ``&``.
    """
    return _sha256(_go_json(dict(data))).hex()[:16]


def derive_token(seed: str, length: int, alphabet: str) -> str:
    """``length`` characters of ``alphabet`` derived from ``seed`` (same seed, same token).

    Used where Flagger draws random characters, e.g. the session-affinity cookie value. Each
    character takes 4 bytes of a SHA-256 stream, so the bias of the modulo is below 1e-7.
    """
    if not alphabet:
        raise ValueError("derive_token needs a non-empty alphabet")
    chars: list[str] = []
    block = 0
    while len(chars) < length:
        digest = _sha256(f"{seed}#{block}")
        for offset in range(0, len(digest), 4):
            if len(chars) == length:
                break
            chars.append(
                alphabet[int.from_bytes(digest[offset : offset + 4], "big") % len(alphabet)]
            )
        block += 1
    return "".join(chars)


def derive_uuid(seed: str) -> str:
    """A UUID-formatted identifier derived from ``seed`` (the primary's ``flagger-id``).

    Flagger writes a random UUID on every promotion to force a primary rollout; deriving it
    from the promoted revision gives the same effect with reproducible files.
    """
    return str(uuid.uuid5(_UUID_NAMESPACE, seed))


def webhook_checksum(last_applied_spec: str, tracked_configs: Mapping[str, str] | None) -> str:
    """The ``checksum`` of a webhook payload: changes whenever the revision or configs change.

    Flagger hashes ``{trackedConfigs, lastAppliedSpec}``; ``None`` configs differ from empty
    ones, as in Flagger's ``TestCanaryChecksum``.
    """
    configs = None if tracked_configs is None else dict(tracked_configs)
    payload = {"lastAppliedSpec": last_applied_spec, "trackedConfigs": configs}
    return _sha256(canonical_json(payload)).hex()[:REVISION_HEX_LENGTH]
