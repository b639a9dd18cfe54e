"""The tutorial specs gitops-canary accepts are also valid against Flagger's own CRD schema
(``openAPIV3Schema``, checked with jsonschema; ``oneOf`` is enforced as JSON Schema defines it),
and the CRD refuses what the validator refuses for the CRD's reasons."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gitops_canary.core.validation import parse_canary
from gitops_canary.repo.manifests import load_file

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO.parent / "shared" / "schemas" / "crds" / "flagger.app_crds.yaml"
VALID = sorted((Path(__file__).parent / "valid_specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    assert CRDS.is_file(), f"Flagger CRDs not found at {CRDS} (shared/ must sit beside the repo)"
    found: dict[str, dict[str, Any]] = {}
    for document in load_file(CRDS):
        spec = document.data["spec"]
        (version,) = [v for v in spec["versions"] if v["name"] == "v1beta1"]
        found[spec["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return found


def _crd_errors(schema: dict[str, Any], data: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_tutorial_specs_match_the_crd(path: Path, schemas: dict[str, dict[str, Any]]) -> None:
    documents = load_file(path)
    assert documents
    for document in documents:
        assert _crd_errors(schemas[document.data["kind"]], document.data) == []


def _tutorial_canary() -> dict[str, Any]:
    return load_file(Path(__file__).parent / "valid_specs" / "gatewayapi-canary.yaml")[0].data


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda a: a.update(iterations=10), "spec.analysis"),  # two oneOf branches match
        (lambda a: a.pop("stepWeight"), "spec.analysis"),  # no branch matches
        (lambda a: a.pop("interval"), "spec.analysis.interval"),
        (lambda a: a.update(interval="1h"), "spec.analysis.interval"),
        (
            lambda a: a.update(match=[{"headers": {"x": {"exact": "a", "regex": "b"}}}]),
            "spec.analysis.match[0].headers.x",
        ),
    ],
)
def test_crd_and_validator_agree_on_refusals(
    edit: Any, path: str, schemas: dict[str, dict[str, Any]]
) -> None:
    data = copy.deepcopy(_tutorial_canary())
    edit(data["spec"]["analysis"])
    assert _crd_errors(schemas["Canary"], data), "the CRD accepts it"
    canary, issues = parse_canary(data, "c.yaml", default_provider="gatewayapi:v1")
    assert canary is None
    assert path in [issue.path for issue in issues if issue.is_error]
