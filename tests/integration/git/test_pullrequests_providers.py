"""Each provider client against a loopback emulator of its documented REST API."""

from __future__ import annotations

from pathlib import Path

import pytest
from forge import api_url, serve_forge

from gitops_canary.repo.credentials import TokenSource
from gitops_canary.repo.pullrequests import (
    Gitea,
    GitHub,
    GitLab,
    ProviderError,
    PullRequestProvider,
    PullRequestState,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

TOKEN = "provider-token-abc123"
HEAD = "gitops-canary/test/podinfo"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> TokenSource:
    monkeypatch.setenv("PR_TOKEN", TOKEN)
    return TokenSource(env="PR_TOKEN")


def test_github_requests(token: TokenSource) -> None:
    with serve_forge("github", TOKEN) as forge:
        github = GitHub("o", "r", token, api_url=api_url(forge))
        assert github.find(HEAD, "main", open_only=True) is None
        created = github.create(HEAD, "main", "Advance podinfo.test canary weight 10", "body 1")
        updated = github.update(created.number, "Advance podinfo.test canary weight 20", "body 2")
        forge.mark_merged(created.number, by="alice")
        fetched = github.get(created.number)
        listed = github.find(HEAD, "main", open_only=False)

    find, post, patch, get = (
        forge.requests[0],
        forge.calls("POST")[0],
        forge.calls("PATCH")[0],
        forge.requests[3],
    )
    assert (find.method, find.path) == ("GET", "/repos/o/r/pulls")
    assert find.query == {
        "head": f"o:{HEAD}",
        "base": "main",
        "state": "open",
        "sort": "created",
        "direction": "desc",
        "per_page": "10",
    }
    assert find.headers["Authorization"] == f"Bearer {TOKEN}"
    assert find.headers["Accept"] == "application/vnd.github+json"
    assert find.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert post.path == "/repos/o/r/pulls"
    assert post.body == {
        "title": "Advance podinfo.test canary weight 10",
        "head": HEAD,
        "base": "main",
        "body": "body 1",
    }
    assert (patch.path, patch.body) == (
        "/repos/o/r/pulls/1",
        {"title": "Advance podinfo.test canary weight 20", "body": "body 2"},
    )
    assert (get.method, get.path) == ("GET", "/repos/o/r/pulls/1")
    assert created.state is PullRequestState.OPEN
    assert created.url.endswith("/o/r/pull/1")
    assert updated.title.endswith("weight 20")
    assert (fetched.state, fetched.merged_by) == (PullRequestState.MERGED, "alice")
    assert listed is not None
    assert listed.state is PullRequestState.MERGED, "the list's merged_at marks a merge"


def test_gitlab_requests(token: TokenSource) -> None:
    with serve_forge("gitlab", TOKEN) as forge:
        gitlab = GitLab("group/proj", token, api_url=api_url(forge))
        assert gitlab.find(HEAD, "main", open_only=True) is None
        created = gitlab.create(HEAD, "main", "Promote podinfo.test", "why")
        gitlab.update(created.number, "Promote podinfo.test (2)", "why 2")
        forge.close(created.number)
        closed = gitlab.get(created.number)
        latest = gitlab.find(HEAD, "main", open_only=False)

    find, post, put = forge.requests[0], forge.calls("POST")[0], forge.calls("PUT")[0]
    prefix = "/api/v4/projects/group%2Fproj/merge_requests"
    assert (find.method, find.path) == ("GET", prefix)
    assert find.query["source_branch"] == HEAD
    assert find.query["target_branch"] == "main"
    assert find.query["state"] == "opened"
    assert find.headers["PRIVATE-TOKEN"] == TOKEN
    assert "Authorization" not in find.headers
    assert (post.path, post.body) == (
        prefix,
        {
            "source_branch": HEAD,
            "target_branch": "main",
            "title": "Promote podinfo.test",
            "description": "why",
        },
    )
    assert (put.path, put.body) == (
        f"{prefix}/1",
        {"title": "Promote podinfo.test (2)", "description": "why 2"},
    )
    assert closed.state is PullRequestState.CLOSED
    assert latest is not None
    assert latest.number == 1
    assert forge.requests[-1].query["state"] == "all"


def test_gitea_requests_and_paging(token: TokenSource) -> None:
    with serve_forge("gitea", TOKEN) as forge:
        gitea = Gitea("o", "r", token, api_url=api_url(forge))
        for n in range(60):  # other people's pull requests fill the first page
            gitea.create(f"feature-{n}", "main", f"feature {n}", "")
        ours = gitea.create(HEAD, "main", "Advance", "b")
        for n in range(60, 65):
            gitea.create(f"feature-{n}", "main", f"feature {n}", "")
        forge.requests.clear()
        found = gitea.find(HEAD, "main", open_only=True)
        gitea.update(ours.number, "Advance (2)", "b2")
        forge.mark_merged(ours.number, by="bob")
        merged = gitea.get(ours.number)

    assert found is not None
    assert found.number == ours.number
    pages = [r for r in forge.requests if r.method == "GET" and r.path == "/api/v1/repos/o/r/pulls"]
    assert [r.query["page"] for r in pages] == ["1", "2"]
    assert pages[0].query["state"] == "open"
    assert pages[0].headers["Authorization"] == f"token {TOKEN}"
    patch = forge.calls("PATCH")[0]
    assert (patch.path, patch.body) == (
        f"/api/v1/repos/o/r/pulls/{ours.number}",
        {"title": "Advance (2)", "body": "b2"},
    )
    assert (merged.state, merged.merged_by) == (PullRequestState.MERGED, "bob")


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_bad_token_gives_a_clear_error_without_the_token(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PR_TOKEN", "wrong-token-value-42")
    token = TokenSource(env="PR_TOKEN")
    with serve_forge(kind, TOKEN) as forge:
        provider: PullRequestProvider = {
            "github": lambda: GitHub("o", "r", token, api_url=api_url(forge)),
            "gitlab": lambda: GitLab("group/proj", token, api_url=api_url(forge)),
            "gitea": lambda: Gitea("o", "r", token, api_url=api_url(forge)),
        }[kind]()
        with pytest.raises(ProviderError) as raised:
            provider.find(HEAD, "main", open_only=True)
    message = str(raised.value)
    assert "answered 401: Bad credentials" in message
    assert "check the API token" in message
    assert "wrong-token-value-42" not in message


def test_unreachable_provider_is_named(token: TokenSource, tmp_path: Path) -> None:
    github = GitHub("o", "r", token, api_url="http://127.0.0.1:9", timeout=(1.0, 1.0))
    with pytest.raises(
        ProviderError, match=r"GitHub: GET http://127\.0\.0\.1:9/repos/o/r/pulls did not answer"
    ):
        github.find(HEAD, "main", open_only=True)
