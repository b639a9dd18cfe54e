"""Content-derived identifiers: revisions, config checksums, tokens, UUIDs, webhook checksums."""

from __future__ import annotations

import hashlib
import json
import string
import uuid
from datetime import date

import pytest

from gitops_canary.core.hashing import (
    canonical_json,
    config_checksum,
    derive_token,
    derive_uuid,
    pod_template_hash,
    webhook_checksum,
)

TEMPLATE = {
    "metadata": {"labels": {"app": "podinfo"}, "annotations": {"prometheus.io/scrape": "true"}},
    "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]},
}


def test_pod_template_hash_ignores_key_order_but_not_values() -> None:
    reordered = {
        "spec": {
            "containers": [{"image": "ghcr.io/stefanprodan/podinfo:6.0.0", "name": "podinfod"}]
        },
        "metadata": {"annotations": {"prometheus.io/scrape": "true"}, "labels": {"app": "podinfo"}},
    }
    digest = pod_template_hash(TEMPLATE)
    assert digest == pod_template_hash(reordered)
    assert len(digest) == 16
    assert int(digest, 16) >= 0
    changed = json.loads(json.dumps(TEMPLATE))
    changed["spec"]["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.0.1"
    assert pod_template_hash(changed) != digest


def test_canonical_json_handles_yaml_shapes() -> None:
    # Integer keys, tuples, bytes and dates (all possible from a YAML loader) never raise.
    text = canonical_json(
        {1: ("a", b"b"), "when": date(2026, 7, 1), "n": None, "f": 1.5, "t": True}
    )
    assert text == '{"1":["a","b"],"f":1.5,"n":null,"t":true,"when":"2026-07-01"}'


def test_config_checksum_is_flaggers_format() -> None:
    data = {"color": "blue", "b": "<&>"}
    go_json = '{"b":"\\u003c\\u0026\\u003e","color":"blue"}'  # what Go's json.Marshal writes
    assert config_checksum(data) == hashlib.sha256(go_json.encode()).hexdigest()[:16]
    assert config_checksum({"color": "blue"}) != config_checksum({"color": "green"})
    assert config_checksum({}) == hashlib.sha256(b"{}").hexdigest()[:16]


def test_derive_token_is_deterministic_and_uses_the_alphabet() -> None:
    token = derive_token("test/podinfo:rev", 10, string.ascii_letters)
    assert token == derive_token("test/podinfo:rev", 10, string.ascii_letters)
    assert len(token) == 10
    assert set(token) <= set(string.ascii_letters)
    assert token != derive_token("test/podinfo:other", 10, string.ascii_letters)
    long = derive_token("seed", 50, "ab")
    assert len(long) == 50
    assert set(long) == {"a", "b"}
    assert derive_token("seed", 0, "ab") == ""
    with pytest.raises(ValueError, match="non-empty alphabet"):
        derive_token("seed", 3, "")


def test_derive_uuid_is_a_stable_uuid() -> None:
    value = derive_uuid("test/podinfo:rev")
    assert value == derive_uuid("test/podinfo:rev") != derive_uuid("test/podinfo:rev2")
    assert str(uuid.UUID(value)) == value


def test_webhook_checksum_changes_with_revision_and_configs() -> None:
    base = webhook_checksum("abc", {"configmap/a": "1"})
    assert base == webhook_checksum("abc", {"configmap/a": "1"})
    assert base != webhook_checksum("abd", {"configmap/a": "1"})
    assert base != webhook_checksum("abc", {"configmap/a": "2"})
    assert webhook_checksum("abc", None) != webhook_checksum("abc", {})
