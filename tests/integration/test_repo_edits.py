"""The replicas edit on messy real-world YAML: one line changes, everything else survives."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from gitops_canary.repo.edits import EditError, set_replicas
from gitops_canary.repo.manifests import load_text

EDITS = Path(__file__).parent / "repo_fixtures" / "edits"
CASES = [line.split() for line in (EDITS / "cases.txt").read_text().splitlines() if line.strip()]


def _replicas(value: str) -> int | None:
    return None if value == "none" else int(value)


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(True), after.splitlines(True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def _assert_one_line(before: str, after: str) -> None:
    removed, added = _changed_lines(before, after)
    assert len(removed) <= 1, removed
    assert len(added) <= 1, added
    assert removed or added
    # The line that changed is the replicas line (in flow style, the removed version holds it).
    assert "replicas" in (removed or added)[0]


def _spec_replicas(text: str, index: int) -> object:
    document = next(d for d in load_text(text, "x.yaml") if d.index == index)
    return document.data["spec"].get("replicas", "absent")


@pytest.mark.parametrize(
    ("source", "index", "replicas", "golden"), CASES, ids=[c[3] for c in CASES]
)
def test_golden(tmp_path: Path, source: str, index: str, replicas: str, golden: str) -> None:
    path = tmp_path / source
    shutil.copy(EDITS / source, path)
    before = path.read_text()

    assert set_replicas(path, int(index), _replicas(replicas)) is True

    after = path.read_text()
    assert after == (EDITS / golden).read_text()
    _assert_one_line(before, after)
    expected = _replicas(replicas)
    assert _spec_replicas(after, int(index)) == ("absent" if expected is None else expected)
    # Other documents read exactly as before.
    old = {d.index: d.data for d in load_text(before, "x")}
    new = {d.index: d.data for d in load_text(after, "x")}
    assert {k: v for k, v in old.items() if k != int(index)} == {
        k: v for k, v in new.items() if k != int(index)
    }


@pytest.mark.parametrize(
    ("source", "index", "replicas", "golden"), CASES, ids=[c[3] for c in CASES]
)
def test_crlf_and_bom_survive(
    tmp_path: Path, source: str, index: str, replicas: str, golden: str
) -> None:
    original = (EDITS / source).read_text()
    path = tmp_path / source
    path.write_bytes(b"\xef\xbb\xbf" + original.replace("\n", "\r\n").encode())

    assert set_replicas(path, int(index), _replicas(replicas)) is True

    expected = (EDITS / golden).read_text().replace("\n", "\r\n")
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected.encode()


def test_same_value_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    shutil.copy(EDITS / "comments.in.yaml", path)
    before = path.stat().st_mtime_ns
    assert set_replicas(path, 0, 3) is False
    assert path.read_bytes() == (EDITS / "comments.in.yaml").read_bytes()
    assert path.stat().st_mtime_ns == before


def test_removing_an_absent_key_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    shutil.copy(EDITS / "fourspace.in.yaml", path)
    assert set_replicas(path, 0, None) is False


def test_insert_into_flow_spec(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {selector: {}}\n"
    )
    assert set_replicas(path, 0, 0)
    assert path.read_text().endswith("spec: {replicas: 0, selector: {}}\n")


def test_value_with_no_text_is_filled(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("kind: Deployment\nspec:\n  replicas:\n  selector: {}\n")
    assert set_replicas(path, 0, 1)
    assert path.read_text() == "kind: Deployment\nspec:\n  replicas: 1\n  selector: {}\n"


def test_refuses_a_document_that_is_not_a_deployment(tmp_path: Path) -> None:
    path = tmp_path / "multi.yaml"
    shutil.copy(EDITS / "multidoc.in.yaml", path)
    with pytest.raises(EditError, match=r"multi\.yaml \(document 1\): is not a Deployment"):
        set_replicas(path, 0, 0)
    with pytest.raises(EditError, match="document 7 does not exist"):
        set_replicas(path, 7, 0)
    assert path.read_bytes() == (EDITS / "multidoc.in.yaml").read_bytes()


def test_refuses_a_spec_shared_through_an_alias(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    text = "kind: Deployment\nmetadata: {name: a}\nx: &s\n  selector: {}\nspec: *s\n"
    path.write_text(text)
    with pytest.raises(EditError, match="alias"):
        set_replicas(path, 0, 0)
    assert path.read_text() == text
