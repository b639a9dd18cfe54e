"""The working copy of the config repository: clone, fetch, reset, commit and push, never forced.

Owns :class:`GitRepo`, the one place that runs git (through gitpython's command runner). The
working copy is a cache (DESIGN D2): :meth:`GitRepo.reset_to_remote` makes it mirror
``origin/<branch>`` exactly, whatever a crash left behind, so nothing local ever matters. Commits
are never empty, carry the configured identity and optional GPG or SSH signature, and are pushed
without ``--force``; a rejected push is reported (:class:`PushResult`) for the caller to recompute
(D5, see :mod:`.pushing`). Every error raised here is scrubbed of credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import git

from gitops_canary.repo.credentials import GitCredentials, private_directory, split_url_credentials
from gitops_canary.repo.scrub import scrub

log = logging.getLogger(__name__)

#: Marks a directory as a working copy gitops-canary created, so it may rebuild it.
_MARKER = "gitops-canary-workdir"
#: Enough history for ancestry checks of recent steps; we never rebase, so we need no more.
DEFAULT_DEPTH = 50
#: Seconds before a git command is killed (a stalled network must not hang the loop).
DEFAULT_TIMEOUT = 300.0

# How git words "someone else moved the branch first" (git itself, GitHub, GitLab, Gitea).
_REJECTION_MARKERS = (
    "non-fast-forward",
    "fetch first",
    "cannot lock ref",
    "incorrect old value provided",
    "failed to update ref",
    "stale info",
)
# Fetch failures that rebuilding the local clone cannot fix.
_REMOTE_FAILURE_MARKERS = (
    "could not resolve host",
    "connection refused",
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied",
    "host key verification failed",
    "does not appear to be a git repository",
    "repository not found",
    "couldn't find remote ref",
    "timed out",
    "http 40",
    "http 50",
)


class GitError(Exception):
    """A git operation failed. The message is scrubbed and says what was being done."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


DEFAULT_IDENTITY = Identity("gitops-canary", "gitops-canary@users.noreply.localhost")


@dataclass(frozen=True)
class Signing:
    """Sign commits with GPG (``key`` is a key id) or SSH (``key`` is a key file path)."""

    kind: Literal["gpg", "ssh"]
    key: str
    #: ``gpg.program`` or ``gpg.ssh.program`` when not the default ``gpg`` / ``ssh-keygen``.
    program: str | None = None


@dataclass(frozen=True)
class PushResult:
    ok: bool
    #: True when the remote refused because the branch moved: fetch, recompute, retry.
    rejected: bool
    sha: str
    #: git's own words (scrubbed), for the log and the final error.
    detail: str = ""


@dataclass(frozen=True)
class FileState:
    """One path as a step left it: its bytes and git mode, or ``content=None`` if deleted."""

    path: str
    content: bytes | None
    mode: str = "100644"


@dataclass(frozen=True)
class StagedCommit:
    """One step to commit later: its message and the state of every path it changed."""

    message: str
    files: tuple[FileState, ...]


@dataclass(frozen=True)
class _Completed:
    status: int
    stdout: str
    stderr: str


