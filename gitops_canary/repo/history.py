"""A canary's rollout history, read back from ``git log`` (DESIGN D7: git is the audit log).

Owns :func:`history`: the commits whose trailers say ``Canary: <ns>/<name>``, newest first, with
their ``Canary-Phase``, ``Canary-Weight``, ``Canary-Revision`` and ``Canary-Failed-Checks``
trailers, who wrote them and, for steps that arrived through a pull request, who merged them.
Trailers are parsed here by hand (the last paragraph of the message, ``Key: value`` lines), so any
repository copy works, including a shallow one (which simply shows less).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import git

_FIELD = "\x1f"
_RECORD = "\x1e"
_FORMAT = _FIELD.join(["%H", "%an", "%ae", "%cn", "%ce", "%cI", "%B"]) + _RECORD
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s?(.*)$")


class HistoryError(Exception):
    """The repository cannot be read; the message names it."""


@dataclass(frozen=True)
class Entry:
    sha: str
    #: When the step reached the branch (committer time; for a merge commit, the merge's).
    time: datetime
    phase: str | None
    weight: int | None
    revision: str | None
    failed_checks: int | None
    subject: str
    #: The message body without the subject and trailers (the analysis summary).
    summary: str
    author: str
    committer: str
    #: Who merged the step, when it arrived through a merge commit or a web squash/rebase.
    merged_by: str | None
    trailers: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat()
        return data


def history(
    repo_path: Path, canary_key: str, *, rev: str = "HEAD", limit: int | None = None
) -> list[Entry]:
    """Every step commit of ``canary_key`` reachable from ``rev``, newest first."""
    try:
        runner = git.Git(str(repo_path))
        runner.execute(["git", "rev-parse", "--git-dir"])
    except (git.GitCommandError, OSError):
        raise HistoryError(f"{repo_path} is not a git repository") from None
    args = [
        "git",
        "log",
        f"--format={_FORMAT}",
        "--fixed-strings",
        f"--grep=Canary: {canary_key}",
        rev,
    ]
    try:
        out = str(runner.execute(args, stdout_as_string=True, strip_newline_in_stdout=False))
    except git.GitCommandError as error:
        raise HistoryError(
            f"cannot read the history of {rev!r} in {repo_path}: {str(error.stderr).strip()}"
        ) from None
    entries: list[Entry] = []
    mainline: set[str] | None = None
    for raw in out.split(_RECORD):
        record = raw.strip("\n")
        if not record:
            continue
        sha, an, ae, cn, ce, c_time, message = record.split(_FIELD, 6)
        subject, summary, trailers = parse_message(message)
        if trailers.get("Canary") != canary_key:
            continue
        merged_by: str | None = f"{cn} <{ce}>" if (cn, ce) != (an, ae) else None
        when = datetime.fromisoformat(c_time)
        if mainline is None:
            mainline = _first_parent_chain(runner, rev)
        if sha not in mainline:
            merge = _merge_that_brought(runner, rev, sha)
            if merge is not None:
                merged_by, when = merge
        entries.append(
            Entry(
                sha=sha,
                time=when,
                phase=trailers.get("Canary-Phase"),
                weight=_int(trailers.get("Canary-Weight")),
                revision=trailers.get("Canary-Revision"),
                failed_checks=_int(trailers.get("Canary-Failed-Checks")),
                subject=subject,
                summary=summary,
                author=f"{an} <{ae}>",
                committer=f"{cn} <{ce}>",
                merged_by=merged_by,
                trailers=trailers,
            )
        )
        if limit is not None and len(entries) >= limit:
            break
    return entries


def parse_message(message: str) -> tuple[str, str, dict[str, str]]:
    """``(subject, body without trailers, trailers)`` of a commit message."""
    lines = message.strip("\n").splitlines()
    subject = lines[0].strip() if lines else ""
    paragraphs = "\n".join(lines[1:]).strip("\n").split("\n\n")
    trailers: dict[str, str] = {}
    last = paragraphs[-1].splitlines() if paragraphs else []
    parsed: list[tuple[str, str]] = []
    for line in last:
        if line[:1].isspace() and parsed:  # a folded continuation line
            key, value = parsed[-1]
            parsed[-1] = (key, f"{value} {line.strip()}")
            continue
        match = _TRAILER.match(line)
        if match is None:
            parsed = []
            break
        parsed.append((match.group(1), match.group(2).strip()))
    if parsed:
        trailers = dict(parsed)
        paragraphs = paragraphs[:-1]
    summary = "\n\n".join(p for p in paragraphs if p.strip()).strip()
    return subject, summary, trailers


def _first_parent_chain(runner: git.Git, rev: str) -> set[str]:
    out = str(runner.execute(["git", "rev-list", "--first-parent", rev], stdout_as_string=True))
    return set(out.split())


def _merge_that_brought(runner: git.Git, rev: str, sha: str) -> tuple[str, datetime] | None:
    """(merger, time) of the oldest first-parent merge of ``rev`` that contains ``sha``."""
    out = str(
        runner.execute(
            [
                "git",
                "rev-list",
                "--first-parent",
                "--merges",
                "--reverse",
                "--format=%H%x1f%an <%ae>%x1f%cI",
                "--ancestry-path",
                f"{sha}..{rev}",
            ],
            stdout_as_string=True,
        )
    )
    for line in out.splitlines():
        if line.startswith("commit "):
            continue
        _, merger, when = line.split(_FIELD)
        return merger, datetime.fromisoformat(when)
    return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip().rstrip("%"))
    except ValueError:
        return None
