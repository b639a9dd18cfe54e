"""Writing one step to the watched branch when others write to it too (DESIGN D5).

Owns :func:`commit_and_push`: reset to the remote tip, let the caller produce the step from what
is there now, commit, push fast-forward only. When the push is rejected because someone pushed
first, it fetches, resets and calls ``produce`` again, so the step is recomputed on top of their
commit, never rebased over it and never forced. Attempts are bounded, with exponential backoff and
jitter, and writers are serialised per (remote, branch) within the process. With
:func:`batch_producer`, many steps (one commit each) go out in one push and are all recomputed
when it is rejected.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_canary.repo.gitrepo import GitError, GitRepo, StagedCommit

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
    fresh_tip: str | None = None,
) -> str | None:
    """Commit what ``produce`` writes on top of the remote tip and push it; the pushed sha.

    None when ``produce`` finds nothing to do or its files already match the tip. Raises
    :class:`PushConflictError` after ``attempts`` rejected pushes.

    ``produce`` may also commit on its own (see :func:`batch_producer`): whatever is committed
    on top of the tip is pushed, in one push. ``fresh_tip`` is the caller's word that the
    working copy is exactly that remote tip, untouched since it was fetched: the first
    attempt then starts from it without fetching and resetting again (a rejected push still
    fetches, resets and calls ``produce`` again).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    last_detail = ""
    with branch_lock(repo.remote_key):
        for attempt in range(1, attempts + 1):
            if attempt == 1 and fresh_tip is not None:
                tip = fresh_tip
            else:
                tip = repo.fetch()
                repo.reset_to_remote()
            outcome = produce(repo.worktree)
            sha = None if outcome is None else repo.commit(outcome[1], outcome[0])
            if sha is None:
                head = repo.head()
                if head == tip:
                    return None
                sha = head  # the producer committed its steps itself
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


# --------------------------------------------------------------------------- batches of steps


@dataclass
class BatchedStep:
    """One step of a batch: its producer and, after an attempt, its commit or its error."""

    produce: Produce
    sha: str | None = None
    error: Exception | None = None


def batch_producer(repo: GitRepo, steps: Sequence[BatchedStep]) -> Produce:
    """One :data:`Produce` for :func:`commit_and_push` that commits every step on its own.

    Each call (one per push attempt) runs the producers in order on the fresh tip, one commit
    per step, as if each had been committed right after it was written (see
    :meth:`GitRepo.commit_staged`), and returns None: :func:`commit_and_push` then pushes all
    the commits at once, and on a rejected push calls it again, so every step is recomputed
    on top of the other writer's commit. A producer that raises is recorded on its step, which
    is left out of later attempts; the others go on.
    """

    def produce(worktree: Path) -> None:
        staged: list[StagedCommit] = []
        owners: list[BatchedStep] = []

        def flush() -> None:
            for owner, sha in zip(owners, repo.commit_staged(staged), strict=True):
                owner.sha = sha
            staged.clear()
            owners.clear()

        for step in steps:
            if step.error is not None:
                continue
            step.sha = None
            try:
                outcome = step.produce(worktree)
                if outcome is None:
                    continue
                message, paths = outcome
                files = repo.snapshot(paths)
                if files is None:  # not a plain file: commit now, the slow way
                    flush()
                    step.sha = repo.commit(paths, message)
                    continue
            except Exception as error:  # one step's trouble never stops the others
                step.error = error
                continue
            staged.append(StagedCommit(message, files))
            owners.append(step)
        flush()

    return produce
