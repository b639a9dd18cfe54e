"""Pull-request mode: each step is proposed on a branch of our own and waits for a person's merge.

Owns the :class:`PullRequestProvider` protocol and its GitHub (REST v3), GitLab (v4) and
Gitea/Forgejo (v1) implementations, and :func:`propose_step`, which commits a step on
``gitops-canary/<ns>/<name>`` (created from the watched branch's tip; force-pushing this branch,
which only gitops-canary writes, is fine — the watched branch is never forced), keeps exactly one
open pull request per canary, and reports whether the proposal is open, merged or closed.

"Merged" is judged by content, not by the provider's flag or by commit ids: the files our step
changed have the same blob ids on the watched branch as on our branch. That holds for merge
commits, squash merges and rebase merges alike, and for a person who applied the change by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote

import requests

from gitops_canary.repo.credentials import TokenSource
from gitops_canary.repo.gitrepo import GitError, GitRepo
from gitops_canary.repo.pushing import Produce, branch_lock
from gitops_canary.repo.scrub import scrub

log = logging.getLogger(__name__)

#: Seconds to connect and to wait for an answer from a provider's API.
DEFAULT_TIMEOUT = (5.0, 30.0)


class ProviderError(Exception):
    """A pull-request API call failed; the message names the provider, call and its answer."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class PullRequestState(StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: PullRequestState
    head_branch: str
    head_sha: str | None
    title: str
    body: str
    merged_by: str | None = None


class PullRequestProvider(Protocol):
    """The few calls pull-request mode needs from a git hosting service."""

    name: str

    def find(self, head_branch: str, base_branch: str, *, open_only: bool) -> PullRequest | None:
        """The newest pull request from ``head_branch`` into ``base_branch`` (only open ones if
        ``open_only``), or None."""
        ...

    def create(self, head_branch: str, base_branch: str, title: str, body: str) -> PullRequest: ...

    def update(self, number: int, title: str, body: str) -> PullRequest: ...

    def get(self, number: int) -> PullRequest: ...


