"""Every manifest in ``invalid_specs/`` is refused with the message its ``# expect:`` lines give;
every manifest in ``valid_specs/`` (the Flagger tutorials' specs, verbatim) is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_canary.core.specs import Canary, MetricTemplate
from gitops_canary.core.validation import Issue, parse_document
from gitops_canary.repo.manifests import ManifestError, load_file

HERE = Path(__file__).parent
INVALID = sorted((HERE / "invalid_specs").glob("*.yaml"))
VALID = sorted((HERE / "valid_specs").glob("*.yaml"))


def _header(path: Path, key: str) -> list[str]:
    prefix = f"# {key}: "
    return [
        line.removeprefix(prefix).strip()
        for line in path.read_text().splitlines()
        if line.startswith(prefix)
    ]


def _provider_for(path: Path) -> str | None:
    """``# provider:`` overrides; otherwise the default the tutorials install Flagger with."""
    given = _header(path, "provider")
    if given:
        return None if given[0] == "none" else given[0]
    return "contour" if path.name.startswith("contour") else "gatewayapi:v1"


def _issues(path: Path) -> tuple[list[object], list[Issue]]:
    display = f"{path.parent.name}/{path.name}"
    objects: list[object] = []
    issues: list[Issue] = []
    for document in load_file(path, display=display):
        parsed, found = parse_document(
            document.data, document.file, default_provider=_provider_for(path)
        )
        issues += found
        if parsed is not None:
            objects.append(parsed)
    return objects, issues


def test_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 35
    assert all(_header(path, "expect") for path in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_spec_is_refused_with_its_message(path: Path) -> None:
    expected = _header(path, "expect")
    try:
        objects, issues = _issues(path)
    except ManifestError as error:
        lines = [str(error)]
    else:
        errors = [issue for issue in issues if issue.is_error]
        assert errors, f"{path.name} was accepted"
        assert objects == [], "an object with errors must not be returned"
        lines = [str(issue) for issue in errors]
    for fragment in expected:
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n" + "\n".join(lines)
    assert all(line.startswith(f"invalid_specs/{path.name}: ") for line in lines)


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_tutorial_spec_is_accepted(path: Path) -> None:
    objects, issues = _issues(path)
    assert [str(issue) for issue in issues if issue.is_error] == []
    assert objects
    assert all(isinstance(obj, Canary | MetricTemplate) for obj in objects)


def test_tutorial_canaries_keep_their_values() -> None:
    objects, _ = _issues(HERE / "valid_specs" / "gatewayapi-canary.yaml")
    (canary,) = objects
    assert isinstance(canary, Canary)
    assert canary.key == "test/podinfo"
    assert canary.spec.analysis.step_weight == 10
    assert canary.spec.analysis.effective_max_weight() == 50
    assert [m.template_ref.name for m in canary.spec.analysis.metrics if m.template_ref] == [
        "error-rate",
        "latency",
    ]
    assert canary.spec.service.gateway_refs[0].kind == "Gateway"

    objects, _ = _issues(HERE / "valid_specs" / "contour-ab-canary.yaml")
    (ab,) = objects
    assert isinstance(ab, Canary)
    assert ab.strategy().value == "ab-testing"
    assert ab.spec.analysis.match[0].headers["x-canary"].exact == "insider"


def test_contour_prefix_and_suffix_matches_warn_about_contains() -> None:
    _, issues = _issues(HERE / "valid_specs" / "contour-ab-cookie-canary.yaml")
    assert [issue.severity for issue in issues] == ["warning"]
    assert "spec.analysis.match[0].headers.cookie.suffix" in str(issues[0])


def test_contour_tutorial_on_gateway_api_needs_gateway_refs() -> None:
    path = HERE / "valid_specs" / "contour-canary.yaml"
    data = load_file(path)[0].data
    _, issues = parse_document(data, "c.yaml", default_provider="gatewayapi:v1")
    assert any(i.path == "spec.service.gatewayRefs" and i.is_error for i in issues)
