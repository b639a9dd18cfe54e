"""A complete local setup for the demo and the end-to-end tests: nothing here is production.

It seeds a bare config repository from a directory (``examples/repo`` by default), starts the
cluster simulator (API server, Flux-like applier, workloads, traffic), a real Prometheus scraping
it and a Flagger load-tester stand-in, and writes a :class:`Config` that points gitops-canary at
all of them. Analysis intervals are scaled down (``timing.intervalScale``) so a rollout takes
seconds; the simulator says so.

People's commits (an image bump, including the generated directory) are made with
:meth:`Playground.person_commit`, through a clone of their own, like a second writer would.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_canary.config import Config, parse_config
from gitops_canary.observe.loadtester import LoadTester
from gitops_canary.sim.cluster import SimCluster
from gitops_canary.sim.prometheus import PrometheusServer
from gitops_canary.sim.scenario import Scenario, parse_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "repo"

#: The demo's story needs a version that fails: 6.0.2 answers 60 % of requests with HTTP 500.
DEFAULT_SCENARIO: Mapping[str, Any] = {
    "timeFactor": 10,
    "rolloutSeconds": 1.5,
    "requestsPerSecond": 40,
    "headerShare": {"x-canary": "insider", "share": 0.3},
    "images": {
        "ghcr.io/stefanprodan/podinfo:6.0.2": {
            "errorRate": 0.6,
            "latencyMs": {"p50": 20, "p99": 80},
        },
        "ghcr.io/stefanprodan/podinfo:9.9.9": {"neverReady": True},
    },
    "default": {"errorRate": 0.0, "latencyMs": {"p50": 15, "p99": 60}},
}

#: Flux Kustomizations of the example repository: name -> path.
DEFAULT_PATHS: Mapping[str, str] = {
    "podinfo": "apps/podinfo",
    "podinfo-contour": "apps/podinfo-contour",
    "loadtester": "apps/loadtester",
    "infrastructure": "infrastructure/gateway",
}

PERSON = ("Dana Developer", "dana@example.org")


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git quietly; raise with git's own message on failure."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout.strip()


def _identity(name: str, email: str) -> list[str]:
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def seed_remote(source: Path, remote: Path, branch: str = "main") -> None:
    """Create a bare repository whose first commit is ``source``'s files, made by a person."""
    with tempfile.TemporaryDirectory(prefix="gitops-canary-seed-") as scratch:
        work = Path(scratch) / "work"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git", "gitops-canary"))
        git(work, "init", "-q", "-b", branch)
        git(work, "add", "-A")
        git(work, *_identity(*PERSON), "commit", "-q", "-m", "Add the platform config")
        remote.parent.mkdir(parents=True, exist_ok=True)
        git(remote.parent, "init", "-q", "--bare", "-b", branch, str(remote))
        git(work, "push", "-q", str(remote), f"{branch}:{branch}")