class _RestProvider:
    """Shared HTTP plumbing: token header, timeout, readable errors."""

    name = "provider"

    def __init__(
        self,
        api_url: str,
        token: TokenSource,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._session = session or requests.Session()

    def _auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        token = self._token.read()
        headers = {"User-Agent": "gitops-canary", "Accept": "application/json"}
        headers.update(self._auth_headers(token))
        url = f"{self.api_url}{path}"
        try:
            response = self._session.request(
                method, url, params=params, json=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise ProviderError(f"{self.name}: {method} {url} did not answer: {error}") from None
        if response.status_code >= 400:
            raise ProviderError(
                f"{self.name}: {method} {url} answered {response.status_code}: "
                f"{_error_text(response)}"
                + (
                    " (check the API token and its scopes)"
                    if response.status_code in (401, 403)
                    else ""
                )
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{self.name}: {method} {url} answered non-JSON content") from None


class GitHub(_RestProvider):
    """GitHub and GitHub Enterprise (``api_url`` ``https://<host>/api/v3``), REST v3."""

    name = "GitHub"

    def __init__(
        self,
        owner: str,
        repository: str,
        token: TokenSource,
        *,
        api_url: str = "https://api.github.com",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(api_url, token, timeout=timeout, session=session)
        self.owner = owner
        self._pulls = f"/repos/{quote(owner, safe='')}/{quote(repository, safe='')}/pulls"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def find(self, head_branch: str, base_branch: str, *, open_only: bool) -> PullRequest | None:
        found = self._call(
            "GET",
            self._pulls,
            params={
                "head": f"{self.owner}:{head_branch}",
                "base": base_branch,
                "state": "open" if open_only else "all",
                "sort": "created",
                "direction": "desc",
                "per_page": 10,
            },
        )
        return self._parse(found[0]) if found else None

    def create(self, head_branch: str, base_branch: str, title: str, body: str) -> PullRequest:
        payload = {"title": title, "head": head_branch, "base": base_branch, "body": body}
        return self._parse(self._call("POST", self._pulls, body=payload))

    def update(self, number: int, title: str, body: str) -> PullRequest:
        payload = {"title": title, "body": body}
        return self._parse(self._call("PATCH", f"{self._pulls}/{number}", body=payload))

    def get(self, number: int) -> PullRequest:
        return self._parse(self._call("GET", f"{self._pulls}/{number}"))

    @staticmethod
    def _parse(data: dict[str, Any]) -> PullRequest:
        # The list endpoint has merged_at but no "merged"; the single endpoint has both.
        merged = bool(data.get("merged")) or data.get("merged_at") is not None
        state = (
            PullRequestState.MERGED
            if merged
            else PullRequestState.OPEN
            if data["state"] == "open"
            else PullRequestState.CLOSED
        )
        return PullRequest(
            number=int(data["number"]),
            url=str(data.get("html_url", "")),
            state=state,
            head_branch=str(data["head"]["ref"]),
            head_sha=data["head"].get("sha"),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            merged_by=_login(data.get("merged_by"), "login"),
        )


class GitLab(_RestProvider):
    """GitLab (gitlab.com or self-managed, ``api_url`` ``https://<host>/api/v4``) merge requests."""

    name = "GitLab"

    def __init__(
        self,
        project: str,
        token: TokenSource,
        *,
        api_url: str = "https://gitlab.com/api/v4",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(api_url, token, timeout=timeout, session=session)
        # A numeric id or the URL-encoded "group/project" path.
        self._mrs = f"/projects/{quote(project, safe='')}/merge_requests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    def find(self, head_branch: str, base_branch: str, *, open_only: bool) -> PullRequest | None:
        params: dict[str, str | int] = {
            "source_branch": head_branch,
            "target_branch": base_branch,
            "order_by": "created_at",
            "sort": "desc",
            "per_page": 10,
        }
        params["state"] = "opened" if open_only else "all"
        found = self._call("GET", self._mrs, params=params)
        return self._parse(found[0]) if found else None

    def create(self, head_branch: str, base_branch: str, title: str, body: str) -> PullRequest:
        payload = {
            "source_branch": head_branch,
            "target_branch": base_branch,
            "title": title,
            "description": body,
        }
        return self._parse(self._call("POST", self._mrs, body=payload))

    def update(self, number: int, title: str, body: str) -> PullRequest:
        payload = {"title": title, "description": body}
        return self._parse(self._call("PUT", f"{self._mrs}/{number}", body=payload))

    def get(self, number: int) -> PullRequest:
        return self._parse(self._call("GET", f"{self._mrs}/{number}"))

    @staticmethod
    def _parse(data: dict[str, Any]) -> PullRequest:
        states = {"merged": PullRequestState.MERGED, "closed": PullRequestState.CLOSED}
        return PullRequest(
            number=int(data["iid"]),
            url=str(data.get("web_url", "")),
            state=states.get(str(data["state"]), PullRequestState.OPEN),  # opened, locked
            head_branch=str(data["source_branch"]),
            head_sha=data.get("sha"),
            title=str(data.get("title") or ""),
            body=str(data.get("description") or ""),
            merged_by=_login(data.get("merge_user") or data.get("merged_by"), "username"),
        )


class Gitea(_RestProvider):
    """Gitea and Forgejo (``api_url`` ``https://<host>/api/v1``) pull requests."""

    name = "Gitea"
    #: Pages of open/recent pull requests scanned for ours (Gitea cannot filter by head branch).
    max_pages = 10

    def __init__(
        self,
        owner: str,
        repository: str,
        token: TokenSource,
        *,
        api_url: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(api_url, token, timeout=timeout, session=session)
        self._pulls = f"/repos/{quote(owner, safe='')}/{quote(repository, safe='')}/pulls"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}

    def find(self, head_branch: str, base_branch: str, *, open_only: bool) -> PullRequest | None:
        best: dict[str, Any] | None = None
        for page in range(1, self.max_pages + 1):
            found = self._call(
                "GET",
                self._pulls,
                params={"state": "open" if open_only else "all", "page": page, "limit": 50},
            )
            for item in found or []:
                ours = item["head"]["ref"] == head_branch and item["base"]["ref"] == base_branch
                if ours and (best is None or int(item["number"]) > int(best["number"])):
                    best = item
            if not found or len(found) < 50:
                break
        return self._parse(best) if best is not None else None

    def create(self, head_branch: str, base_branch: str, title: str, body: str) -> PullRequest:
        payload = {"head": head_branch, "base": base_branch, "title": title, "body": body}
        return self._parse(self._call("POST", self._pulls, body=payload))

    def update(self, number: int, title: str, body: str) -> PullRequest:
        payload = {"title": title, "body": body}
        return self._parse(self._call("PATCH", f"{self._pulls}/{number}", body=payload))

    def get(self, number: int) -> PullRequest:
        return self._parse(self._call("GET", f"{self._pulls}/{number}"))

    @staticmethod
    def _parse(data: dict[str, Any]) -> PullRequest:
        state = (
            PullRequestState.MERGED
            if data.get("merged")
            else PullRequestState.OPEN
            if data["state"] == "open"
            else PullRequestState.CLOSED
        )
        return PullRequest(
            number=int(data["number"]),
            url=str(data.get("html_url", "")),
            state=state,
            head_branch=str(data["head"]["ref"]),
            head_sha=data["head"].get("sha"),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            merged_by=_login(data.get("merged_by"), "login"),
        )


# -- the flow ---------------------------------------------------------------------------------


class ProposalOutcome(StrEnum):
    #: The step waits in an open pull request.
    OPEN = "open"
    #: The step's content is on the watched branch: continue from there.
    MERGED = "merged"
    #: The pull request for this very step was closed without merging: halt the canary.
    CLOSED = "closed"
    #: Nothing to propose: the watched branch already has what ``produce`` wants.
    NOTHING = "nothing"


@dataclass(frozen=True)
class ProposalState:
    outcome: ProposalOutcome
    branch: str
    #: Our branch's tip (the proposed step commit), if the branch exists.
    head_sha: str | None
    pull_request: PullRequest | None
    #: One sentence for events and logs.
    message: str


class ProposalError(GitError):
    """Our own proposal branch could not be updated."""


def proposal_branch(canary_key: str) -> str:
    """``gitops-canary/<ns>/<name>`` for the canary ``<ns>/<name>``."""
    namespace, _, name = canary_key.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"canary key {canary_key!r} is not <namespace>/<name>")
    return f"gitops-canary/{namespace}/{name}"


def propose_step(
    repo: GitRepo, canary_key: str, produce: Produce, provider: PullRequestProvider
) -> ProposalState:
    """Propose the step ``produce`` writes as a pull request into the watched branch.

    Call it again on every tick with the step the watched branch calls for: it keeps one open
    pull request per canary up to date, and tells when the proposal was merged or closed.
    """
    branch = proposal_branch(canary_key)
    base = repo.branch
    with branch_lock(repo.remote_key):
        tip = repo.fetch()
        ours = repo.fetch_branch(branch)
        repo.reset_to_remote()
        produced = produce(repo.worktree)
        candidate = repo.commit(produced[1], produced[0]) if produced is not None else None

        if candidate is None:
            if ours is not None and _landed(repo, ours, tip):
                pull = _details(provider, provider.find(branch, base, open_only=False))
                where = f" (pull request {pull.url or pull.number})" if pull else ""
                return ProposalState(
                    ProposalOutcome.MERGED,
                    branch,
                    ours,
                    pull,
                    f"The step for {canary_key} proposed on {branch}{where} is on {base}.",
                )
            if ours is None:
                # Hosts may delete a merged head branch; then the provider's word is all we have.
                latest = _details(provider, provider.find(branch, base, open_only=False))
                if latest is not None and latest.state is PullRequestState.MERGED:
                    return ProposalState(
                        ProposalOutcome.MERGED,
                        branch,
                        None,
                        latest,
                        f"Pull request {latest.url or latest.number} for {canary_key} was merged.",
                    )
            pull = provider.find(branch, base, open_only=True) if ours is not None else None
            return ProposalState(
                ProposalOutcome.NOTHING,
                branch,
                ours,
                pull,
                f"{base} already has everything {canary_key} needs; nothing to propose.",
            )

        assert produced is not None
        title, body = _title_and_body(produced[0])
        same_step = ours is not None and _same_step(repo, candidate, ours)
        head = ours if same_step else candidate
        if not same_step:
            pushed = repo.push_own_branch(branch, ours)
            if not pushed.ok:
                raise ProposalError(
                    f"could not update {branch} for {canary_key}: it changed while we were "
                    f"updating it ({pushed.detail.strip()[-200:]}); retrying on the next run"
                )
            log.info("Proposed %s on %s.", candidate[:12], branch)

        pull = provider.find(branch, base, open_only=True)
        if pull is not None:
            if (pull.title, pull.body.strip()) != (title, body.strip()):
                pull = provider.update(pull.number, title, body)
            return ProposalState(
                ProposalOutcome.OPEN,
                branch,
                head,
                pull,
                f"{canary_key} waits for pull request {pull.url or pull.number} to be merged.",
            )
        if same_step:
            latest = provider.find(branch, base, open_only=False)
            if (
                latest is not None
                and latest.state is PullRequestState.CLOSED
                and latest.head_sha in (None, head)
            ):
                return ProposalState(
                    ProposalOutcome.CLOSED,
                    branch,
                    head,
                    latest,
                    f"Pull request {latest.url or latest.number} for {canary_key} was closed "
                    f"without merging; the canary is halted until its spec or target changes.",
                )
        pull = provider.create(branch, base, title, body)
        return ProposalState(
            ProposalOutcome.OPEN,
            branch,
            head,
            pull,
            f"Opened pull request {pull.url or pull.number} for {canary_key}; waiting for a merge.",
        )


def _details(provider: PullRequestProvider, pull: PullRequest | None) -> PullRequest | None:
    """The full record (list answers may lack who merged)."""
    return provider.get(pull.number) if pull is not None else None


def _step_paths(repo: GitRepo, sha: str) -> list[str]:
    return repo.changed_paths(f"{sha}^", sha)


def _landed(repo: GitRepo, ours: str, tip: str) -> bool:
    """Our step's files have, on ``tip``, the same content as on our branch."""
    paths = _step_paths(repo, ours)
    return bool(paths) and repo.blob_ids(tip, paths) == repo.blob_ids(ours, paths)


def _same_step(repo: GitRepo, candidate: str, ours: str) -> bool:
    """The candidate changes the same files to the same content as the proposal already pushed.

    Only content counts: a message that differs (fresh metric values) updates the pull request's
    text, not the branch, so reviewers' CI does not restart for nothing.
    """
    paths = _step_paths(repo, candidate)
    if sorted(paths) != sorted(_step_paths(repo, ours)):
        return False
    return repo.blob_ids(candidate, paths) == repo.blob_ids(ours, paths)


def _title_and_body(message: str) -> tuple[str, str]:
    title, _, body = message.strip().partition("\n")
    return title.strip()[:255], body.strip()


def _error_text(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        parts = [str(data.get(key)) for key in ("message", "error", "errors") if data.get(key)]
        if parts:
            return "; ".join(parts)[:300]
    return str(data)[:300]


def _login(user: Any, field: str) -> str | None:
    if isinstance(user, dict) and user.get(field):
        return str(user[field])
    return None
