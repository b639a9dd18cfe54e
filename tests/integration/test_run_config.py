"""A bad configuration file stops ``run``, ``run --once`` and ``plan`` with exit code 2 and one
line naming the file and the field: no traceback, no secret echoed, nothing started.

The last tests cover start-up failures: each is one line naming the file or the address, never a
traceback."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from run_helpers import lines, processes

from gitops_canary.cli import main
from gitops_canary.playground import seed_remote

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

COMMANDS = (("run",), ("run", "--once"), ("plan",))
SECRET = "ghp_Zq8vTokenThatMustNeverBeEchoed"


def config(**sections: Any) -> dict[str, Any]:
    """A configuration that is valid apart from what ``sections`` break."""
    data: dict[str, Any] = {
        "repository": {"url": "/nonexistent/config.git", "paths": ["apps"]},
        "timing": {"poll": "5s"},
    }
    data.update(sections)
    return data


CASES: dict[str, tuple[Any, str]] = {
    "unknown top-level field": (config(colour="blue"), "colour: unknown field"),
    "unknown nested field": (
        config(repository={"url": "/x.git", "brnach": "main"}),
        "repository.brnach: unknown field",
    ),
    "wrong enum": (config(logging={"format": "xml"}), "logging.format: Input should be"),
    "wrong enum, nested": (config(push={"mode": "force"}), "push.mode: Input should be"),
    "missing repository.url": (config(repository={"branch": "main"}), "repository.url: "),
    "intervalScale below 1 without the simulator": (
        config(timing={"intervalScale": 0.05}),
        "timing.intervalScale: below 1 only with 'simulator: true'",
    ),
    "a token given inline": (
        config(repository={"url": "/x.git", "credentials": {"token": SECRET}}),
        "repository.credentials.token: ",
    ),
    "a token given inline as a value": (
        config(repository={"url": "/x.git", "credentials": {"token": {"value": SECRET}}}),
        "repository.credentials.token.value: unknown field",
    ),
    "a token from both env and file": (
        config(repository={"url": "/x.git", "credentials": {"token": {"env": "T", "file": "t"}}}),
        "repository.credentials.token: set exactly one of 'env' or 'file'",
    ),
    "a port out of range": (config(metrics={"enabled": True, "port": 70000}), "metrics.port: "),
    "not a mapping": (["repository"], "must be a mapping"),
}


def assert_one_clear_line(code: int, out: str, err: str, file: Path, expected: str) -> None:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err}"
    assert out == "", out
    assert len(lines(err)) == 1, f"expected one line, got:\n{err}"
    assert err.startswith(f"gitops-canary: {file}: "), err
    assert expected in err, err
    assert SECRET not in err


CLI = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[CLI]:
    """The command line in this process (a bad configuration stops it before anything starts;
    a process per case would cost a second of CPU each). The logger is restored afterwards in
    case a command configured it."""
    logger = logging.getLogger("gitops_canary")
    saved = (list(logger.handlers), logger.propagate, logger.level)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_is_one_line_naming_file_and_field_and_exit_2(
    case: str, tmp_path: Path, cli: CLI
) -> None:
    data, expected = CASES[case]
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(data), encoding="utf-8")
    for command in COMMANDS:
        code, out, err = cli(*command, "--config", str(file))
        assert_one_clear_line(code, out, err, file, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository: [\n", "invalid YAML at line 2"),
        ('{"repository": {"url": "/x.git"}}\n---\n{}\n', "expected exactly one YAML document"),
    ],
    ids=["invalid YAML", "two documents"],
)
def test_unreadable_configuration_is_exit_2(
    text: str, expected: str, tmp_path: Path, cli: CLI
) -> None:
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(text, encoding="utf-8")
    for command in COMMANDS:
        code, out, err = cli(*command, "--config", str(file))
        assert_one_clear_line(code, out, err, file, expected)


def test_missing_configuration_file_is_exit_2(tmp_path: Path, cli: CLI) -> None:
    file = tmp_path / "nowhere.yaml"
    for command in COMMANDS:
        code, out, err = cli(*command, "--config", str(file))
        assert_one_clear_line(code, out, err, file, "no such configuration file")


def test_bad_configuration_through_the_executable(tmp_path: Path) -> None:
    """The same, end to end: the installed command, its stderr and exit status ('run --once'
    shares the loading code with 'run')."""
    data, expected = CASES["a token given inline"]
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(data), encoding="utf-8")
    with processes(tmp_path / "logs") as procs:
        for command in (("run",), ("plan",)):
            code, out, err = procs.call(*command, "--config", str(file), timeout=30)
            assert_one_clear_line(code, out, err, file, expected)


# --------------------------------------------------------------------------- known problems
# Each needs a configuration that gets past parsing: a real (local) repository and a kubeconfig
# pointing at a closed loopback port (nothing is contacted before the failure).


def reachable(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    source = tmp_path / "source"
    (source / "apps").mkdir(parents=True)
    (source / "apps" / "README.md").write_text("no canaries yet\n")
    seed_remote(source, tmp_path / "remote.git")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    data: dict[str, Any] = {
        "repository": {
            "url": str(tmp_path / "remote.git"),
            "paths": ["apps"],
            "workdir": str(tmp_path / "work"),
        },
        "cluster": {"kubeconfig": str(kubeconfig)},
        "metrics": {"enabled": False},
    }
    data.update(sections)
    return data


@pytest.mark.parametrize("command", [("run",), ("run", "--once")], ids=["run", "run --once"])
def test_bad_poll_duration_is_exit_2(command: tuple[str, ...], tmp_path: Path) -> None:
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(reachable(tmp_path, timing={"poll": "five"})), encoding="utf-8")
    with processes(tmp_path / "logs") as procs:
        code, out, err = procs.call(*command, "--config", str(file), timeout=30)
    assert_one_clear_line(code, out, err, file, "timing.poll: ")


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"cluster": {}}, "cluster: set either 'kubeconfig'"),
        (
            {
                "push": {
                    "mode": "pull-request",
                    "pullRequests": {
                        "provider": "github",
                        "apiUrl": "http://127.0.0.1:1",
                        "project": "no-slash",
                        "token": {"env": "GITOPS_CANARY_TEST_UNSET_TOKEN"},
                    },
                }
            },
            "push.pullRequests: project: expected 'owner/name'",
        ),
    ],
    ids=["no cluster access", "pull-request project without owner"],
)
def test_wiring_errors_name_the_file(sections: Any, expected: str, tmp_path: Path) -> None:
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(reachable(tmp_path, **sections)), encoding="utf-8")
    with processes(tmp_path / "logs") as procs:
        code, out, err = procs.call("run", "--once", "--config", str(file), timeout=30)
    assert_one_clear_line(code, out, err, file, expected)


def test_missing_kubeconfig_file_is_exit_2(tmp_path: Path) -> None:
    data = reachable(tmp_path)
    data["cluster"] = {"kubeconfig": str(tmp_path / "no-such-kubeconfig")}
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(data), encoding="utf-8")
    with processes(tmp_path / "logs") as procs:
        code, out, err = procs.call("run", "--once", "--config", str(file), timeout=30)
    assert_one_clear_line(code, out, err, file, "cluster.kubeconfig: ")


def test_plan_cannot_start_like_run_without_a_traceback(tmp_path: Path) -> None:
    data = reachable(tmp_path)
    data["repository"]["url"] = str(tmp_path / "no-such-remote.git")
    file = tmp_path / "gitops-canary.yaml"
    file.write_text(json.dumps(data), encoding="utf-8")
    with processes(tmp_path / "logs") as procs:
        code, _, err = procs.call("plan", "--config", str(file), timeout=30)
    assert "Traceback" not in err, err
    assert code == 3, err
    assert len(lines(err)) == 1, err
    assert "Cannot start: " in err, err


def test_metrics_port_in_use_cannot_start_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = {"enabled": True, "address": "127.0.0.1", "port": port}
        file = tmp_path / "gitops-canary.yaml"
        file.write_text(json.dumps(reachable(tmp_path, metrics=metrics)), encoding="utf-8")
        with processes(tmp_path / "logs") as procs:
            code, _, err = procs.call("run", "--config", str(file), timeout=30)
    assert "Traceback" not in err, err
    assert code == 3, err
    assert f"127.0.0.1:{port}" in err, err
