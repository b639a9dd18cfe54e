"""Writing one step to the watched branch when others write to it too (DESIGN D5).

Owns :func:`commit_and_push`: reset to the remote tip, let the caller produce the step from what
is there now, commit, push fast-forward only. When the push is rejected because someone pushed
first, it fetches, resets and calls ``produce`` again, so the step is recomputed on top of their
commit, never rebased over it and never forced. Attempts are bounded, with exponential backoff and
jitter, and writers are serialised per (remote, branch) within the process.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gitops_canary.repo.gitrepo import GitError, GitRepo

log = logging.getLogger(__name__)

#: ``produce(worktree)`` writes the step's files and returns (message, changed paths), or None.
Produce = Callable[[Path], tuple[str, list[str]] | None]

_locks_guard = threading.Lock()
_locks: dict[tuple[str, str], threading.Lock] = {}


class PushConflictError(GitError):
    """Every attempt lost the race to other writers; the message names the remote and branch."""


def branch_lock(remote_key: tuple[str, str]) -> threading.Lock:
    """The lock every writer to this (remote, branch) holds, within this process."""
    with _locks_guard:
        return _locks.setdefault(remote_key, threading.Lock())


def backoff_delay(
    attempt: int, backoff: tuple[float, float], jitter: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): doubling from the minimum,
    capped at the maximum, then scaled to 50-100 % so competing writers spread out."""
    low, high = backoff
    ceiling: float = min(high, low * 2.0 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * jitter())


def commit_and_push(
    repo: GitRepo,
    produce: Produce,
    *,
    attempts: int = 5,
    backoff: tuple[float, float] = (0.2, 5.0),
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> str | None:
    """Commit what ``produce`` writes on top of the remote tip and push it; the pushed sha.

    None when ``produce`` finds nothing to do or its files already match the tip. Raises
    :class:`PushConflictError` after ``attempts`` rejected pushes.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    last_detail = ""
    with branch_lock(repo.remote_key):
        for attempt in range(1, attempts + 1):
            tip = repo.fetch()
            repo.reset_to_remote()
            outcome = produce(repo.worktree)
            if outcome is None:
                return None
            message, paths = outcome
            sha = repo.commit(paths, message)
            if sha is None:
                return None
            result = repo.push()
            if result.ok:
                log.info("Pushed %s to %s on top of %s.", sha[:12], repo.branch, tip[:12])
                return sha
            last_detail = result.detail
            if attempt < attempts:
                delay = backoff_delay(attempt, backoff, jitter)
                log.info(
                    "Branch %s moved while pushing (attempt %d of %d); recomputing in %.2fs.",
                    repo.branch,
                    attempt,
                    attempts,
                    delay,
                )
                sleep(delay)
    raise PushConflictError(
        f"could not push to branch {repo.branch!r} of {repo.url}: other writers moved it before "
        f"each of {attempts} attempts (last answer: {last_detail.strip()[-300:]}). Nothing was "
        "forced; the step will be recomputed on the next run."
    )
