"""No credential reaches any output: logs, errors, commits, files, pull requests or /metrics.

A real rollout runs through the playground with four credentials planted:

* a token in the remote URL (``http://x-access-token:TOKEN@127.0.0.1:<port>/remote.git``, served
  by ``git http-backend`` behind a loopback server that refuses any other token);
* a token in the environment (``repository.credentials.token: {env: ...}``), the same server
  then accepting only that one;
* a cluster Secret that a MetricTemplate's ``secretRef`` names: its ``token`` reaches a loopback
  Prometheus as a bearer token;
* a pull-request API token (``push.pullRequests.token: {env: ...}``) sent to the loopback GitHub
  emulator, in ``every-step`` review mode.

Every byte the run produces is captured: JSON and text logs, stdout and stderr, exception texts
(including deliberately provoked authentication failures and a bad configuration), tick reports,
every commit message and diff of every ref in the remote, the reconciler's working copies on disk
(``.git/config`` included), the pull requests and the JSON sent to the API, ``/metrics`` in-process
and over HTTP from a ``gitops-canary run`` subprocess, and the output of ``run --once``, ``plan``,
``status`` and ``history`` subprocesses. Each token (and its base64 form) must appear nowhere,
while positive checks prove that each one was really used.

Two more tests show a gap: a server that echoes the credential back in its error answer.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gitops_canary.cli.wiring import Built, build, secret_reader
from gitops_canary.config import ConfigError, parse_config
from gitops_canary.core.decisions import Event, EventType, Severity
from gitops_canary.core.promql import MetricQuery, QuerySource, SecretLocation
from gitops_canary.core.specs import AlertProvider, Canary, CanaryMetric
from gitops_canary.core.verdicts import OutcomeKind
from gitops_canary.observe.cluster import ClusterReader
from gitops_canary.observe.notifications import Notifier
from gitops_canary.observe.prometheus import PrometheusClient
from gitops_canary.playground import EXAMPLES, Playground
from gitops_canary.reconciler import TickReport
from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.store import Store
from gitops_canary.telemetry import LOGGER_NAME, configure_logging

sys.path.insert(0, str(Path(__file__).resolve().parent / "git"))
from forge import api_url, serve_forge
from git_http import serve_git_over_http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLI = Path(sys.executable).with_name("gitops-canary")
GIT_USER = "x-access-token"
GIT_ENV = "GITOPS_CANARY_TEST_GIT_TOKEN"
FORGE_ENV = "GITOPS_CANARY_TEST_FORGE_TOKEN"
AUTH_PROMETHEUS = "http://prometheus-auth.test:9090"
METRIC_SECRET = ("flagger-system", "prometheus-auth")
STATUS = "apps/podinfo/gitops-canary/podinfo/status.yaml"
CANARY = "test/podinfo"


def new_token(kind: str) -> str:
    return f"{kind}{secrets.token_hex(16)}"


# --------------------------------------------------------------------------- capture


@dataclass
class Captured:
    """Every piece of output, by where it came from."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, source: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.texts.setdefault(source, []).append(text)

    def leaks(self, secret: str) -> list[str]:
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        return sorted(
            source
            for source, chunks in self.texts.items()
            if any(form in chunk for chunk in chunks for form in forms)
        )

    def joined(self, source: str) -> str:
        return "\n".join(self.texts.get(source, []))


@contextlib.contextmanager
def logging_to(stream: io.StringIO, fmt: str) -> Iterator[None]:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    configure_logging(fmt, "debug", stream=stream)
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


# --------------------------------------------------------------------------- loopback servers


@dataclass
class RecordingPrometheus:
    """Answers every instant query with 0 and records the Authorization header it got.

    ``echo`` makes it refuse with a 401 that quotes the header, like some auth proxies do.
    """

    echo: bool = False
    url: str = ""
    authorizations: list[str] = field(default_factory=list)


