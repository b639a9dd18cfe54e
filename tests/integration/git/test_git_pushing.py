"""commit_and_push (DESIGN D5): recompute on conflict, never force, bounded retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from git_helpers import person_commit, remote_tip, run_git, show

from gitops_canary.repo.gitrepo import GitRepo
from gitops_canary.repo.pushing import PushConflictError, backoff_delay, commit_and_push

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STATUS = "apps/podinfo/gitops-canary/podinfo/status.yaml"


def write_status(worktree: Path, text: str) -> None:
    target = worktree / STATUS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_recomputes_on_top_of_a_commit_pushed_meanwhile(remote: Path, tmp_path: Path) -> None:
    run_git("config", "receive.denyNonFastForwards", "true", cwd=remote)
    repo = GitRepo.open_or_clone(str(remote), "main", tmp_path / "work")
    seen_tips: list[str] = []
    delays: list[float] = []

    def produce(worktree: Path) -> tuple[str, list[str]]:
        # The decision depends on what is in the repo now: it counts the person's files.
        seen_tips.append(run_git("rev-parse", "HEAD", cwd=worktree))
        if len(seen_tips) == 1:  # someone pushes while we are deciding
            person_commit(remote, tmp_path / "person", {"apps/podinfo/hpa.yaml": "x\n"}, "add hpa")
        has_hpa = (worktree / "apps/podinfo/hpa.yaml").exists()
        write_status(worktree, f"phase: Progressing\nhpa: {has_hpa}\n")
        return "Advance podinfo.test canary weight 10", [STATUS]

    sha = commit_and_push(repo, produce, sleep=delays.append, jitter=lambda: 1.0)

    assert sha == remote_tip(remote)
    assert len(seen_tips) == 2
    person_sha = run_git("rev-parse", f"{sha}^", cwd=remote)
    assert seen_tips[1] == person_sha, "the second attempt must start from the new tip"
    assert run_git("log", "-1", "--format=%s", person_sha, cwd=remote) == "add hpa"
    assert show(remote, "main", STATUS) == "phase: Progressing\nhpa: True"
    assert delays == [0.2]


def test_nothing_to_do_makes_no_commit(remote: Path, tmp_path: Path) -> None:
    repo = GitRepo.open_or_clone(str(remote), "main", tmp_path / "work")
    before = remote_tip(remote)
    assert commit_and_push(repo, lambda worktree: None) is None

    def same_bytes(worktree: Path) -> tuple[str, list[str]]:
        (worktree / "README.md").write_text("config repo\n")
        return "rewrite README", ["README.md"]

    assert commit_and_push(repo, same_bytes) is None
    assert remote_tip(remote) == before


def test_gives_up_with_a_clear_error_after_the_last_attempt(remote: Path, tmp_path: Path) -> None:
    repo = GitRepo.open_or_clone(str(remote), "main", tmp_path / "work")
    delays: list[float] = []
    calls = 0

    def produce_and_lose_the_race(worktree: Path) -> tuple[str, list[str]]:
        nonlocal calls
        calls += 1
        person_commit(remote, tmp_path / "person", {"busy.txt": f"{calls}\n"}, f"busy {calls}")
        write_status(worktree, f"attempt: {calls}\n")
        return "step", [STATUS]

    with pytest.raises(PushConflictError) as raised:
        commit_and_push(
            repo, produce_and_lose_the_race, attempts=3, sleep=delays.append, jitter=lambda: 1.0
        )

    assert calls == 3
    assert delays == [0.2, 0.4]
    message = str(raised.value)
    assert "branch 'main'" in message
    assert "3 attempts" in message
    assert "Nothing was forced" in message
    assert run_git("log", "-1", "--format=%s", "main", cwd=remote) == "busy 3"


def test_backoff_doubles_caps_and_jitters() -> None:
    assert [backoff_delay(n, (0.2, 5.0), lambda: 1.0) for n in range(1, 8)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        5.0,
        5.0,
    ]
    assert backoff_delay(3, (0.2, 5.0), lambda: 0.0) == pytest.approx(0.4)
