"""Helpers for the git adapter's tests: bare remotes and a "person" who pushes to them.

Everything runs the real git CLI against repositories in temporary directories.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PERSON_ENV = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.test",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.test",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def run_git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **PERSON_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout.strip()


def make_remote(root: Path, files: dict[str, str], branch: str = "main") -> Path:
    """A bare repository at ``root/remote.git`` whose ``branch`` holds ``files``."""
    remote = root / "remote.git"
    run_git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(remote), cwd=root)
    seed = root / "seed"
    run_git("init", "--quiet", f"--initial-branch={branch}", str(seed), cwd=root)
    for path, content in files.items():
        target = seed / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    run_git("add", "--all", cwd=seed)
    run_git("commit", "--quiet", "-m", "Initial commit", cwd=seed)
    run_git("push", "--quiet", str(remote), f"HEAD:refs/heads/{branch}", cwd=seed)
    return remote


def person_commit(
    remote: Path, scratch: Path, files: dict[str, str | None], message: str, branch: str = "main"
) -> str:
    """Clone ``branch``, write (or delete, for None) ``files``, commit and push; the new sha."""
    clone = scratch
    if not (clone / ".git").exists():
        run_git("clone", "--quiet", "--branch", branch, str(remote), str(clone), cwd=remote.parent)
    else:
        run_git("fetch", "--quiet", "origin", cwd=clone)
        run_git("reset", "--quiet", "--hard", f"origin/{branch}", cwd=clone)
    for path, content in files.items():
        target = clone / path
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    run_git("add", "--all", cwd=clone)
    run_git("commit", "--quiet", "-m", message, cwd=clone)
    run_git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=clone)
    return run_git("rev-parse", "HEAD", cwd=clone)


def remote_tip(remote: Path, branch: str = "main") -> str:
    return run_git("rev-parse", f"refs/heads/{branch}", cwd=remote)


def show(remote: Path, rev: str, path: str) -> str:
    return run_git("show", f"{rev}:{path}", cwd=remote)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    completed = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, descendant],
        cwd=repo,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return completed.returncode == 0
