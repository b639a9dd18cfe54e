"""Pull-request mode end to end: gitops-canary proposes steps on its own branch through a
loopback GitHub emulator, a reviewer squash-merges each pull request, the rollout completes."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from e2e_helpers import GATEWAY, GATEWAY_APP, OpenWorld, World

from gitops_canary.config import Config
from gitops_canary.playground import Playground, git
from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TOKEN = "e2e-forge-token-5b1c"
BRANCH = "gitops-canary/test/podinfo"
REVIEWER = ("Rita Reviewer", "rita@example.org")
FORGE_FILE = Path(__file__).resolve().parents[1] / "integration" / "git" / "forge.py"


def _load_forge() -> ModuleType:
    """The integration suite's GitHub emulator, loaded under a name of its own."""
    name = "e2e_forge_emulator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FORGE_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


forge_module = _load_forge()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exits:
        yield exits


class Reviewer:
    """Squash-merges every open pull request into main, as a person would in the web UI."""

    def __init__(self, forge: Any, remote: Path, scratch: Path) -> None:
        self.forge = forge
        self.remote = remote
        self.clone = scratch / "reviewer"
        self.merged: list[tuple[int, str, str]] = []  # (number, proposed sha, merge sha)
        git(scratch, "clone", "-q", str(remote), str(self.clone))

    def __call__(self, _: TickReport) -> None:
        for pull in [p for p in self.forge.pulls if p.state == "open"]:
            proposed = git(self.remote, "rev-parse", f"refs/heads/{pull.head}")
            merged = self._squash(pull, proposed)
            self.forge.mark_merged(pull.number, by="rita")
            self.merged.append((pull.number, proposed, merged))

    def _squash(self, pull: Any, proposed: str) -> str:
        identity = ["-c", f"user.name={REVIEWER[0]}", "-c", f"user.email={REVIEWER[1]}"]
        for _ in range(10):
            git(self.clone, "fetch", "-q", "origin")
            git(self.clone, "reset", "-q", "--hard", "origin/main")
            git(self.clone, "merge", "--squash", proposed)
            # GitHub's squash message: the title with the number, then the description.
            git(
                self.clone,
                *identity,
                "commit",
                "-q",
                "-m",
                f"{pull.title} (#{pull.number})\n\n{pull.body}",
            )
            try:
                git(self.clone, "push", "-q", "origin", "HEAD:main")
            except RuntimeError:
                continue  # gitops-canary pushed meanwhile: merge again on the new tip
            return git(self.clone, "rev-parse", "HEAD")
        raise AssertionError(f"could not merge pull request #{pull.number}")


def pull_request_world(
    open_playground: OpenWorld, stack: ExitStack, tmp_path: Path, review: str, **options: Any
) -> tuple[World, Any]:
    token_file = tmp_path / "forge-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    forges: list[Any] = []

    def config(playground: Playground) -> Config:
        forge = stack.enter_context(forge_module.serve_forge("github", TOKEN, playground.remote))
        forges.append(forge)
        push = {
            "mode": "pull-request",
            "pullRequests": {
                "provider": "github",
                "apiUrl": forge_module.api_url(forge),
                "project": "o/r",
                "token": {"file": str(token_file)},
                "review": review,
            },
        }
        return playground.config(push=push)

    world = open_playground(apps=[GATEWAY_APP], config=config, **options)
    return world, forges[0]


def test_promotion_goes_through_a_pull_request(
    open_playground: OpenWorld, stack: ExitStack, tmp_path: Path
) -> None:
    world, forge = pull_request_world(open_playground, stack, tmp_path, "promotion")
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")
    reviewer = Reviewer(forge, world.remote, tmp_path)
    world.drive(lambda: world.phase(GATEWAY) == "Succeeded", 150, "promotion via PR", reviewer)

    assert len(forge.pulls) == 1, [p.title for p in forge.pulls]
    (pull,) = forge.pulls
    assert pull.head == BRANCH
    assert pull.base == "main"
    assert pull.state == "merged"
    assert pull.title.startswith("Copying podinfo.test template spec to podinfo-primary")
    assert "Canary-Phase: Promoting" in pull.body

    entries = world.entries(GATEWAY)
    promoting = [e for e in entries if e.phase == "Promoting"]
    assert len(promoting) == 1, "only the merge brought the promotion to main"
    (promotion,) = promoting
    ((number, proposed, merged),) = reviewer.merged
    assert promotion.sha == merged
    assert promotion.author == f"{REVIEWER[0]} <{REVIEWER[1]}>"
    assert promotion.subject.endswith(f"(#{number})")
    on_main = world.git("rev-list", "main").split()
    assert proposed not in on_main, "gitops-canary's own promotion commit never reached main"
    # Every other step is gitops-canary's direct commit.
    others = [e for e in entries if e.phase != "Promoting"]
    assert all(e.author.startswith("gitops-canary") for e in others)
    assert [e.phase for e in entries[-3:]] == ["Promoting", "Finalising", "Succeeded"]
    assert [e.weight for e in entries if e.subject.startswith("Advance")] == [10, 20, 30, 40, 50]


def test_every_step_goes_through_a_pull_request(
    open_playground: OpenWorld, stack: ExitStack, tmp_path: Path
) -> None:
    def short(canary: dict[str, Any]) -> None:
        canary["spec"]["analysis"]["maxWeight"] = 20

    world, forge = pull_request_world(
        open_playground, stack, tmp_path, "every-step", canaries={GATEWAY_APP: short}
    )
    world.initialize(GATEWAY)
    world.bump(GATEWAY, "6.0.1")
    reviewer = Reviewer(forge, world.remote, tmp_path)
    world.drive(lambda: world.phase(GATEWAY) == "Succeeded", 150, "every step via PRs", reviewer)

    run = world.entries(GATEWAY)[2:]
    assert [e.subject.split(" (#")[0] for e in run] == [
        "New revision detected! Scaling up podinfo.test",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 20",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test",
    ]
    assert all(e.author == f"{REVIEWER[0]} <{REVIEWER[1]}>" for e in run)
    assert [m[2] for m in reviewer.merged] == [e.sha for e in run]
    assert len(forge.pulls) == len(run)
    on_main = set(world.git("rev-list", "main").split())
    assert not {m[1] for m in reviewer.merged} & on_main
