"""The working copy against a real bare remote: clone, reuse, fetch, reset, commit, push."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from git_helpers import person_commit, remote_tip, run_git, show

from gitops_canary.repo.gitrepo import GitError, GitRepo, Identity, Signing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BOT = Identity("canary-bot", "bot@example.test")
APPROVER = Identity("release-approver", "approver@example.test")


def open_repo(remote: Path, workdir: Path, **kwargs: object) -> GitRepo:
    return GitRepo.open_or_clone(str(remote), "main", workdir, author=BOT, **kwargs)  # type: ignore[arg-type]


def test_clones_once_and_reuses_the_working_copy(remote: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    repo = open_repo(remote, workdir)
    assert (workdir / "apps/podinfo/deployment.yaml").exists()
    sentinel = workdir / ".git" / "sentinel"
    sentinel.write_text("still here")
    person_sha = person_commit(remote, tmp_path / "person", {"a.txt": "a\n"}, "person edit")

    again = open_repo(remote, workdir)

    assert sentinel.exists(), "the working copy was re-cloned instead of reused"
    assert again.remote_tip() == person_sha
    assert (workdir / "a.txt").read_text() == "a\n"
    assert repo.fetch() == person_sha


def test_refuses_a_directory_it_did_not_create(remote: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("precious")
    with pytest.raises(GitError, match="not empty and not a working copy gitops-canary created"):
        open_repo(remote, theirs)
    assert (theirs / "notes.txt").read_text() == "precious"


def test_missing_branch_is_named(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="branch 'release' does not exist"):
        GitRepo.open_or_clone(str(remote), "release", tmp_path / "work")


def test_reset_to_remote_cleans_what_a_crash_leaves(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    work = repo.worktree
    (work / "apps/podinfo/deployment.yaml").write_text("half-written")
    (work / "apps/podinfo/stray.yaml").write_text("untracked")
    (work / "README.md").write_text("unpushed change\n")
    assert repo.commit(["README.md"], "unpushed local commit") is not None
    (work / "apps/podinfo/deployment.yaml").write_text("half-written again")
    (work / ".git" / "index.lock").write_text("")

    repo.reset_to_remote()

    assert repo.rev_parse("HEAD") == remote_tip(remote)
    assert (work / "README.md").read_text() == "config repo\n"
    assert (work / "apps/podinfo/deployment.yaml").read_text().startswith("apiVersion")
    assert not (work / "apps/podinfo/stray.yaml").exists()
    assert not (work / ".git" / "index.lock").exists()
    assert run_git("status", "--porcelain", cwd=work) == ""


def test_commit_is_never_empty_and_carries_the_identity(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work", committer=APPROVER)
    target = repo.worktree / "apps/podinfo/gitops-canary/podinfo/status.yaml"
    target.parent.mkdir(parents=True)

    assert repo.commit([], "nothing") is None
    (repo.worktree / "README.md").write_text("config repo\n")  # same bytes as committed
    assert repo.commit(["README.md"], "no change") is None

    target.write_text("phase: Initializing\n")
    sha = repo.commit([str(target.relative_to(repo.worktree))], "Initialize podinfo.test")
    assert sha is not None
    fmt = run_git("show", "-s", "--format=%an|%ae|%cn|%ce|%s", sha, cwd=repo.worktree)
    assert fmt.split("|") == [
        "canary-bot",
        "bot@example.test",
        "release-approver",
        "approver@example.test",
        "Initialize podinfo.test",
    ]
    assert repo.commit([str(target.relative_to(repo.worktree))], "again") is None


def test_commit_records_deletions(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    (repo.worktree / "apps/podinfo/canary.yaml").unlink()
    sha = repo.commit(["apps/podinfo/canary.yaml"], "Remove the canary")
    assert sha is not None
    assert repo.push().ok
    assert "canary.yaml" not in run_git("ls-tree", "-r", "--name-only", "main", cwd=remote)


def test_commit_refuses_paths_outside_the_repository(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    with pytest.raises(GitError, match="paths must be relative"):
        repo.commit(["../escape.txt"], "nope")


def test_push_fast_forwards_and_reports_rejection(remote: Path, tmp_path: Path) -> None:
    run_git("config", "receive.denyNonFastForwards", "true", cwd=remote)
    repo = open_repo(remote, tmp_path / "work")
    (repo.worktree / "ours.txt").write_text("1\n")
    first = repo.commit(["ours.txt"], "step 1")
    result = repo.push()
    assert result.ok
    assert result.sha == first == remote_tip(remote)

    person_sha = person_commit(remote, tmp_path / "person", {"theirs.txt": "x\n"}, "person edit")
    (repo.worktree / "ours.txt").write_text("2\n")
    assert repo.commit(["ours.txt"], "step 2") is not None
    rejected = repo.push()

    assert not rejected.ok
    assert rejected.rejected
    assert remote_tip(remote) == person_sha, "a rejected push must not move the remote"


def test_force_push_is_only_for_our_own_branches(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    with pytest.raises(GitError, match="watched branch"):
        repo.push_own_branch("main", None)
    (repo.worktree / "x.txt").write_text("x\n")
    repo.commit(["x.txt"], "proposal")
    assert repo.push_own_branch("gitops-canary/test/podinfo", None).ok
    repo.reset_to_remote()
    (repo.worktree / "x.txt").write_text("y\n")
    repo.commit(["x.txt"], "second proposal")
    stale = repo.push_own_branch("gitops-canary/test/podinfo", "0" * 40)
    assert not stale.ok, "the lease protects a branch that moved since we looked"


def test_fetch_survives_a_rewritten_remote_history(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    for i in range(3):
        person_commit(remote, tmp_path / "person", {"log.txt": f"{i}\n"}, f"edit {i}")
    repo.fetch()
    repo.reset_to_remote()
    # Someone rewrites main: a brand-new root commit, force-pushed.
    rewritten = tmp_path / "rewritten"
    run_git("init", "--quiet", "--initial-branch=main", str(rewritten), cwd=tmp_path)
    (rewritten / "fresh.txt").write_text("new history\n")
    run_git("add", "--all", cwd=rewritten)
    run_git("commit", "--quiet", "-m", "new root", cwd=rewritten)
    run_git("push", "--quiet", "--force", str(remote), "HEAD:refs/heads/main", cwd=rewritten)

    tip = repo.fetch()
    repo.reset_to_remote()

    assert tip == remote_tip(remote)
    assert (repo.worktree / "fresh.txt").exists()
    assert not (repo.worktree / "log.txt").exists()


def test_fetch_rebuilds_a_broken_clone(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    tip = remote_tip(remote)
    # Lose every object: only a rebuild from the remote helps.
    for pack in (repo.worktree / ".git" / "objects").rglob("*"):
        if pack.is_file():
            pack.chmod(0o600)
            pack.write_bytes(b"garbage")
    person_sha = person_commit(remote, tmp_path / "person", {"a.txt": "a\n"}, "edit")
    assert repo.fetch() == person_sha != tip
    repo.reset_to_remote()
    assert (repo.worktree / "a.txt").exists()


def test_history_queries_and_shallow_boundary(remote: Path, tmp_path: Path) -> None:
    old = remote_tip(remote)
    shas = [
        person_commit(remote, tmp_path / "person", {f"f{i}.txt": "x\n"}, f"edit {i}")
        for i in range(3)
    ]
    repo = open_repo(remote, tmp_path / "work", depth=1)
    assert (repo.worktree / ".git" / "shallow").exists()

    assert repo.last_commit_touching(["f1.txt"]) == shas[1]
    assert repo.last_commit_touching(["apps/podinfo/canary.yaml"]) == old
    assert repo.last_commit_touching(["no/such/file"]) is None
    assert repo.is_ancestor(old, shas[2])
    assert not repo.is_ancestor(shas[2], shas[0])
    when = repo.commit_time(shas[0])
    assert isinstance(when, datetime)
    assert when.tzinfo is not None


def _ssh_signing_key(tmp_path: Path) -> Path:
    key = tmp_path / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f", str(key)],
        check=True,
        timeout=30,
    )
    return key


def test_ssh_signed_commit_verifies(remote: Path, tmp_path: Path) -> None:
    key = _ssh_signing_key(tmp_path)
    repo = open_repo(remote, tmp_path / "work", signing=Signing("ssh", str(key)))
    (repo.worktree / "signed.txt").write_text("s\n")
    sha = repo.commit(["signed.txt"], "signed step")
    assert sha is not None
    allowed = tmp_path / "allowed_signers"
    public = (tmp_path / "signing_key.pub").read_text().split()
    allowed.write_text(f"bot@example.test {public[0]} {public[1]}\n")
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", sha],
        cwd=repo.worktree,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert 'Good "git" signature for bot@example.test' in verified.stderr


def test_unsigned_commit_does_not_verify(remote: Path, tmp_path: Path) -> None:
    repo = open_repo(remote, tmp_path / "work")
    (repo.worktree / "plain.txt").write_text("p\n")
    sha = repo.commit(["plain.txt"], "plain step")
    assert sha is not None
    assert show(repo.worktree / ".git", sha, "plain.txt") == "p"
    raw = run_git("cat-file", "commit", sha, cwd=repo.worktree)
    assert "gpgsig" not in raw
