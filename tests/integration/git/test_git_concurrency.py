"""Our steps and people's commits racing on one branch: nothing lost, nothing forced (D5)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from git_helpers import PERSON_ENV, is_ancestor, run_git

from gitops_canary.repo.gitrepo import GitRepo
from gitops_canary.repo.pushing import commit_and_push

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

OUR_DIR = "apps/podinfo/gitops-canary/podinfo"
OUR_FILE = f"{OUR_DIR}/status.yaml"
PEOPLE = 4
COMMITS_PER_PERSON = 15
STEPS = 12

# A person: clone, then commit and push their own files, retrying a lost race by starting again
# from the new tip. Half the files land in the directory our steps write. Prints each pushed sha.
PERSON_SCRIPT = r"""
import random, subprocess, sys, time
remote, clone, who, count, shared_dir = sys.argv[1:6]
count = int(count)
def git(*args, check=True):
    done = subprocess.run(["git", *args], cwd=clone, capture_output=True, text=True, timeout=60)
    if check and done.returncode:
        sys.exit(f"git {args} failed: {done.stderr}")
    return done
subprocess.run(["git", "clone", "--quiet", remote, clone], check=True, timeout=60)
rng = random.Random(who)
for i in range(count):
    folder = shared_dir if i % 2 else "apps/people"
    while True:
        git("fetch", "--quiet", "origin")
        git("reset", "--quiet", "--hard", "origin/main")
        path = f"{clone}/{folder}/{who}-{i}.txt"
        subprocess.run(["mkdir", "-p", f"{clone}/{folder}"], check=True)
        open(path, "w").write(f"{who} {i}\n")
        git("add", "--all")
        git("commit", "--quiet", "-m", f"{who} commit {i}")
        if git("push", "--quiet", "origin", "HEAD:refs/heads/main", check=False).returncode == 0:
            print(git("rev-parse", "HEAD").stdout.strip(), flush=True)
            break
        time.sleep(rng.uniform(0.001, 0.02))
    time.sleep(rng.uniform(0.0, 0.03))
"""


def test_steps_and_people_share_a_branch(remote: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    run_git("config", "receive.denyNonFastForwards", "true", cwd=remote)
    run_git("config", "receive.denyDeletes", "true", cwd=remote)
    run_git("config", "core.logAllRefUpdates", "true", cwd=remote)
    initial = run_git("rev-parse", "main", cwd=remote)
    repo = GitRepo.open_or_clone(str(remote), "main", tmp_path / "work")

    people = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PERSON_SCRIPT,
                str(remote),
                str(tmp_path / f"person-{n}"),
                f"person{n}",
                str(COMMITS_PER_PERSON),
                OUR_DIR,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**__import__("os").environ, **PERSON_ENV},
        )
        for n in range(PEOPLE)
    ]
    try:
        ours: list[str] = []
        for step in range(STEPS):

            def produce(worktree: Path, step: int = step) -> tuple[str, list[str]]:
                # Recomputed from the tree each attempt: how many people files exist right now.
                seen = sum(1 for _ in worktree.rglob("person*.txt"))
                target = worktree / OUR_FILE
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"step: {step}\npeopleFilesSeen: {seen}\n")
                return f"step {step}\n\nCanary: test/podinfo\nCanary-Weight: {step}", [OUR_FILE]

            sha = commit_and_push(repo, produce, attempts=40, backoff=(0.01, 0.2))
            assert sha is not None
            ours.append(sha)
        outputs = [person.communicate(timeout=60) for person in people]
    finally:
        for person in people:
            if person.poll() is None:
                person.kill()
                person.wait()

    for person, (_, err) in zip(people, outputs, strict=True):
        assert person.returncode == 0, err
    person_shas = [line for out, _ in outputs for line in out.split()]
    assert len(person_shas) == PEOPLE * COMMITS_PER_PERSON

    tip = run_git("rev-parse", "main", cwd=remote)
    reachable = set(run_git("rev-list", tip, cwd=remote).split())
    missing = [sha for sha in person_shas if sha not in reachable]
    assert not missing, f"{len(missing)} people commits were lost"
    assert all(sha in reachable for sha in ours)
    subjects = run_git("log", "--format=%s", tip, cwd=remote).splitlines()
    for step in range(STEPS):
        assert subjects.count(f"step {step}") == 1
    assert len(subjects) == 1 + STEPS + PEOPLE * COMMITS_PER_PERSON
    # The race really happened: people's commits landed between our first and last step.
    between = subjects[subjects.index(f"step {STEPS - 1}") : subjects.index("step 0")]
    assert any("person" in subject for subject in between)

    # The server's reflog: every update of main is a fast-forward of the previous one.
    updates = (remote / "logs" / "refs" / "heads" / "main").read_text().splitlines()
    assert len(updates) == STEPS + PEOPLE * COMMITS_PER_PERSON
    previous = initial
    for line in updates:
        old, new = line.split()[:2]
        assert old == previous
        assert is_ancestor(remote, old, new), f"main was moved from {old} to {new} by force"
        previous = new
    assert previous == tip
    assert time.monotonic() - started < 60