@dataclass
class Playground:
    """Everything the demo runs on. Use as a context manager; ``stop()`` cleans up."""

    workdir: Path
    source: Path = EXAMPLES
    scenario: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_SCENARIO)
    paths: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PATHS)
    interval_scale: float = 0.05
    applier_interval: float = 0.5
    poll: str = "0.3s"
    branch: str = "main"

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.remote = self.workdir / "remote.git"
        self.person_clone = self.workdir / "person"
        self.cluster: SimCluster | None = None
        self.prometheus: PrometheusServer | None = None
        self.loadtester: LoadTester | None = None
        self._stops: list[Callable[[], None]] = []

    # -- lifecycle

    def start(self) -> Playground:
        self.workdir.mkdir(parents=True, exist_ok=True)
        seed_remote(self.source, self.remote, self.branch)
        git(
            self.workdir, "clone", "-q", "-b", self.branch, str(self.remote), str(self.person_clone)
        )
        scenario: Scenario = parse_scenario(dict(self.scenario), "<playground scenario>")
        self.cluster = SimCluster(
            str(self.remote),
            self.branch,
            dict(self.paths),
            scenario,
            self.workdir / "sim",
            applier_interval=self.applier_interval,
        )
        self.cluster.start()
        self._stops.append(self.cluster.stop)
        self.prometheus = PrometheusServer(
            [self.cluster.exporter_address],
            scrape_interval="1s",
            workdir=self.workdir / "prometheus",
        )
        self.prometheus.start()
        self._stops.append(self.prometheus.stop)
        self.loadtester = LoadTester()
        self.loadtester.start()
        self._stops.append(self.loadtester.stop)
        return self

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            # Best effort: one part failing to stop must not keep the others running.
            with contextlib.suppress(Exception):
                stop()

    def __enter__(self) -> Playground:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- configuration for gitops-canary

    def config_data(self, **overrides: Any) -> dict[str, Any]:
        assert self.cluster is not None
        assert self.prometheus is not None
        assert self.loadtester is not None
        data: dict[str, Any] = {
            "simulator": True,
            "repository": {
                "url": str(self.remote),
                "branch": self.branch,
                "paths": ["apps"],
                "workdir": str(self.workdir / "reconciler"),
                "author": {"name": "gitops-canary", "email": "gitops-canary@example.org"},
            },
            "cluster": {"kubeconfig": str(self.cluster.kubeconfig)},
            "appliers": [
                {"path": path, "flux": {"namespace": "flux-system", "name": name}}
                for name, path in self.paths.items()
            ],
            "defaults": {
                "provider": "gatewayapi:v1",
                "prometheus": {"address": self.prometheus.url},
            },
            "timing": {"poll": self.poll, "intervalScale": self.interval_scale},
            "logging": {"format": "text", "level": "info"},
            "metrics": {"enabled": False},
            "addressOverrides": {
                "http://flagger-loadtester.test": self.loadtester.url.rstrip("/"),
                "http://flagger-prometheus:9090": self.prometheus.url.rstrip("/"),
            },
        }
        for applier in data["appliers"]:
            if applier["path"] == "apps/podinfo-contour":
                applier["provider"] = "contour"
        for key, value in overrides.items():
            data[key] = value
        return data

    def config(self, **overrides: Any) -> Config:
        return parse_config(self.config_data(**overrides), "<playground>", env={})

    # -- people's commits

    def person_commit(self, message: str, edit: Callable[[Path], None]) -> str:
        """Pull, let ``edit`` change files in the person's clone, commit, push (retrying races)."""
        for _ in range(10):
            git(self.person_clone, "fetch", "-q", "origin")
            git(self.person_clone, "reset", "-q", "--hard", f"origin/{self.branch}")
            edit(self.person_clone)
            git(self.person_clone, "add", "-A")
            git(self.person_clone, *_identity(*PERSON), "commit", "-q", "-m", message)
            try:
                git(self.person_clone, "push", "-q", "origin", f"HEAD:{self.branch}")
            except RuntimeError:
                continue  # someone (gitops-canary) pushed first: redo the edit on the new tip
            return git(self.person_clone, "rev-parse", "HEAD")
        raise RuntimeError(f"could not push {message!r} after 10 attempts")

    def set_image(self, app_dir: str, image: str) -> str:
        def edit(root: Path) -> None:
            path = root / app_dir / "deployment.yaml"
            text = path.read_text(encoding="utf-8")
            lines = [
                (line.split("image:")[0] + f"image: {image}")
                if "image: ghcr.io/stefanprodan/podinfo" in line
                else line
                for line in text.splitlines()
            ]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")

        return self.person_commit(f"Deploy {image} to {app_dir}", edit)

    def include_generated(self, app_dir: str, canary_name: str = "podinfo") -> str:
        """Add ``gitops-canary/<name>`` to the app's kustomization, as the docs tell people."""

        def edit(root: Path) -> None:
            path = root / app_dir / "kustomization.yaml"
            text = path.read_text(encoding="utf-8")
            entry = f"  - gitops-canary/{canary_name}\n"
            if entry not in text:
                path.write_text(text.rstrip("\n") + "\n" + entry, encoding="utf-8")

        return self.person_commit(f"Include gitops-canary's objects for {app_dir}", edit)
