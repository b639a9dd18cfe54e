"""Loopback emulators of the GitHub, GitLab and Gitea pull-request APIs.

Each answers the documented paths with the documented JSON shapes, keeps pull requests in memory,
reads head commits from a real bare repository, and records every request for assertions.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Pull:
    number: int
    head: str
    base: str
    title: str
    body: str
    head_sha: str | None
    state: str = "open"  # open | closed | merged
    merged_by: str | None = None


@dataclass
class Forge:
    kind: str  # github | gitlab | gitea
    token: str
    remote: Path | None
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    pulls: list[Pull] = field(default_factory=list)

    # -- what a person does in the web UI --
    def close(self, number: int) -> None:
        self._pull(number).state = "closed"

    def mark_merged(self, number: int, by: str) -> None:
        pull = self._pull(number)
        pull.state, pull.merged_by = "merged", by

    def _pull(self, number: int) -> Pull:
        return next(p for p in self.pulls if p.number == number)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def head_sha(self, branch: str) -> str | None:
        if self.remote is None:
            return "f" * 40
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.remote,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout.strip() or None

    # -- rendering in each provider's shape --
    def render(self, pull: Pull, single: bool) -> dict[str, Any]:
        if self.kind == "gitlab":
            return {
                "id": 1000 + pull.number,
                "iid": pull.number,
                "web_url": f"{self.url}/group/proj/-/merge_requests/{pull.number}",
                "state": {"open": "opened"}.get(pull.state, pull.state),
                "title": pull.title,
                "description": pull.body,
                "source_branch": pull.head,
                "target_branch": pull.base,
                "sha": pull.head_sha,
                "merge_user": {"username": pull.merged_by} if pull.merged_by else None,
            }
        data: dict[str, Any] = {
            "number": pull.number,
            "html_url": f"{self.url}/o/r/pull/{pull.number}",
            "state": "open" if pull.state == "open" else "closed",
            "title": pull.title,
            "body": pull.body,
            "head": {"ref": pull.head, "sha": pull.head_sha, "label": f"o:{pull.head}"},
            "base": {"ref": pull.base},
        }
        if self.kind == "github":
            data["merged_at"] = "2025-01-01T00:00:00Z" if pull.state == "merged" else None
            if single:
                data["merged"] = pull.state == "merged"
                data["merged_by"] = {"login": pull.merged_by} if pull.merged_by else None
        else:
            data["merged"] = pull.state == "merged"
            data["merged_by"] = {"login": pull.merged_by} if pull.merged_by else None
        return data


def _route(
    forge: Forge, method: str, path: str, query: dict[str, str], body: Any
) -> tuple[int, Any]:
    if forge.kind == "github":
        prefix = "/repos/o/r/pulls"
    elif forge.kind == "gitlab":
        prefix = "/api/v4/projects/group%2Fproj/merge_requests"
    else:
        prefix = "/api/v1/repos/o/r/pulls"
    if not path.startswith(prefix):
        return 404, {"message": "Not Found"}
    rest = path[len(prefix) :].strip("/")
    if not rest and method == "GET":
        return 200, [forge.render(p, single=False) for p in _list(forge, query)]
    if not rest and method == "POST":
        head = body.get("source_branch") or body.get("head")
        base = body.get("target_branch") or body.get("base")
        sha = forge.head_sha(head)
        if sha is None:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head"}]}
        if any(p.head == head and p.base == base and p.state == "open" for p in forge.pulls):
            return 422, {"message": "A pull request already exists"}
        pull = Pull(
            number=len(forge.pulls) + 1,
            head=head,
            base=base,
            title=body["title"],
            body=body.get("description", body.get("body", "")),
            head_sha=sha,
        )
        forge.pulls.append(pull)
        return 201, forge.render(pull, single=True)
    if rest.isdigit():
        pull = next((p for p in forge.pulls if p.number == int(rest)), None)
        if pull is None:
            return 404, {"message": "Not Found"}
        if method == "GET":
            return 200, forge.render(pull, single=True)
        if method in ("PATCH", "PUT"):
            pull.title = body.get("title", pull.title)
            pull.body = body.get("description", body.get("body", pull.body))
            pull.head_sha = forge.head_sha(pull.head)
            return 200, forge.render(pull, single=True)
    return 405, {"message": "Method Not Allowed"}


def _list(forge: Forge, query: dict[str, str]) -> list[Pull]:
    state = query.get("state", "all")
    pulls = list(reversed(forge.pulls))  # newest first
    if forge.kind == "github":
        if "head" in query:
            pulls = [p for p in pulls if f"o:{p.head}" == query["head"]]
        if "base" in query:
            pulls = [p for p in pulls if p.base == query["base"]]
        if state == "open":
            pulls = [p for p in pulls if p.state == "open"]
        elif state == "closed":
            pulls = [p for p in pulls if p.state != "open"]
    elif forge.kind == "gitlab":
        if "source_branch" in query:
            pulls = [p for p in pulls if p.head == query["source_branch"]]
        if "target_branch" in query:
            pulls = [p for p in pulls if p.base == query["target_branch"]]
        if state == "opened":
            pulls = [p for p in pulls if p.state == "open"]
        elif state in ("closed", "merged"):
            pulls = [p for p in pulls if p.state == state]
    else:  # Gitea cannot filter by branch; it pages
        if state == "open":
            pulls = [p for p in pulls if p.state == "open"]
        elif state == "closed":
            pulls = [p for p in pulls if p.state != "open"]
        limit, page = int(query.get("limit", 30)), int(query.get("page", 1))
        pulls = pulls[(page - 1) * limit : page * limit]
    return pulls


def _expected_auth(forge: Forge) -> tuple[str, str]:
    if forge.kind == "github":
        return "Authorization", f"Bearer {forge.token}"
    if forge.kind == "gitlab":
        return "PRIVATE-TOKEN", forge.token
    return "Authorization", f"token {forge.token}"


def _handler(forge: Forge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            forge.requests.append(
                Recorded(self.command, parts.path, query, dict(self.headers.items()), body)
            )
            header, value = _expected_auth(forge)
            if self.headers.get(header) != value:
                status, answer = 401, {"message": "Bad credentials"}
            else:
                status, answer = _route(forge, self.command, parts.path, query, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = _serve

    return Handler


@contextmanager
def serve_forge(kind: str, token: str, remote: Path | None = None) -> Iterator[Forge]:
    forge = Forge(kind=kind, token=token, remote=remote)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(forge))
    forge.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def api_url(forge: Forge) -> str:
    return {"github": forge.url, "gitlab": f"{forge.url}/api/v4", "gitea": f"{forge.url}/api/v1"}[
        forge.kind
    ]
