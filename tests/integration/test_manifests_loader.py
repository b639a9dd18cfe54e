"""Reading manifest files from disk: limits, bad input and directory walking, on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gitops_canary.repo.manifests import (
    MAX_FILE_BYTES,
    Document,
    ManifestError,
    iter_yaml_files,
    load_file,
    load_text,
)

pytestmark = pytest.mark.integration

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefghi", "bcdefghij", strict=True)
)


def error_of(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_file(path, display="apps/x.yaml")
    assert caught.value.file == "apps/x.yaml"
    assert str(caught.value) == f"apps/x.yaml: {caught.value.message}"
    return caught.value.message


def test_multi_document_file_with_crlf_and_empty_documents(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(
        b"---\r\n# only a comment\r\n---\r\nkind: A\r\nn: [1, 2.5, true, null]\r\n"
        b"---\r\n---\r\nkind: B\r\nwhen: 2024-01-02\r\n"
    )
    documents = load_file(path, display="m.yaml")
    assert documents == [
        Document("m.yaml", 1, {"kind": "A", "n": [1, 2.5, True, None]}),
        Document("m.yaml", 3, {"kind": "B", "when": "2024-01-02"}),
    ]
    assert all(type(d.data) is dict for d in documents)


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.monotonic()
    message = error_of(path)
    assert time.monotonic() - started < 0.5
    assert "alias bomb" in message


def test_modest_alias_reuse_is_expanded(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("labels: &l {app: podinfo}\nselector: *l\nmerged:\n  <<: *l\n  tier: web\n")
    (document,) = load_file(path)
    assert document.data == {
        "labels": {"app": "podinfo"},
        "selector": {"app": "podinfo"},
        "merged": {"app": "podinfo", "tier": "web"},
    }
    document.data["selector"]["app"] = "changed"  # expanded copies, not shared objects
    assert document.data["labels"] == {"app": "podinfo"}


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: no 50 MB is written or read
    started = time.monotonic()
    message = error_of(path)
    assert time.monotonic() - started < 0.2
    assert message.startswith("file is 50.0 MiB, larger than the 5.0 MiB limit")


def test_size_limit_is_configurable_and_applies_to_text(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("a: 1\n" * 100)
    with pytest.raises(ManifestError, match="larger than the 100 bytes limit"):
        load_file(path, max_bytes=100)
    with pytest.raises(ManifestError, match="larger than"):
        load_text("a: " + "x" * MAX_FILE_BYTES, "big.yaml")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key 'a' (first defined at line 1)"),
        (
            b"kind: A\n---\n- 1\n- 2\n",
            "document 2 (index 1, line 3) is a list; every document must be a mapping",
        ),
        (b"just a string\n", "document 1 (index 0, line 1) is a plain value ('just a string')"),
        (b"a: b: c\n", "invalid YAML at line 1, column 5: mapping values are not allowed here"),
        (b"a: [1, 2\n", "invalid YAML at line 2, column 1"),
        (b"a: *missing\n", "found undefined alias 'missing'"),
        (b"a: &x [1, *x]\n", "an alias refers to its own anchor"),
        (b"a: !secret value\n", "unsupported YAML tag '!secret'"),
        (
            b"a: 1\nb: caf\xe9\n",
            "is not valid UTF-8 (byte 0xe9 at line 2, column 7); save it as UTF-8",
        ),
        (b"a: \x07\n", "invalid YAML at line 1, column 4: character U+0007 is not allowed"),
        (b"a: " + b"[" * 500 + b"]" * 500 + b"\n", "nested more than 100 levels deep"),
    ],
    ids=[
        "duplicate",
        "list",
        "scalar",
        "syntax",
        "unclosed",
        "undefined-alias",
        "recursive",
        "tag",
        "latin1",
        "control-char",
        "deep",
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    message = error_of(path)
    assert expected in message
    assert "\n" not in message


def test_unreadable_paths(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)
    assert "cannot read the file" in error_of(tmp_path / "missing.yaml")


def test_iter_yaml_files_sorted_skipping_hidden_and_escaping_links(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("a: 1\n")
    for name in (
        "b/z.yml",
        "b/a.yaml",
        "a.yaml",
        ".git/config.yaml",
        ".hidden/x.yaml",
        "b/notes.txt",
        "c/.dot.yaml",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("a: 1\n")
    os.symlink(outside / "secret.yaml", root / "b" / "link-out.yaml")
    os.symlink(root / "a.yaml", root / "b" / "link-in.yaml")
    os.symlink(outside, root / "linked-dir")
    found = [p.relative_to(root).as_posix() for p in iter_yaml_files(root)]
    assert found == ["a.yaml", "b/a.yaml", "b/link-in.yaml", "b/z.yml"]
    assert list(iter_yaml_files(root / "a.yaml")) == [root / "a.yaml"]
    assert list(iter_yaml_files(root / "b" / "notes.txt")) == []
