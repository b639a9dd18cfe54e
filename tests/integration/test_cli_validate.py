"""``gitops-canary validate`` run in-process on real files: output and exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops_canary.cli import main

pytestmark = pytest.mark.integration

SPECS = Path(__file__).parents[1] / "unit" / "valid_specs"
INVALID = Path(__file__).parents[1] / "unit" / "invalid_specs"
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "podinfo"


@pytest.fixture
def gateway_repo(tmp_path: Path) -> Path:
    """A config repo with the Gateway API tutorial's canary and metric templates."""
    app = tmp_path / "apps" / "podinfo"
    app.mkdir(parents=True)
    shutil.copy(SPECS / "gatewayapi-canary.yaml", app / "canary.yaml")
    shutil.copy(SPECS / "gatewayapi-metric-templates.yaml", tmp_path / "apps" / "templates.yml")
    shutil.copy(FIXTURES / "deployment.yaml", app / "deployment.yaml")
    shutil.copy(FIXTURES / "hpa.yaml", app / "hpa.yaml")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "broken.yaml").write_text("a: [\n")
    return tmp_path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_valid_directory_exits_0_with_a_summary(
    gateway_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run([str(gateway_repo), "--provider", "gatewayapi:v1"], capsys)
    assert (code, err) == (0, "")
    assert lines == ["4 files, 1 canary, 2 metric templates: valid"]


def test_cross_object_problems_name_the_file(
    gateway_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (gateway_repo / "apps" / "podinfo" / "hpa.yaml").unlink()
    code, lines, _ = run([str(gateway_repo), "--provider", "gatewayapi:v1"], capsys)
    assert code == 1
    assert (
        f"{gateway_repo}/apps/podinfo/canary.yaml: Canary test/podinfo: spec.autoscalerRef: "
        "HorizontalPodAutoscaler test/podinfo not found under ./"
    ) in lines


def test_provider_per_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, spec in (("gw", "gatewayapi-canary.yaml"), ("ct", "contour-canary.yaml")):
        (tmp_path / name).mkdir()
        shutil.copy(SPECS / spec, tmp_path / name / "canary.yaml")
    code, _, _ = run(
        [str(tmp_path / "gw" / "canary.yaml"), str(tmp_path / "ct" / "canary.yaml"),
         "--provider", "gatewayapi:v1", "--provider", f"{tmp_path / 'ct'}=contour"],
        capsys,
    )  # fmt: skip
    assert code == 0


def test_invalid_file_exits_1_listing_every_issue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "canary.yaml"
    bad.write_text((INVALID / "several-problems-at-once.yaml").read_text())
    code, lines, _ = run([str(bad)], capsys)
    assert code == 1
    assert lines[-1] == "3 errors in 1 file"
    assert (
        f"{bad}: Canary test/podinfo: spec.service.port: expected an integer, got 'http'" in lines
    )
    assert sum(line.startswith(f"{bad}: Canary test/podinfo: ") for line in lines) == 3


def test_warnings_are_printed_but_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(
        [str(SPECS / "contour-ab-cookie-canary.yaml"), "--provider", "contour"], capsys
    )
    assert code == 0
    assert lines[0].endswith("Flagger, the header is matched when it contains the value (warning)")
    assert lines[-1] == "1 file, 1 canary, 0 metric templates: valid (1 warning)"


def test_provider_from_the_command_line_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SPECS / "contour-canary.yaml")
    code, lines, _ = run([path], capsys)
    assert code == 1
    assert "spec.provider: no provider: set spec.provider or pass --provider" in lines[0]
    code, lines, _ = run([path, "--provider", "gatewayapi:v1"], capsys)
    assert code == 1
    assert "spec.service.gatewayRefs: required with provider gatewayapi:v1" in lines[0]
    assert run([path, "--provider", "contour"], capsys)[0] == 0


def test_unreadable_manifest_is_an_issue_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\na: 2\n")
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe")
    code, lines, _ = run([str(tmp_path), "--provider", "contour"], capsys)
    assert code == 1
    assert lines == [
        f"{tmp_path}/a.yaml: line 2, column 1: duplicate key 'a' (first defined at line 1); "
        "YAML keeps only one of them, remove the other",
        f"{tmp_path}/b.yaml: is not valid UTF-8 (byte 0xff at line 1, column 1); save it as UTF-8",
        "2 errors in 2 files",
    ]


def test_directory_without_yaml_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, _ = run([str(tmp_path), "--provider", "contour"], capsys)
    assert code == 1
    assert lines[0] == f"{tmp_path}: no *.yaml or *.yml files found here"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one file or directory"),
        (["--provider", "istio", "."], "--provider 'istio': 'istio' is not supported"),
        (["does-not-exist.yaml"], "no such file or directory: does-not-exist.yaml"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(args, capsys)
    assert code == 2
    assert lines == []
    assert message in err
