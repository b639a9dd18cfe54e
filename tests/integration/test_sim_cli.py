"""Scenario files and the ``gitops-canary sim`` command, run in-process on real files and git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitops_canary.cli import main
from gitops_canary.sim.scenario import ScenarioError, load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EXAMPLE = """\
timeFactor: 10
rolloutSeconds: 2
requestsPerSecond: 20
headerShare: {x-canary: insider, share: 0.2}
images:
  ghcr.io/stefanprodan/podinfo:6.0.2: {errorRate: 0.6, latencyMs: {p50: 20, p99: 80}}
  ghcr.io/stefanprodan/podinfo:9.9.9: {neverReady: true}
default: {errorRate: 0.0, latencyMs: {p50: 15, p99: 60}}
"""


def test_the_documented_scenario_loads(tmp_path: Path) -> None:
    file = tmp_path / "scenario.yaml"
    file.write_text(EXAMPLE, encoding="utf-8")

    scenario = load_scenario(file)

    assert scenario.time_factor == 10
    assert scenario.headers == {"x-canary": "insider"}
    assert scenario.header_share == 0.2
    bad = scenario.behaviour_for("ghcr.io/stefanprodan/podinfo:6.0.2")
    assert (bad.error_rate, bad.latency_p50_ms, bad.latency_p99_ms) == (0.6, 20, 80)
    assert scenario.behaviour_for("ghcr.io/stefanprodan/podinfo:9.9.9").never_ready
    assert scenario.behaviour_for("anything:else").latency_p99_ms == 60
    assert str(file) in scenario.describe()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("timeFactor: 0\n", "timeFactor"),
        ("requestsPerSecond: fast\n", "requestsPerSecond"),
        ("images: {'img:1': {errorRate: 1.5}}\n", "images.'img:1'.errorRate"),
        ("images: {'img:1': {latencyMs: {p50: 50, p99: 10}}}\n", "images.'img:1'.latencyMs.p99"),
        ("images: {'img:1': {neverReady: sometimes}}\n", "images.'img:1'.neverReady"),
        ("default: {errorRat: 0.1}\n", "default.errorRat"),
        ("rollout: 2\n", "rollout"),
        ("headerShare: {share: 2}\n", "headerShare.share"),
    ],
)
def test_scenario_errors_name_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text, encoding="utf-8")

    with pytest.raises(ScenarioError) as raised:
        load_scenario(file)

    assert str(file) in str(raised.value)
    assert f"field {field}:" in str(raised.value)


def test_invalid_yaml_and_a_missing_file_are_reported_plainly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("images: [\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="is not valid YAML"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.yaml")


def make_remote(root: Path) -> Path:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    remote, work = root / "remote.git", root / "work"
    (work / "apps").mkdir(parents=True)
    (work / "apps" / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: podinfo, namespace: test}\n"
        "spec: {selector: {app: podinfo}, ports: [{port: 9898}]}\n",
        encoding="utf-8",
    )
    for args, cwd in [
        (["init", "--quiet", "--bare", "--initial-branch=main", str(remote)], None),
        (["init", "--quiet", "--initial-branch=main"], work),
        (["add", "--all"], work),
        (["commit", "--quiet", "-m", "service"], work),
        (["push", "--quiet", str(remote), "main"], work),
    ]:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return remote


def test_sim_runs_in_the_foreground_and_says_it_is_a_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path / "git")

    code = main(
        [
            "sim",
            "--repo",
            str(remote),
            "--path",
            "apps=./apps",
            "--workdir",
            str(tmp_path / "sim"),
            "--interval",
            "0.2",
            "--duration",
            "2",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "SIMULATOR, not Kubernetes" in out
    assert f"kubeconfig:      {tmp_path / 'sim' / 'kubeconfig'}" in out
    assert "/metrics" in out
    # The directory has no kustomization.yaml: like Flux, the applier generates one.
    assert "Kustomization apps: ReconciliationSucceeded: Applied revision: main@sha1:" in out
    assert out.rstrip().endswith("stopped")
    assert (tmp_path / "sim" / "kubeconfig").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--path", "apps"], "expected NAME=PATH"),
        ([], "give at least one --path"),
        (["--path", "a=./a", "--path", "a=./b"], "given twice"),
    ],
)
def test_sim_rejects_a_bad_command_line_without_a_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--repo", "/nowhere", *args])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_sim_reports_a_bad_scenario_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "scenario.yaml"
    file.write_text("requestsPerSecond: -1\n", encoding="utf-8")

    code = main(["sim", "--repo", "/nowhere", "--path", "a=./a", "--scenario", str(file)])

    err = capsys.readouterr().err
    assert code == 2
    assert str(file) in err
    assert "requestsPerSecond" in err