def _prometheus_handler(state: RecordingPrometheus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            header = self.headers.get("Authorization", "")
            state.authorizations.append(header)
            if state.echo:
                status = 401
                body: dict[str, Any] = {
                    "status": "error",
                    "errorType": "unauthorized",
                    "error": f"invalid credentials {header!r}",
                }
            else:
                status = 200
                sample = [time.time(), "0"]
                body = {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": sample}]},
                }
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

    return Handler


@contextlib.contextmanager
def serve_prometheus(*, echo: bool = False) -> Iterator[RecordingPrometheus]:
    state = RecordingPrometheus(echo=echo)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _prometheus_handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- the config repo


def seed_source(target: Path) -> None:
    """examples/repo with the error-rate MetricTemplate behind an authenticated Prometheus."""
    shutil.copytree(EXAMPLES, target)
    path = target / "apps" / "metric-templates" / "metric-templates.yaml"
    latency, error_rate = path.read_text(encoding="utf-8").split("\n---\n")
    plain = "    address: http://flagger-prometheus:9090\n"
    assert plain in error_rate
    authenticated = (
        f"    address: {AUTH_PROMETHEUS}\n    secretRef:\n      name: {METRIC_SECRET[1]}\n"
    )
    path.write_text(f"{latency}\n---\n{error_rate.replace(plain, authenticated)}", "utf-8")


def remote_file(playground: Playground, path: str, ref: str = "main") -> str:
    done = subprocess.run(
        ["git", "show", f"{ref}:{path}"],
        cwd=playground.remote,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


class Person:
    """What the person does during the rollout: include the generated directory, bump the image."""

    def __init__(self, playground: Playground) -> None:
        self.playground = playground
        self.included = False
        self.bumped = False

    def act(self) -> None:
        status = remote_file(self.playground, STATUS)
        if not self.included and status:
            self.playground.include_generated("apps/podinfo")
            self.included = True
        elif self.included and not self.bumped and "phase: Initialized" in status:
            self.playground.set_image("apps/podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            self.bumped = True


def drive(
    built: Built,
    captured: Captured,
    person: Person,
    until: Callable[[TickReport], bool],
    seconds: float,
) -> None:
    """Tick (and let the person act) until ``until`` holds for a tick's report."""
    deadline = time.monotonic() + seconds
    last: list[str] = []
    while time.monotonic() < deadline:
        try:
            report = built.reconciler.tick()
        except Exception:
            captured.add("exception texts", traceback.format_exc())
        else:
            last = [f"{o.key} {o.kind} {o.weight} {o.message}" for o in report.outcomes]
            captured.add("tick reports", "\n".join([*report.problems, *last]))
            if until(report):
                return
        person.act()
        time.sleep(0.2)
    pytest.fail("the rollout did not get there in time; last tick:\n" + "\n".join(last))


def podinfo_weight_at_least(weight: int, extra: Callable[[], bool]) -> Callable[[TickReport], bool]:
    def reached(report: TickReport) -> bool:
        return extra() and any(
            o.key == CANARY and o.kind == "commit" and o.weight >= weight for o in report.outcomes
        )

    return reached


def podinfo_committed(report: TickReport) -> bool:
    return any(o.key == CANARY and o.kind == "commit" for o in report.outcomes)


def capture_remote(remote: Path, captured: Captured) -> None:
    """Every commit message and change of every ref, and the ref names."""
    for args in (
        ["log", "--all", "-p", "--format=fuller", "--no-color"],
        ["for-each-ref"],
    ):
        done = subprocess.run(
            ["git", *args], cwd=remote, capture_output=True, timeout=60, check=True
        )
        captured.add("remote repository", done.stdout)


def capture_tree(root: Path, captured: Captured) -> None:
    """Every file a working copy left on disk, except git's compressed objects."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and "objects" not in path.parts:
            captured.add(f"files under {root.name}", path.read_bytes())


# --------------------------------------------------------------------------- subprocesses


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def run_cli(args: list[str], env: dict[str, str], captured: Captured, label: str) -> int:
    done = subprocess.run([str(CLI), *args], capture_output=True, env=env, timeout=120, check=False)
    captured.add(f"{label} stdout", done.stdout)
    captured.add(f"{label} stderr", done.stderr)
    return done.returncode


def scrape_metrics_of_a_running_process(
    config: Path, env: dict[str, str], captured: Captured, workdir: Path
) -> None:
    """``gitops-canary run`` with /metrics on a free port: scrape it after a tick, then stop."""
    log_path = workdir / "run-loop.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(CLI), "run", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            address = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                text = log_path.read_text(encoding="utf-8", errors="replace")
                found = re.search(r"Serving /metrics, /healthz and /readyz on ([\d.]+):(\d+)", text)
                ticked = "podinfo" in text
                if found and ticked:
                    address = f"http://{found.group(1)}:{found.group(2)}"
                    break
                time.sleep(0.2)
            assert address is not None, f"gitops-canary run did not serve /metrics:\n{text}"
            with urllib.request.urlopen(f"{address}/metrics", timeout=10) as response:
                body = response.read()
            captured.add("/metrics of gitops-canary run", body)
            assert b"gitops_canary_ticks" in body
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    captured.add("gitops-canary run output", log_path.read_bytes())


# --------------------------------------------------------------------------- the scenario


@dataclass
class Tokens:
    url: str = field(default_factory=lambda: new_token("urltoken"))
    env: str = field(default_factory=lambda: new_token("envtoken"))
    forge: str = field(default_factory=lambda: new_token("forgetoken"))
    secret: str = field(default_factory=lambda: new_token("secrettoken"))

    def all(self) -> dict[str, str]:
        return {"URL": self.url, "environment": self.env, "API": self.forge, "Secret": self.secret}


def test_no_credential_reaches_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens()
    captured = Captured()
    source = tmp_path / "source"
    seed_source(source)
    monkeypatch.setenv(GIT_ENV, tokens.env)
    monkeypatch.setenv(FORGE_ENV, tokens.forge)
    json_logs, text_logs, output = io.StringIO(), io.StringIO(), io.StringIO()

    with (
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(output),
        serve_prometheus() as prometheus,
        Playground(tmp_path / "playground", source=source) as playground,
        serve_git_over_http(tmp_path / "playground", GIT_USER, tokens.url) as git_server,
        serve_forge("github", tokens.forge, playground.remote) as forge,
    ):
        assert playground.cluster is not None
        playground.cluster.store.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"namespace": METRIC_SECRET[0], "name": METRIC_SECRET[1]},
                "type": "Opaque",
                "data": {"token": base64.b64encode(tokens.secret.encode()).decode()},
            }
        )
        person = Person(playground)
        remote_url = f"{git_server.url}/remote.git"
        base = playground.config_data()
        base["addressOverrides"][AUTH_PROMETHEUS] = prometheus.url

        def config_data(workdir: str, **repository: Any) -> dict[str, Any]:
            data: dict[str, Any] = json.loads(json.dumps(base))
            data["repository"].update(workdir=str(tmp_path / workdir), **repository)
            return data

        # 1. The token in the URL, JSON logs, until the metrics with the Secret have run.
        with logging_to(json_logs, "json"):
            url_config = config_data(
                "work-url", url=remote_url.replace("//", f"//{GIT_USER}:{tokens.url}@", 1)
            )
            built = build(parse_config(url_config, "<url>", env={}))
            try:
                drive(
                    built,
                    captured,
                    person,
                    podinfo_weight_at_least(20, lambda: bool(prometheus.authorizations)),
                    seconds=120,
                )
                captured.add("/metrics in-process", built.recorder.exposition())
            finally:
                built.close()
            assert git_server.seen_users, "the URL token never reached the git server"
            capture_tree(tmp_path / "work-url", captured)

        # 2. The token from the environment, text logs; provoked authentication failures.
        git_server.token = tokens.env
        env_config = config_data("work-env", url=remote_url)
        env_config["repository"]["credentials"] = {"token": {"env": GIT_ENV}}
        with logging_to(text_logs, "text"):
            git_server.token = new_token("unrelated")
            with pytest.raises(Exception) as refused:
                build(parse_config(env_config, "<env>", env={}))
            captured.add("exception texts", "".join(traceback.format_exception(refused.value)))
            git_server.token = tokens.env
            refused_before = git_server.refused
            built = build(parse_config(env_config, "<env>", env={}))
            try:
                drive(built, captured, person, podinfo_committed, seconds=60)
                git_server.token = new_token("unrelated")
                with pytest.raises(Exception) as failed:
                    built.reconciler.tick()
                captured.add("exception texts", "".join(traceback.format_exception(failed.value)))
                git_server.token = tokens.env
                captured.add("/metrics in-process", built.recorder.exposition())
            finally:
                built.close()
            assert git_server.refused > refused_before
            capture_tree(tmp_path / "work-env", captured)

            # 3. Pull-request mode: the next step becomes a pull request on the emulator.
            pr_config = config_data("work-pr", url=remote_url)
            pr_config["repository"]["credentials"] = {"token": {"env": GIT_ENV}}
            pr_config["push"] = {
                "mode": "pull-request",
                "pullRequests": {
                    "provider": "github",
                    "apiUrl": api_url(forge),
                    "project": "o/r",
                    "token": {"env": FORGE_ENV},
                    "review": "every-step",
                },
            }
            built = build(parse_config(pr_config, "<pr>", env={}))
            try:
                drive(built, captured, person, lambda _: bool(forge.pulls), seconds=60)
                captured.add("/metrics in-process", built.recorder.exposition())
            finally:
                built.close()
            capture_tree(tmp_path / "work-pr", captured)

        # 4. A bad configuration that carries the URL token.
        broken = config_data("work-broken", url=url_config["repository"]["url"])
        broken["logging"]["level"] = "loud"
        with pytest.raises(ConfigError) as bad_config:
            parse_config(broken, "<broken>", env={})
        captured.add("exception texts", str(bad_config.value))

        # 5. The command line, in subprocesses: run --once, plan, status, history, run (loop).
        env = {**os.environ, GIT_ENV: tokens.env, FORGE_ENV: tokens.forge}
        cli_dir = tmp_path / "cli"
        cli_dir.mkdir()
        git_server.token = tokens.url
        once = config_data("work-cli-once", url=url_config["repository"]["url"])
        once["logging"]["format"] = "json"
        assert run_cli(
            ["run", "--once", "--config", str(write_config(cli_dir / "once.yaml", once))],
            env,
            captured,
            "gitops-canary run --once",
        ) in (0, 1)
        bad = write_config(cli_dir / "bad.yaml", broken)
        assert run_cli(["run", "--once", "--config", str(bad)], env, captured, "bad config") == 2
        git_server.token = tokens.env
        planning = config_data("work-cli-plan", url=remote_url)
        planning["repository"]["credentials"] = {"token": {"env": GIT_ENV}}
        plan_file = write_config(cli_dir / "plan.yaml", planning)
        assert run_cli(["plan", "--config", str(plan_file)], env, captured, "plan") == 0
        worktree = str(tmp_path / "work-env")
        assert run_cli(["status", "--repo", worktree], env, captured, "status") == 0
        assert run_cli(["history", CANARY, "--repo", worktree], env, captured, "history") == 0
        looping = config_data("work-cli-loop", url=remote_url)
        looping["repository"]["credentials"] = {"token": {"env": GIT_ENV}}
        looping["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": 0}
        scrape_metrics_of_a_running_process(
            write_config(cli_dir / "loop.yaml", looping), env, captured, cli_dir
        )

        capture_remote(playground.remote, captured)
        for pull in forge.pulls:
            captured.add("pull requests", f"{pull.title}\n{pull.body}\n{pull.head}")
        for request in forge.requests:
            captured.add("pull-request API bodies", json.dumps(request.body))

    captured.add("logs (JSON)", json_logs.getvalue())
    captured.add("logs (text)", text_logs.getvalue())
    captured.add("stdout and stderr", output.getvalue())

    # The credentials were really used...
    assert f"Bearer {tokens.secret}" in prometheus.authorizations
    assert forge.pulls, "no pull request was opened"
    assert all(r.headers.get("Authorization") == f"Bearer {tokens.forge}" for r in forge.requests)
    assert "Advance podinfo.test canary weight" in captured.joined("logs (JSON)")
    assert "Proposed" in captured.joined("logs (text)")
    assert captured.joined("plan stdout").strip()
    assert "flagger_canary_weight" in captured.joined("/metrics in-process")
    # ...and none of them reached any output.
    leaks = {name: captured.leaks(token) for name, token in tokens.all().items()}
    assert leaks == {name: [] for name in leaks}, leaks
    assert len(captured.texts) >= 20, sorted(captured.texts)


# --------------------------------------------------------------------------- echoing servers


@pytest.fixture
def cluster_with_secret(tmp_path: Path) -> Iterator[tuple[ClusterReader, str]]:
    """The simulator's API server holding a Secret with a token, read with the real client."""
    token = new_token("echoed")
    store = Store()
    store.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"namespace": "test", "name": "credentials"},
            "data": {
                "token": base64.b64encode(token.encode()).decode(),
                "address": base64.b64encode(f"http://placeholder/{token}".encode()).decode(),
            },
        }
    )
    with ApiServer(store) as server:
        reader = ClusterReader.from_kubeconfig(server.write_kubeconfig(tmp_path / "kubeconfig"))
        try:
            yield reader, token
        finally:
            reader.close()


