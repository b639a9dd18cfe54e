"""The shortcuts that make a tick fast give exactly what the plain way gives.

Each test runs a fast path next to the plain one against real git repositories and compares:
many commits written by one ``git fast-import`` against one ``git commit`` per step, one
``git log`` for many directories against one per directory, discovery through its caches
against a fresh one, and many steps in one push against one push per step (including a push
rejected because someone else pushed first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops_canary.core.status import CanaryStatus, Phase
from gitops_canary.repo.discovery import DiscoveredCanary, Discovery, ParseCache, discover
from gitops_canary.repo.gitrepo import GitRepo, Identity, StagedCommit
from gitops_canary.repo.layout import write_generated
from gitops_canary.repo.pushing import BatchedStep, batch_producer, commit_and_push

pytestmark = pytest.mark.integration

BOT = Identity("gitops-canary", "bot@example.test")
PERSON = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.test",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.test",
}
SEED = {
    "README.md": "config repo\n",
    "apps/a/deployment.yaml": "kind: Deployment\n",
    "apps/b/deployment.yaml": "kind: Deployment\n",
    "apps/c/deployment.yaml": "kind: Deployment\n",
}
FLUX = Path(__file__).parent / "repo_fixtures" / "flux"


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git configuration leaks in (hooks, autocrlf, signing)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **PERSON},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, f"git {' '.join(args)}: {completed.stderr}"
    return completed.stdout.strip()


def make_remote(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    remote = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    person = root / "person"
    git(root, "clone", "-q", str(remote), str(person))
    git(person, "checkout", "-q", "-b", "main")
    write(person, files)
    git(person, "add", "-A")
    git(person, "commit", "-q", "-m", "Seed")
    git(person, "push", "-q", "origin", "HEAD:main")
    return remote


def write(root: Path, files: dict[str, str | None]) -> None:
    for path, content in files.items():
        target = root / path
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8", newline="")


def person_commit(remote: Path, files: dict[str, str | None], message: str) -> str:
    person = remote.parent / "person"
    git(person, "fetch", "-q", "origin")
    git(person, "reset", "-q", "--hard", "origin/main")
    write(person, files)
    git(person, "add", "-A")
    git(person, "commit", "-q", "-m", message)
    git(person, "push", "-q", "origin", "HEAD:main")
    return git(person, "rev-parse", "HEAD")


def open_repo(remote: Path, workdir: Path, depth: int | None = None) -> GitRepo:
    return GitRepo.open_or_clone(str(remote), "main", workdir, depth=depth, author=BOT)


def describe(repo: GitRepo, sha: str) -> tuple[str, str, str, str]:
    """What must match between two ways of making a commit: tree, author, committer, message."""
    tree = git(repo.worktree, "rev-parse", f"{sha}^{{tree}}")
    author = git(repo.worktree, "log", "-1", "--format=%an <%ae>", sha)
    committer = git(repo.worktree, "log", "-1", "--format=%cn <%ce>", sha)
    raw = git(repo.worktree, "cat-file", "commit", sha)
    return tree, author, committer, raw.split("\n\n", 1)[1]


# --------------------------------------------------------------------------- fast-import


MESSY = "Add a file\n\nBody line with trailing blanks   \n\n\n\nTrailer: x\n"
STEPS: list[tuple[str, dict[str, str | None]]] = [
    (MESSY, {"apps/a/new.yaml": "a: 1\n"}),
    ("The same bytes again", {"apps/a/new.yaml": "a: 1\n"}),
    ("Edit a file two steps share", {"README.md": "one\n"}),
    ("Edit it again, add another", {"README.md": "two\n", "apps/b/extra.yaml": "b: 2\n"}),
    ("Delete a file", {"apps/c/deployment.yaml": None}),
    ("\n\n  Leading blank lines  \n\n", {"apps/d/x.yaml": "d\n"}),
    ("Delete a file that is not there", {"apps/never/there.yaml": None}),
]  # fmt: skip


def _commit_steps(repo: GitRepo, *, staged: bool) -> list[str | None]:
    if not staged:
        shas: list[str | None] = []
        for message, files in STEPS:
            write(repo.worktree, files)
            shas.append(repo.commit(list(files), message))
        return shas
    batch: list[StagedCommit] = []
    for message, files in STEPS:
        write(repo.worktree, files)
        snapshot = repo.snapshot(list(files))
        assert snapshot is not None
        batch.append(StagedCommit(message, snapshot))
    return repo.commit_staged(batch)


@pytest.mark.parametrize("attributes", [None, "*.yaml text eol=crlf\n"])
def test_staged_commits_are_the_commits_of_each_step(
    tmp_path: Path, attributes: str | None
) -> None:
    seed = dict(SEED) if attributes is None else {**SEED, ".gitattributes": attributes}
    remote = make_remote(tmp_path / "origin", seed)
    plain = open_repo(remote, tmp_path / "plain")
    fast = open_repo(remote, tmp_path / "fast")
    (tmp_path / "fast" / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (tmp_path / "fast" / "run.sh").chmod(0o755)
    (tmp_path / "plain" / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (tmp_path / "plain" / "run.sh").chmod(0o755)
    STEPS.append(("An executable file", {"run.sh": "#!/bin/sh\n"}))
    try:
        made = _commit_steps(plain, staged=False)
        staged = _commit_steps(fast, staged=True)
    finally:
        STEPS.pop()

    assert [sha is None for sha in staged] == [sha is None for sha in made]
    assert made.count(None) == 2
    for ours, theirs in zip(staged, made, strict=True):
        if ours is not None and theirs is not None:
            assert describe(fast, ours) == describe(plain, theirs)
    # One commit per step, chained on the tip, and HEAD on the last.
    chain = git(fast.worktree, "rev-list", "--reverse", "HEAD", "^origin/main").split()
    assert chain == [sha for sha in staged if sha is not None]
    # The next plain commit just works (the index is brought up to HEAD first), after which
    # HEAD, the index and the working copy agree.
    for repo in (fast, plain):
        write(repo.worktree, {"apps/a/after.yaml": "after\n"})
    after_fast = fast.commit(["apps/a/after.yaml"], "After the batch")
    after_plain = plain.commit(["apps/a/after.yaml"], "After the batch")
    assert after_fast is not None
    assert after_plain is not None
    assert describe(fast, after_fast) == describe(plain, after_plain)
    assert git(fast.worktree, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- last commits


def _per_path(repo: GitRepo, paths: list[str], rev: str) -> dict[str, str | None]:
    return {path: repo.last_commit_touching([path], rev) for path in paths}


PATHS = ["apps/a", "apps/b", "apps/c", "README.md", "no/such/dir"]


def test_last_commits_in_one_query_match_one_query_per_path(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "origin", SEED)
    person_commit(remote, {"apps/a/deployment.yaml": "kind: Deployment # 2\n"}, "a")
    person_commit(remote, {"apps/b/new.yaml": "b\n", "README.md": "r\n"}, "b and readme")
    repo = open_repo(remote, tmp_path / "work")
    reference = open_repo(remote, tmp_path / "reference")

    def check() -> None:
        tip = repo.fetch()
        assert reference.fetch() == tip
        assert repo.last_commits_touching(PATHS, tip) == _per_path(reference, PATHS, tip)

    check()
    # New commits: only those are read, and the answers still match.
    person_commit(remote, {"apps/a/deployment.yaml": "kind: Deployment # 3\n"}, "a again")
    person_commit(remote, {"apps/c/deployment.yaml": None}, "c goes")
    check()
    check()  # nothing moved
    # History rewritten under us: the kept answers are dropped.
    person = remote.parent / "person"
    git(person, "reset", "-q", "--hard", "HEAD~3")
    write(person, {"apps/b/other.yaml": "o\n"})
    git(person, "add", "-A")
    git(person, "commit", "-q", "-m", "rewritten")
    git(person, "push", "-q", "--force", "origin", "HEAD:main")
    check()
    # A merge: answered the way git simplifies history for each path.
    git(person, "checkout", "-q", "-b", "feature")
    write(person, {"apps/a/feature.yaml": "f\n"})
    git(person, "add", "-A")
    git(person, "commit", "-q", "-m", "feature")
    git(person, "checkout", "-q", "main")
    write(person, {"apps/b/main.yaml": "m\n"})
    git(person, "add", "-A")
    git(person, "commit", "-q", "-m", "main moves on")
    git(person, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    git(person, "push", "-q", "origin", "HEAD:main")
    check()


def test_last_commits_look_past_a_shallow_boundary(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "origin", SEED)
    for i in range(3):
        person_commit(remote, {f"apps/b/f{i}.yaml": "x\n"}, f"b {i}")
    repo = open_repo(remote, tmp_path / "work", depth=1)
    reference = open_repo(remote, tmp_path / "reference", depth=1)
    tip = repo.fetch()
    assert repo.last_commits_touching(PATHS, tip) == _per_path(reference, PATHS, tip)


# --------------------------------------------------------------------------- one push


def _producer(index: int, calls: list[int]) -> BatchedStep:
    def produce(worktree: Path) -> tuple[str, list[str]]:
        calls.append(index)
        path = f"apps/s{index}/status.yaml"
        write(worktree, {path: f"step: {index}\nbase: {(worktree / 'README.md').read_text()}"})
        return f"Step {index}\n\nBody {index}", [path]

    return BatchedStep(produce)


def test_one_push_carries_the_commits_one_push_per_step_would(tmp_path: Path) -> None:
    one_by_one = open_repo(make_remote(tmp_path / "first", SEED), tmp_path / "one-by-one")
    batched_remote = make_remote(tmp_path / "second", SEED)
    batched = open_repo(batched_remote, tmp_path / "batched")
    calls: list[int] = []

    singles = [commit_and_push(one_by_one, _producer(i, calls).produce) for i in range(4)]
    steps = [_producer(i, calls) for i in range(4)]
    assert commit_and_push(batched, batch_producer(batched, steps)) == steps[-1].sha

    assert [describe(batched, s.sha) for s in steps if s.sha] == [
        describe(one_by_one, sha) for sha in singles if sha
    ]
    assert git(batched_remote, "rev-parse", "main") == steps[-1].sha


def test_a_rejected_push_recomputes_every_step_on_the_new_tip(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "origin", SEED)
    repo = open_repo(remote, tmp_path / "work")
    calls: list[int] = []
    steps = [_producer(i, calls) for i in range(3)]

    def broken(worktree: Path) -> tuple[str, list[str]]:
        raise ValueError("this canary cannot be rendered")

    steps.insert(1, BatchedStep(broken))
    each = batch_producer(repo, steps)
    raced = []

    def produce(worktree: Path) -> None:
        if not raced:  # someone pushes while we write our first attempt
            raced.append(person_commit(remote, {"README.md": "moved\n"}, "person"))
        each(worktree)

    pushed = commit_and_push(repo, produce, sleep=lambda _: None)

    assert calls == [0, 1, 2, 0, 1, 2]  # every step computed again, the broken one left out
    assert isinstance(steps[1].error, ValueError)
    assert steps[1].sha is None
    ours = [s.sha for s in steps if s.sha]
    assert git(remote, "rev-list", "--reverse", "main", f"^{raced[0]}").split() == ours
    assert pushed == ours[-1]
    assert "base: moved" in git(remote, "show", f"{ours[0]}:apps/s0/status.yaml")


# --------------------------------------------------------------------------- discovery


def _summary(found: DiscoveredCanary) -> tuple[object, ...]:
    return (
        found.key,
        found.file,
        found.canary.model_dump() if found.canary else None,
        found.status,
        found.generated,
        found.revision,
        found.tracked_configs,
        found.provider,
        found.issues,
        found.warnings,
        found.target.data if found.target else None,
    )


def _same(cached: Discovery, fresh: Discovery) -> None:
    assert [_summary(c) for c in cached.canaries] == [_summary(c) for c in fresh.canaries]
    assert cached.issues == fresh.issues
    assert cached.metric_templates == fresh.metric_templates


def test_discovery_through_its_caches_is_a_fresh_discovery(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(FLUX, root)
    cache = ParseCache()

    def both() -> None:
        _same(
            discover(root, ["apps"], default_provider="gatewayapi:v1", cache=cache),
            discover(root, ["apps"], default_provider="gatewayapi:v1"),
        )

    both()
    found = discover(root, ["apps"], default_provider="gatewayapi:v1").canaries[0]
    status = CanaryStatus(phase=Phase.PROGRESSING, canary_weight=10)
    write_generated(root, found.canary_dir, found.name, [], status, found.file)
    both()
    write_generated(
        root,
        found.canary_dir,
        found.name,
        [],
        status.model_copy(update={"canary_weight": 20}),
        found.file,
    )
    canary = root / found.file
    canary.write_text(canary.read_text().replace("threshold: 5", "threshold: 7"))
    both()
    # What the kustomize build reads changes: an images: entry, a listed file in a new
    # directory, that file's content, then the listing goes again.
    kustomization = root / "apps" / "podinfo" / "kustomization.yaml"
    listed = kustomization.read_text()
    kustomization.write_text(
        listed + "images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: 6.0.9\n"
    )
    both()
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    write(root, {"apps/podinfo/extra/config.yaml": config_map.format("extra")})
    kustomization.write_text(listed + "  - extra/config.yaml\n")
    both()
    write(root, {"apps/podinfo/extra/config.yaml": config_map.format("renamed")})
    both()
    kustomization.write_text(listed)
    both()
    # A broken status file is reported in the same words, cached or not.
    (root / found.generated_dir / "status.yaml").write_text("status: [unclosed\n")
    both()
    assert any(
        "status.yaml" in issue
        for issue in discover(root, ["apps"], default_provider="gatewayapi:v1").canaries[0].issues
    )
