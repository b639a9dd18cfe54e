"""The working copy of the config repository: clone, fetch, reset, commit and push, never forced.

Owns :class:`GitRepo`, the one place that runs git (through gitpython's command runner). The
working copy is a cache (DESIGN D2): :meth:`GitRepo.reset_to_remote` makes it mirror
``origin/<branch>`` exactly, whatever a crash left behind, so nothing local ever matters. Commits
are never empty, carry the configured identity and optional GPG or SSH signature, and are pushed
without ``--force``; a rejected push is reported (:class:`PushResult`) for the caller to recompute
(D5, see :mod:`.pushing`). Every error raised here is scrubbed of credentials.
"""

from __future__ import annotations

import logging
import shutil
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Literal

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

    def _init_workdir(self) -> None:
        self.worktree.mkdir(parents=True, exist_ok=True)
        self._run("init", "--quiet")
        self._run("remote", "add", "origin", self.url)
        (self.worktree / ".git" / _MARKER).write_text(
            "This working copy belongs to gitops-canary, which resets it to the remote at will.\n",
            encoding="utf-8",
        )

    def _rebuild_workdir(self) -> None:
        log.warning("Rebuilding the local working copy %s from the remote.", self.worktree)
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
        if self.depth is not None:
            args.append(f"--depth={self.depth}")
        args += ["origin", f"+refs/heads/{branch}:{_tracking(branch)}"]
        result = self._run(*args, check=False, network=True)
        if result.status != 0:
            if "couldn't find remote ref" in result.stderr.lower():
                self._run("update-ref", "-d", _tracking(branch), check=False)
                return None
            raise GitError(
                f"git fetch of branch {branch!r} from {self.url} failed: {result.stderr}"
            )
        return self.rev_parse(_tracking(branch))

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
        return self.rev_parse("HEAD")

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
        sha = self.rev_parse("HEAD")
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
        self._run(
            "fetch",
            "--no-tags",
            "--quiet",
            "--unshallow",
            "origin",
            f"+refs/heads/{self.branch}:{_tracking(self.branch)}",
            network=True,
        )

    # -- running git ------------------------------------------------------------------------

    def _run(
        self,
        *args: str,
        check: bool = True,
        network: bool = False,
        config: list[str] | None = None,
        env: dict[str, str] | None = None,
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
            status, stdout, stderr = self._git.execute(
                command,
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


def _tracking(branch: str) -> str:
    return f"refs/remotes/origin/{branch}"


def _is_remote_failure(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _REMOTE_FAILURE_MARKERS)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text