def test_a_prometheus_echoing_the_bearer_token_does_not_leak_it(
    cluster_with_secret: tuple[ClusterReader, str],
) -> None:
    cluster, token = cluster_with_secret
    with serve_prometheus(echo=True) as prometheus:
        query = MetricQuery(
            metric=CanaryMetric(name="error-rate"),
            query="vector(0)",
            address=prometheus.url,
            source=QuerySource.TEMPLATE,
            secret=SecretLocation("test", "credentials"),
            template="error-rate.test",
        )
        outcome = PrometheusClient(secret_reader=secret_reader(cluster)).query(query)
    assert prometheus.authorizations == [f"Bearer {token}"]
    assert outcome.kind is OutcomeKind.ERROR
    assert "unauthorized" in outcome.error
    assert token not in outcome.error


def test_an_alert_receiver_echoing_its_secret_path_does_not_leak_it(
    cluster_with_secret: tuple[ClusterReader, str],
) -> None:
    cluster, token = cluster_with_secret
    stream = io.StringIO()

    class Echo(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = f"no such hook: {self.path}".encode()
            self.send_response(404)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:

        def read(namespace: str, name: str) -> dict[str, str]:
            data = dict(secret_reader(cluster)(namespace, name))
            data["address"] = data["address"].replace("http://placeholder", base)
            return data

        provider = AlertProvider.model_validate(
            {
                "apiVersion": "flagger.app/v1beta1",
                "kind": "AlertProvider",
                "metadata": {"name": "on-call", "namespace": "test"},
                "spec": {"type": "slack", "secretRef": {"name": "credentials"}},
            }
        )
        canary = Canary.model_validate(
            {
                "apiVersion": "flagger.app/v1beta1",
                "kind": "Canary",
                "metadata": {"name": "podinfo", "namespace": "test"},
                "spec": {
                    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                    "service": {"port": 80},
                    "analysis": {
                        "interval": "1m",
                        "threshold": 5,
                        "stepWeight": 10,
                        "alerts": [
                            {
                                "name": "on-call",
                                "severity": "info",
                                "providerRef": {"name": "on-call"},
                            }
                        ],
                    },
                },
            }
        )
        with logging_to(stream, "text"):
            deliveries = Notifier({provider.key: provider}, secret_reader=read).notify(
                canary,
                Event(EventType.NORMAL, "New revision detected", alert=Severity.INFO),
                phase="Progressing",
                weight=0,
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert deliveries
    assert not deliveries[0].ok
    assert "no such hook" in stream.getvalue()
    assert token not in stream.getvalue()
    assert token not in deliveries[0].error
