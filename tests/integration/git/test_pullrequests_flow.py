"""propose_step end to end: a real bare remote, an emulated provider, people merging or closing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forge import Forge, api_url, serve_forge
from git_helpers import person_commit, remote_tip, run_git, show

from gitops_canary.repo.credentials import TokenSource
from gitops_canary.repo.gitrepo import GitRepo
from gitops_canary.repo.pullrequests import (
    Gitea,
    GitHub,
    GitLab,
    ProposalOutcome,
    PullRequestProvider,
    propose_step,
)
from gitops_canary.repo.pushing import Produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "flow-token-xyz789"
KEY = "test/podinfo"
BRANCH = "gitops-canary/test/podinfo"
ROUTE = "apps/podinfo/gitops-canary/podinfo/httproute-podinfo.yaml"
STATUS = "apps/podinfo/gitops-canary/podinfo/status.yaml"


def step(weight: int) -> Produce:
    def produce(worktree: Path) -> tuple[str, list[str]]:
        for path, text in ((ROUTE, f"canary: {weight}\n"), (STATUS, f"canaryWeight: {weight}\n")):
            target = worktree / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        message = (
            f"Advance podinfo.test canary weight {weight}\n\nCanary: {KEY}\nCanary-Weight: {weight}"
        )
        return message, [ROUTE, STATUS]

    return produce


@dataclass
class Setup:
    remote: Path
    repo: GitRepo
    forge: Forge
    provider: PullRequestProvider
    scratch: Path


@pytest.fixture(params=["github", "gitlab", "gitea"])
def setup(
    request: pytest.FixtureRequest, remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    # Any force-push to main would fail loudly; our own branch is not protected.
    run_git("config", "receive.denyNonFastForwards", "false", cwd=remote)
    monkeypatch.setenv("FORGE_TOKEN", TOKEN)
    token = TokenSource(env="FORGE_TOKEN")
    with serve_forge(request.param, TOKEN, remote) as forge:
        provider: PullRequestProvider
        if request.param == "github":
            provider = GitHub("o", "r", token, api_url=api_url(forge))
        elif request.param == "gitlab":
            provider = GitLab("group/proj", token, api_url=api_url(forge))
        else:
            provider = Gitea("o", "r", token, api_url=api_url(forge))
        repo = GitRepo.open_or_clone(str(remote), "main", tmp_path / "work")
        yield Setup(remote, repo, forge, provider, tmp_path / "person")


def merge_by_squash(s: Setup) -> None:
    clone = s.scratch / "merger"
    if not clone.exists():
        run_git("clone", "--quiet", str(s.remote), str(clone), cwd=s.scratch.parent)
    run_git("fetch", "--quiet", "origin", cwd=clone)
    run_git("reset", "--quiet", "--hard", "origin/main", cwd=clone)
    run_git("merge", "--squash", f"origin/{BRANCH}", cwd=clone)
    run_git("commit", "--quiet", "-m", "Advance podinfo.test canary weight (#1)", cwd=clone)
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)


def merge_by_rebase(s: Setup) -> None:
    clone = s.scratch / "merger"
    if not clone.exists():
        run_git("clone", "--quiet", str(s.remote), str(clone), cwd=s.scratch.parent)
    run_git("fetch", "--quiet", "origin", cwd=clone)
    run_git("reset", "--quiet", "--hard", "origin/main", cwd=clone)
    run_git("cherry-pick", f"origin/{BRANCH}", cwd=clone)
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)


def test_open_then_squash_merge_is_detected(setup: Setup) -> None:
    main_before = remote_tip(setup.remote)
    opened = propose_step(setup.repo, KEY, step(10), setup.provider)

    assert opened.outcome is ProposalOutcome.OPEN
    assert opened.pull_request is not None
    assert opened.pull_request.title == "Advance podinfo.test canary weight 10"
    assert "Canary-Weight: 10" in opened.pull_request.body
    assert remote_tip(setup.remote) == main_before, "pull-request mode never writes main"
    assert remote_tip(setup.remote, BRANCH) == opened.head_sha
    assert run_git("rev-parse", f"{BRANCH}^", cwd=setup.remote) == main_before

    # Asked again before anyone merged: still open, nothing pushed, no second pull request.
    again = propose_step(setup.repo, KEY, step(10), setup.provider)
    assert again.outcome is ProposalOutcome.OPEN
    assert again.head_sha == opened.head_sha
    assert len(setup.forge.calls("POST")) == 1

    # A person lands an unrelated commit, then squash-merges.
    person_commit(setup.remote, setup.scratch / "p", {"apps/other.yaml": "x: 1\n"}, "unrelated")
    merge_by_squash(setup)
    setup.forge.mark_merged(opened.pull_request.number, by="alice")

    merged = propose_step(setup.repo, KEY, step(10), setup.provider)
    assert merged.outcome is ProposalOutcome.MERGED
    assert merged.pull_request is not None
    assert merged.pull_request.number == opened.pull_request.number
    assert show(setup.remote, "main", ROUTE) == "canary: 10"


def test_rebase_merge_is_detected_by_content(setup: Setup) -> None:
    opened = propose_step(setup.repo, KEY, step(20), setup.provider)
    person_commit(setup.remote, setup.scratch / "p", {"apps/other.yaml": "x: 2\n"}, "unrelated")
    merge_by_rebase(setup)
    assert remote_tip(setup.remote) != opened.head_sha, "a rebase merge makes a new commit id"
    # The provider has not caught up (the pull request still says open): content decides.
    merged = propose_step(setup.repo, KEY, step(20), setup.provider)
    assert merged.outcome is ProposalOutcome.MERGED

    # The next step opens a fresh proposal on top of the merged one.
    following = propose_step(setup.repo, KEY, step(30), setup.provider)
    assert following.outcome is ProposalOutcome.OPEN
    assert run_git("rev-parse", f"{BRANCH}^", cwd=setup.remote) == remote_tip(setup.remote)


def test_closed_without_merge_halts(setup: Setup) -> None:
    opened = propose_step(setup.repo, KEY, step(10), setup.provider)
    assert opened.pull_request is not None
    setup.forge.close(opened.pull_request.number)

    closed = propose_step(setup.repo, KEY, step(10), setup.provider)

    assert closed.outcome is ProposalOutcome.CLOSED
    assert "closed without merging" in closed.message
    assert len(setup.forge.calls("POST")) == 1, "a closed proposal is not reopened"
    assert show(setup.remote, "main", "README.md") == "config repo"


def test_a_second_step_updates_the_same_pull_request(setup: Setup) -> None:
    first = propose_step(setup.repo, KEY, step(10), setup.provider)
    second = propose_step(setup.repo, KEY, step(20), setup.provider)

    assert second.outcome is ProposalOutcome.OPEN
    assert first.pull_request is not None
    assert second.pull_request is not None
    assert second.pull_request.number == first.pull_request.number
    assert second.pull_request.title == "Advance podinfo.test canary weight 20"
    assert len(setup.forge.calls("POST")) == 1
    assert len(setup.forge.calls("PATCH") + setup.forge.calls("PUT")) == 1
    assert show(setup.remote, BRANCH, ROUTE) == "canary: 20"
    assert run_git("rev-list", "--count", f"main..{BRANCH}", cwd=setup.remote) == "1"


def test_nothing_to_propose(setup: Setup) -> None:
    state = propose_step(setup.repo, KEY, lambda worktree: None, setup.provider)
    assert state.outcome is ProposalOutcome.NOTHING
    assert state.pull_request is None
    assert all(r.method == "GET" for r in setup.forge.requests), "only looked, changed nothing"


def test_merged_and_head_branch_deleted(setup: Setup) -> None:
    opened = propose_step(setup.repo, KEY, step(10), setup.provider)
    assert opened.pull_request is not None
    merge_by_squash(setup)
    setup.forge.mark_merged(opened.pull_request.number, by="alice")
    run_git("update-ref", "-d", f"refs/heads/{BRANCH}", cwd=setup.remote)  # "delete branch"

    merged = propose_step(setup.repo, KEY, step(10), setup.provider)

    assert merged.outcome is ProposalOutcome.MERGED
    assert merged.head_sha is None
    assert merged.pull_request is not None
    assert merged.pull_request.merged_by == "alice"