class GitRepo:
    """A working copy of one branch of one remote. Use :meth:`open_or_clone` to get one.

    One process owns a working copy; within the process, :mod:`.pushing` serialises writers per
    remote and branch.
    """

    def __init__(
        self,
        workdir: Path,
        url: str,
        branch: str,
        credentials: GitCredentials,
        *,
        depth: int | None = DEFAULT_DEPTH,
        author: Identity = DEFAULT_IDENTITY,
        committer: Identity | None = None,
        signing: Signing | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.worktree = workdir
        self.url = url
        self.branch = branch
        self.depth = depth
        self.author = author
        self.committer = committer or author
        self.signing = signing
        self.timeout = timeout
        self._credentials = credentials
        self._git = git.Git(str(workdir))
        #: True once this process fetched the full history: fetching with --depth again would
        #: cut it back, and the next history query would fetch it all again.
        self._complete = False
        #: :meth:`last_commits_touching` answers, valid at commit ``_touched_at``.
        self._touched_at: str | None = None
        self._touched: dict[str, str | None] = {}
        #: HEAD's commit when known without asking git, and the watched branch's fetched tip.
        self._head: str | None = None
        self._fetched: str | None = None
        #: Paths whose index entries lag behind HEAD after :meth:`commit_staged`.
        self._stale_index: list[str] = []
        self._private_dir = private_directory()
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._private_dir, True)

    # -- setting up -------------------------------------------------------------------------

    @classmethod
    def open_or_clone(
        cls,
        url: str,
        branch: str,
        workdir: Path,
        credentials: GitCredentials | None = None,
        *,
        depth: int | None = DEFAULT_DEPTH,
        author: Identity = DEFAULT_IDENTITY,
        committer: Identity | None = None,
        signing: Signing | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> GitRepo:
        """A working copy of ``branch`` of ``url`` in ``workdir``: reused if there, else cloned.

        Credentials in the URL are moved out of it (used through askpass, never stored).
        """
        credentials = credentials or GitCredentials()
        clean_url, user, password = split_url_credentials(url)
        if password:
            log.warning(
                "The repository URL %s carries a password or token; gitops-canary keeps it out of "
                "git's config, but prefer a token from an environment variable or a file.",
                clean_url,
            )
            credentials = credentials.with_url_password(user or "", password)
        workdir = workdir.resolve()
        repo = cls(
            workdir,
            clean_url,
            branch,
            credentials,
            depth=depth,
            author=author,
            committer=committer,
            signing=signing,
            timeout=timeout,
        )
        repo._prepare_workdir()
        repo.fetch()
        repo.reset_to_remote()
        return repo

    def close(self) -> None:
        """Remove the private directory that holds the askpass script."""
        self._cleanup()

    @property
    def remote_key(self) -> tuple[str, str]:
        """What writers serialise on: the remote and the branch."""
        return (self.url, self.branch)

    def _prepare_workdir(self) -> None:
        git_dir = self.worktree / ".git"
        if git_dir.is_dir() and not (git_dir / _MARKER).exists() and self._interrupted_init():
            # Killed during our own first clone (between 'git init' and writing the marker):
            # nothing is in it but an empty repository, so start over.
            log.warning("Removing the unfinished first clone in %s.", self.worktree)
            shutil.rmtree(git_dir)
        if git_dir.is_dir():
            if not (git_dir / _MARKER).exists():
                raise GitError(
                    f"{self.worktree} is a git working copy that gitops-canary did not create; "
                    "give gitops-canary a directory of its own (it resets it at will)"
                )
            current = self._run("config", "--get", "remote.origin.url", check=False).stdout
            if current.strip() != self.url:
                self._run("remote", "set-url", "origin", self.url)
            return
        if self.worktree.exists() and any(self.worktree.iterdir()):
            raise GitError(
                f"{self.worktree} is not empty and not a working copy gitops-canary created; "
                "give gitops-canary an empty or missing directory of its own"
            )
        self._init_workdir()

    def _interrupted_init(self) -> bool:
        """A ``.git`` with no commit, nothing else in the directory, and no remote or ours."""
        if any(p.name != ".git" for p in self.worktree.iterdir()):
            return False
        if self._run("rev-parse", "--verify", "--quiet", "HEAD", check=False).status == 0:
            return False
        remote = self._run("config", "--get", "remote.origin.url", check=False).stdout.strip()
        return remote in ("", self.url)

    def _init_workdir(self) -> None:
        self._head = self._fetched = None
        self._stale_index = []
        self.worktree.mkdir(parents=True, exist_ok=True)
        self._run("init", "--quiet")
        self._run("remote", "add", "origin", self.url)
        (self.worktree / ".git" / _MARKER).write_text(
            "This working copy belongs to gitops-canary, which resets it to the remote at will.\n",
            encoding="utf-8",
        )

    def _rebuild_workdir(self) -> None:
        log.warning("Rebuilding the local working copy %s from the remote.", self.worktree)
        self._complete = False
        self._touched_at, self._touched = None, {}
        shutil.rmtree(self.worktree / ".git")
        for entry in self.worktree.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self._init_workdir()

    # -- reading the remote -----------------------------------------------------------------

    def fetch(self) -> str:
        """Fetch the watched branch; return its tip on the remote.

        A remote whose history was rewritten is handled (the tracking ref is force-updated); a
        local clone git cannot fetch into is rebuilt once.
        """
        try:
            sha = self.fetch_branch(self.branch)
        except GitError as error:
            if _is_remote_failure(str(error)):
                raise
            log.warning(
                "Fetch into %s failed (%s); rebuilding the working copy.", self.worktree, error
            )
            self._rebuild_workdir()
            sha = self.fetch_branch(self.branch)
        if sha is None:
            raise GitError(f"branch {self.branch!r} does not exist on {self.url}")
        return sha

    def fetch_branch(self, branch: str) -> str | None:
        """Fetch ``branch`` into ``refs/remotes/origin/<branch>``; None if the remote lacks it."""
        args = ["fetch", "--no-tags", "--quiet"]
        if self.depth is not None and not self._complete:
            args.append(f"--depth={self.depth}")
        args += ["origin", f"+refs/heads/{branch}:{_tracking(branch)}"]
        result = self._run(*args, check=False, network=True)
        if result.status != 0:
            if "couldn't find remote ref" in result.stderr.lower():
                self._run("update-ref", "-d", _tracking(branch), check=False)
                if branch == self.branch:
                    self._fetched = None
                return None
            raise GitError(
                f"git fetch of branch {branch!r} from {self.url} failed: {result.stderr}"
            )
        if self.depth is not None and not self._complete and not self._is_shallow():
            self._complete = True  # the depth reached the first commit: the history is all here
        tip = self.rev_parse(_tracking(branch))
        if branch == self.branch:
            self._fetched = tip
        return tip

    def remote_tip(self) -> str:
        """The watched branch's tip as of the last fetch."""
        return self.rev_parse(_tracking(self.branch))

    def rev_parse(self, rev: str) -> str:
        return self._run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").stdout.strip()

    # -- the working copy -------------------------------------------------------------------

    def reset_to_remote(self) -> None:
        """Make the working copy and local branch exactly ``origin/<branch>`` as last fetched.

        Cleans what a crash can leave: stale lock files, uncommitted or untracked files, an
        unpushed local commit, a broken index.
        """
        self._remove_stale_locks()
        target = _tracking(self.branch)
        checkout = self._run(
            "checkout", "--quiet", "--force", "-B", self.branch, target, check=False
        )
        if checkout.status != 0:
            # A truncated index from a crash; git rebuilds it from HEAD.
            (self.worktree / ".git" / "index").unlink(missing_ok=True)
            self._run("checkout", "--quiet", "--force", "-B", self.branch, target)
        self._run("reset", "--quiet", "--hard", target)
        self._run("clean", "-ffdxq")
        self._head, self._stale_index = self._fetched, []

    def _remove_stale_locks(self) -> None:
        # Only this process uses the working copy, so any lock is a leftover from a crash.
        git_dir = self.worktree / ".git"
        locks = [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]
        for lock in locks:
            log.info("Removing stale git lock %s", lock)
            lock.unlink(missing_ok=True)

    def commit(
        self,
        paths_changed: list[str],
        message: str,
        *,
        author: Identity | None = None,
        committer: Identity | None = None,
        signing: Signing | None = None,
    ) -> str | None:
        """Commit ``paths_changed`` (relative to the worktree); None if the tree did not change."""
        author = author or self.author
        committer = committer or self.committer
        signing = signing or self.signing
        self._sync_index()
        paths = [self._checked_path(path) for path in paths_changed]
        if not paths:
            return None
        tracked = set(self._run("ls-files", "-z", "--", *paths).stdout.split("\0"))
        present = [p for p in paths if (self.worktree / p).exists() or p in tracked]
        if present:
            self._run("add", "--all", "--", *present)
        if self._run("diff", "--cached", "--quiet", check=False).status == 0:
            return None
        message_file = self.worktree / ".git" / "GITOPS_CANARY_COMMIT_MSG"
        message_file.write_text(scrub(message).rstrip("\n") + "\n", encoding="utf-8")
        config = [f"user.name={committer.name}", f"user.email={committer.email}"]
        args = [
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=whitespace",
            f"--file={message_file}",
        ]
        if signing is None:
            config.append("commit.gpgSign=false")
        elif signing.kind == "ssh":
            config += ["gpg.format=ssh", f"user.signingKey={signing.key}"]
            if signing.program:
                config.append(f"gpg.ssh.program={signing.program}")
            args.append("--gpg-sign")
        else:
            config.append("gpg.format=openpgp")
            if signing.program:
                config.append(f"gpg.program={signing.program}")
            args.append(f"--gpg-sign={signing.key}")
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
        }
        result = self._run(*args, config=config, env=env, check=False)
        message_file.unlink(missing_ok=True)
        if result.status != 0:
            raise GitError(
                f"git commit in {self.worktree} failed: {result.stderr or result.stdout}"
            )
        self._head = self.rev_parse("HEAD")
        return self._head

    def head(self) -> str:
        """HEAD's commit (remembered while only this object moves it)."""
        if self._head is None:
            self._head = self.rev_parse("HEAD")
        return self._head

    def _sync_index(self) -> None:
        """Bring the index entries :meth:`commit_staged` left behind up to HEAD."""
        if self._stale_index:
            self._run(
                "reset", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul", "HEAD",
                stdin="\0".join(self._stale_index).encode(),
            )  # fmt: skip
            self._stale_index = []

    def snapshot(self, paths_changed: list[str]) -> tuple[FileState, ...] | None:
        """What ``paths_changed`` hold in the working copy now, to commit later with
        :meth:`commit_staged`; None when one is neither a file, a symlink nor absent (commit
        that step with :meth:`commit` right away instead)."""
        states: list[FileState] = []
        for path in dict.fromkeys(self._checked_path(p) for p in paths_changed):
            where = self.worktree / path
            try:
                info = where.lstat()
            except FileNotFoundError:
                states.append(FileState(path, None))
                continue
            if stat.S_ISLNK(info.st_mode):
                states.append(FileState(path, os.readlink(where).encode(), "120000"))
            elif stat.S_ISREG(info.st_mode):
                mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
                states.append(FileState(path, where.read_bytes(), mode))
            else:
                return None
        return tuple(states)

    def commit_staged(self, commits: list[StagedCommit]) -> list[str | None]:
        """Commit each of ``commits`` on top of HEAD, in order, one commit each; their shas.

        The result is what :meth:`commit` of each step right after it was written would have
        made (None for a step that changed nothing), but the commits are written by one
        ``git fast-import`` instead of several git commands per step. When git would transform
        the files (attributes, ``core.autocrlf``), sign the commits or run commit hooks, each
        step is written back and committed with :meth:`commit` instead. HEAD and the working
        copy hold the last step afterwards; the index entries of the paths lag until the next
        method that uses the index (one index write per batch, not per step).
        """
        if not commits:
            return []
        paths = sorted({f.path for c in commits for f in c.files})
        branch = self._head_branch()
        if branch is None or not self._can_import(commits, paths):
            return self._commit_one_by_one(commits)
        head = self.head()
        tree = self._tree_entries(head, paths)
        if tree is None:
            return self._commit_one_by_one(commits)
        stream, marks = self._import_stream(commits, branch, head, tree)
        if not marks:
            return [None] * len(commits)
        marks_file = self._private_dir / "marks"
        # fast-import moves the branch HEAD is on, fast-forward only.
        self._run(
            "fast-import", "--quiet", "--date-format=raw", f"--export-marks={marks_file}",
            stdin=stream,
        )  # fmt: skip
        shas = dict(line.split() for line in marks_file.read_text(encoding="utf-8").splitlines())
        marks_file.unlink()
        self._head = shas[f":{max(marks.values())}"]
        # The index still holds the old tip for these paths (the files already hold the new);
        # it is brought up to date before anything reads it.
        self._stale_index.extend(paths)
        return [shas[f":{marks[i]}"] if i in marks else None for i in range(len(commits))]

    def _head_branch(self) -> str | None:
        """The branch ref HEAD points to (``refs/heads/...``); None when detached."""
        try:
            text = (self.worktree / ".git" / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        ref = text.removeprefix("ref: ")
        return ref if ref != text and ref.startswith("refs/heads/") else None

    def _can_import(self, commits: list[StagedCommit], paths: list[str]) -> bool:
        """Whether ``git fast-import`` makes exactly what ``git add`` and ``git commit`` would."""
        if self.signing is not None or any(_stripspace(scrub(c.message)) == "" for c in commits):
            return False
        for who in (self.author, self.committer):
            if who.name != who.name.strip(_IDENT_CRUD) or who.email != who.email.strip(_IDENT_CRUD):
                return False
            if any(char in who.name + who.email for char in "<>\n"):
                return False
        if any("\n" in p or p.startswith('"') for p in paths):
            return False
        hooks = self.worktree / ".git" / "hooks"
        if any((hooks / name).exists() for name in ("prepare-commit-msg", "post-commit")):
            return False
        settings = self._run(
            "config", "--get-regexp",
            r"^(core\.(autocrlf|filemode|symlinks|hookspath)|i18n\.commitencoding)$",
            check=False,
        ).stdout  # fmt: skip
        for line in settings.splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lower() not in _FAST_IMPORT_SETTINGS.get(key, ()):
                return False
        attributes = self._run(
            "check-attr", "-z", "--stdin", *_CONVERSION_ATTRIBUTES, stdin="\0".join(paths).encode()
        ).stdout.split("\0")
        # -z output: path, attribute, value, ... for each path and attribute asked about.
        return all(value == "unspecified" for value in attributes[2::3])

    def _tree_entries(self, rev: str, paths: list[str]) -> dict[str, tuple[str, str]] | None:
        """path -> (mode, blob id) at ``rev`` for those of ``paths`` that are files there;
        None when one is a submodule."""
        # Many paths would not fit on a command line: then list the whole tree.
        selection = ["--", *paths] if len(paths) <= 256 else []
        out = self._run("ls-tree", "-r", "-z", "--full-tree", rev, *selection).stdout
        wanted = set(paths)
        entries: dict[str, tuple[str, str]] = {}
        for entry in filter(None, out.split("\0")):
            meta, _, path = entry.partition("\t")
            if path in wanted:
                mode, kind, blob = meta.split()
                if kind != "blob":
                    return None
                entries[path] = (mode, blob)
        return entries

    def _import_stream(
        self,
        commits: list[StagedCommit],
        branch: str,
        head: str,
        tree: dict[str, tuple[str, str]],
    ) -> tuple[bytes, dict[int, int]]:
        """The fast-import input and, for each commit that changes something, its mark."""
        stamp = _raw_time()
        author = f"{self.author.name} <{self.author.email}> {stamp}"
        committer = f"{self.committer.name} <{self.committer.email}> {stamp}"
        chunks: list[bytes] = []
        marks: dict[int, int] = {}
        parent = head
        for position, step in enumerate(commits):
            lines: list[bytes] = []
            for state in step.files:
                before = tree.get(state.path)
                if state.content is None:
                    if before is not None:
                        lines.append(f"D {state.path}\n".encode())
                        del tree[state.path]
                    continue
                after = (state.mode, _blob_id(state.content))
                if after == before:
                    continue
                tree[state.path] = after
                lines.append(f"M {state.mode} inline {state.path}\n".encode())
                lines.append(_data(state.content))
            if not lines:
                continue  # like commit(): nothing changed, no commit
            mark = len(marks) + 1
            marks[position] = mark
            message = _stripspace(scrub(step.message).rstrip("\n") + "\n")
            chunks.append(
                f"commit {branch}\nmark :{mark}\nauthor {author}\ncommitter {committer}\n".encode()
            )
            chunks.append(_data(message.encode("utf-8")))
            chunks.append(f"from {parent}\n".encode())
            chunks.extend(lines)
            chunks.append(b"\n")
            parent = f":{mark}"
        chunks.append(b"done\n")
        return b"".join(chunks), marks

    def _commit_one_by_one(self, commits: list[StagedCommit]) -> list[str | None]:
        shas: list[str | None] = []
        for step in commits:
            for state in step.files:
                where = self.worktree / state.path
                if state.content is None or state.mode == "120000":
                    where.unlink(missing_ok=True)
                if state.content is None:
                    continue
                if state.mode == "120000":
                    where.symlink_to(state.content.decode())
                else:
                    where.write_bytes(state.content)
            shas.append(self.commit([f.path for f in step.files], step.message))
        return shas

    def _checked_path(self, path: str) -> str:
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise GitError(f"refusing to commit {path!r}: paths must be relative to the repository")
        return relative.as_posix()

    # -- pushing ----------------------------------------------------------------------------

    def push(self) -> PushResult:
        """Push the local branch to the watched branch, fast-forward only (never ``--force``)."""
        return self._push(f"HEAD:refs/heads/{self.branch}", self.branch, [])

    def push_own_branch(self, branch: str, expected_sha: str | None) -> PushResult:
        """Replace ``branch`` (a branch gitops-canary owns, e.g. a pull-request head) with HEAD.

        Forced, but only over ``expected_sha`` (what we last saw; None: it must not exist), and
        never onto the watched branch.
        """
        if branch == self.branch:
            raise GitError(f"refusing to force-push {branch!r}: it is the watched branch")
        lease = f"--force-with-lease=refs/heads/{branch}:{expected_sha or ''}"
        return self._push(f"HEAD:refs/heads/{branch}", branch, [lease])

    def delete_own_branch(self, branch: str) -> None:
        if branch == self.branch:
            raise GitError(f"refusing to delete {branch!r}: it is the watched branch")
        self._run("push", "--quiet", "origin", f":refs/heads/{branch}", network=True)

    def _push(self, refspec: str, branch: str, options: list[str]) -> PushResult:
        sha = self.head()
        if branch == self.branch:
            self._fetched = None  # a push moves the tracking ref too
        result = self._run(
            "push", "--porcelain", *options, "origin", refspec, check=False, network=True
        )
        detail = scrub(f"{result.stdout}\n{result.stderr}".strip())
        if result.status == 0:
            return PushResult(ok=True, rejected=False, sha=sha, detail=detail)
        if any(marker in detail.lower() for marker in _REJECTION_MARKERS):
            log.info("Push of %s to %s was rejected: %s", sha[:12], branch, _last_line(detail))
            return PushResult(ok=False, rejected=True, sha=sha, detail=detail)
        raise GitError(
            f"git push of {sha[:12]} to branch {branch!r} on {self.url} failed: {detail}"
        )

    # -- history ----------------------------------------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if ``ancestor`` is ``descendant`` or one of its ancestors."""
        for deepened in (False, True):
            result = self._run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
            if result.status in (0, 1):
                if result.status == 1 and not deepened and self._is_shallow():
                    # The answer may lie beyond the shallow boundary.
                    self._unshallow()
                    continue
                return result.status == 0
            if deepened or not self._is_shallow():
                break
            self._unshallow()
        raise GitError(
            f"cannot compare commits {ancestor[:12]} and {descendant[:12]}: {result.stderr}"
        )

    def last_commit_touching(self, paths: list[str], rev: str | None = None) -> str | None:
        """The newest commit on ``rev`` (default: the fetched remote tip) that changed ``paths``."""
        rev = rev or _tracking(self.branch)
        checked = [self._checked_path(p) for p in paths]
        for _ in range(2):
            found = self._run("log", "-1", "--format=%H", rev, "--", *checked).stdout.strip()
            # A shallow clone's boundary commit looks as if it created every file; look deeper.
            if self._is_shallow() and (not found or found in self._shallow_boundary()):
                self._unshallow()
                continue
            return found or None
        return found or None

    def last_commits_touching(self, paths: Sequence[str], rev: str) -> dict[str, str | None]:
        """:meth:`last_commit_touching` of each of ``paths`` separately, at commit ``rev``.

        One ``git log`` for all paths instead of one per path, and the answers are kept: when
        ``rev`` descends from the commit of the previous call, only the commits added since are
        read, so a tick in which the branch did not move runs no git at all. Histories with
        merges are answered path by path, exactly as :meth:`last_commit_touching` does.
        """
        tip = rev if _FULL_SHA.fullmatch(rev) else self.rev_parse(rev)
        known = self._touched  # keys were checked when they were added
        wanted = list(dict.fromkeys(p if p in known else self._checked_path(p) for p in paths))
        if self._touched_at != tip:
            self._touched = self._touched_since(self._touched_at, tip)
            self._touched_at = tip
        missing = [p for p in wanted if p not in self._touched]
        if missing:
            self._touched.update(self._touched_in_history(missing, tip))
        return {p: self._touched[p] for p in wanted}

    def _touched_since(self, base: str | None, tip: str) -> dict[str, str | None]:
        """The kept answers moved from ``base`` to ``tip``; empty when they cannot be."""
        known = self._touched
        if base is None or not known:
            return {}
        try:
            if not self.is_ancestor(base, tip):
                return {}  # history was rewritten: start again
        except GitError:
            return {}
        commits = self._log_names(f"{base}..{tip}", list(known))
        boundary = self._boundary()
        if commits is None or any(sha in boundary for sha, _ in commits):
            return {}
        updated = dict(known)
        for path, sha in _newest_per_path(commits, list(known)).items():
            updated[path] = sha
        return updated

    def _touched_in_history(self, paths: list[str], tip: str) -> dict[str, str | None]:
        for _ in range(2):
            commits = self._log_names(tip, paths)
            if commits is None:  # merges: let git simplify history per path, as it always did
                return {p: self.last_commit_touching([p], tip) for p in paths}
            found: dict[str, str | None] = dict.fromkeys(paths)
            found.update(_newest_per_path(commits, paths))
            boundary = self._boundary()
            if boundary and any(sha is None or sha in boundary for sha in found.values()):
                # A shallow clone's boundary commit looks as if it created every file.
                self._unshallow()
                continue
            return found
        return found

    def _log_names(self, revisions: str, paths: list[str]) -> list[tuple[str, list[str]]] | None:
        """(commit, changed paths) newest first for ``git log revisions -- paths``; None when a
        merge commit is among them."""
        out = self._run(
            "log", "--format=%x01%H %P", "--name-only", "--no-renames", "-z", revisions,
            "--", *paths,
        ).stdout  # fmt: skip
        # -z output: "\x01<sha> <parents>\0" then "\n<name>\0<name>\0..." per commit.
        commits: list[tuple[str, list[str]]] = []
        for token in out.split("\0"):
            if token.startswith("\x01"):
                ids = token[1:].split()
                if len(ids) > 2:
                    return None
                commits.append((ids[0], []))
            elif token and commits:
                commits[-1][1].append(token.removeprefix("\n"))
        return commits

    def _boundary(self) -> set[str]:
        return self._shallow_boundary() if self._is_shallow() else set()

    def commit_time(self, sha: str) -> datetime:
        """When ``sha`` was committed (timezone-aware)."""
        result = self._run("show", "-s", "--format=%cI", sha, check=False)
        if result.status != 0 and self._is_shallow():
            self._unshallow()
            result = self._run("show", "-s", "--format=%cI", sha, check=False)
        if result.status != 0:
            raise GitError(f"unknown commit {sha!r} in {self.url}: {result.stderr}")
        return datetime.fromisoformat(result.stdout.strip())

    def changed_paths(self, base: str, head: str) -> list[str]:
        out = self._run("diff", "--name-only", "--no-renames", "-z", base, head).stdout
        return [p for p in out.split("\0") if p]

    def blob_ids(self, rev: str, paths: list[str]) -> dict[str, str | None]:
        """The blob id of each path at ``rev``; None where the path does not exist there."""
        found: dict[str, str | None] = dict.fromkeys(paths)
        if paths:
            out = self._run("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths).stdout
            for entry in filter(None, out.split("\0")):
                meta, _, path = entry.partition("\t")
                if path in found:
                    found[path] = meta.split()[2]
        return found

    def _is_shallow(self) -> bool:
        return (self.worktree / ".git" / "shallow").exists()

    def _shallow_boundary(self) -> set[str]:
        return set((self.worktree / ".git" / "shallow").read_text(encoding="utf-8").split())

    def _unshallow(self) -> None:
        log.info("Fetching the full history of %s into %s.", self.branch, self.worktree)
        self._fetched = None  # the remote may have moved: the tracking ref is fetched again
        self._run(
            "fetch",
            "--no-tags",
            "--quiet",
            "--unshallow",
            "origin",
            f"+refs/heads/{self.branch}:{_tracking(self.branch)}",
            network=True,
        )
        self._complete = True

    # -- running git ------------------------------------------------------------------------

    def _run(
        self,
        *args: str,
        check: bool = True,
        network: bool = False,
        config: list[str] | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> _Completed:
        # credential.helper= empties the helper list: a user's "store" helper must never
        # save our token. Literal pathspecs: file names are never globs.
        command = [
            "git",
            "--literal-pathspecs",
            "-c",
            "credential.helper=",
            "-c",
            "gc.autoDetach=false",
        ]
        for item in config or []:
            command += ["-c", item]
        command += list(args)
        full_env = dict(env or {})
        if network:
            full_env.update(self._credentials.git_environment(self._private_dir))
        else:
            full_env["GIT_TERMINAL_PROMPT"] = "0"
        try:
            with _input(stdin, self._private_dir) as istream:
                status, stdout, stderr = self._git.execute(
                    command,
                    istream=istream,
                    with_extended_output=True,
                    with_exceptions=False,
                    env=full_env,
                    kill_after_timeout=self.timeout,
                    stdout_as_string=True,
                )
        except (git.GitCommandError, OSError) as error:
            raise GitError(f"running git {args[0]} in {self.worktree} failed: {error}") from None
        completed = _Completed(int(status), str(stdout), str(stderr))
        if check and completed.status != 0:
            raise GitError(
                f"git {args[0]} in {self.worktree} failed (exit {completed.status}): "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )
        return completed


_FULL_SHA = re.compile(r"[0-9a-f]{40}")
#: Attributes under which ``git add`` would not store a file's bytes as they are.
_CONVERSION_ATTRIBUTES = ("text", "eol", "crlf", "filter", "ident", "working-tree-encoding")
#: What git strips from both ends of a name or email (ident.c), so the fast path never differs.
_IDENT_CRUD = " .,:;<>\"\\'\t\n"
#: Values of settings under which fast-import and ``git add``/``commit`` agree (any other value,
#: or another setting matched, e.g. ``core.hooksPath``, means they may not).
_GIT_TRUE = ("true", "yes", "on", "1", "")
_FAST_IMPORT_SETTINGS = {
    "core.autocrlf": ("false", "no", "off", "0"),
    "core.filemode": _GIT_TRUE,
    "core.symlinks": _GIT_TRUE,
}


@contextlib.contextmanager
def _input(data: bytes | None, directory: Path) -> Iterator[BinaryIO | None]:
    """A file holding ``data`` to give a git command as its standard input."""
    if data is None:
        yield None
        return
    with tempfile.TemporaryFile(dir=directory) as handle:
        handle.write(data)
        handle.seek(0)
        yield handle


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _data(content: bytes) -> bytes:
    return b"data %d\n" % len(content) + content + b"\n"


def _raw_time() -> str:
    """Now as git's raw date (``<epoch> <+hhmm>``), with the local offset as git uses it."""
    now = time.time()
    offset = time.localtime(now).tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    return f"{int(now)} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"


def _stripspace(text: str) -> str:
    """``git commit --cleanup=whitespace``: trailing blanks and surplus empty lines removed."""
    lines: list[str] = []
    empties = 0
    for raw in text.split("\n"):
        line = raw.rstrip(" \t\n\v\f\r")  # C isspace(), as git uses
        if not line:
            empties += 1
            continue
        if empties and lines:
            lines.append("")
        empties = 0
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def _newest_per_path(commits: list[tuple[str, list[str]]], paths: list[str]) -> dict[str, str]:
    """For each path (a file or directory), the first commit in ``commits`` that changed it."""
    wanted = set(paths)
    newest: dict[str, str] = {}
    for sha, names in commits:
        if "." in wanted:
            newest.setdefault(".", sha)
        for name in names:
            # The name itself and each of its parent directories may be a wanted path.
            parts = name.split("/")
            for end in range(len(parts), 0, -1):
                candidate = "/".join(parts[:end])
                if candidate in wanted:
                    newest.setdefault(candidate, sha)
    return newest


def _tracking(branch: str) -> str:
    return f"refs/remotes/origin/{branch}"


def _is_remote_failure(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _REMOTE_FAILURE_MARKERS)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text
