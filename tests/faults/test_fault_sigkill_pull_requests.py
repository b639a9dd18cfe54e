"""SIGKILL in the middle of pull-request work, each followed by a restart (DESIGN D2, D5).

``gitops-canary run`` in pull-request mode (``review: every-step``) against a loopback stand-in
of GitHub's pull-request API; Dana merges each step's pull request with a merge commit. Eight
times during a two-step rollout the process is killed with its git children and restarted, at
points in a seeded random order:

* ``proposal-pushed``: the step's branch was pushed, the pull request not yet opened or updated;
* ``create``: GitHub opened the pull request, but the process died before the answer arrived;
* ``merged``: right after Dana merged a step, before gitops-canary noticed;
* ``fetch`` and ``timer``: a tick's fetch, and a random moment.

Every step arrives through exactly one pull request, merged by Dana: no second pull request for
a step, none left open or closed unmerged; the rollout commits exactly the steps of an
undisturbed run, and ``main`` (protected like a host's branch protection would) only ever moved
forward.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_helpers import (
    PERSON_IDENTITY,
    SHORT_RUN,
    Budget,
    GitPauses,
    MiniGitHub,
    Person,
    Started,
    assert_fast_forward_only,
    crash,
    describe_remote,
    entries,
    last_step,
    open_playground,
    processes,
    short_canary,
    source_repo,
    steps,
    wait_while_running,
    write_config,
)

from gitops_canary.playground import Playground, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

KILLS = [*["proposal-pushed"] * 2, *["create"] * 2, *["merged"] * 2, "fetch", "timer"]
TOKEN_ENV = "GITOPS_FAULTS_FORGE_TOKEN"
POINT_BUDGET = 25.0


def merge_open_pulls(pg: Playground, forge: MiniGitHub) -> int:
    """Dana merges every open pull request with a merge commit; how many she merged."""
    merged = 0
    for pull in forge.open_pulls():
        head = forge.head_sha(pull["head"])
        if head is None:
            continue
        clone = pg.person_clone
        git(clone, "fetch", "-q", "origin")
        git(clone, "reset", "-q", "--hard", "origin/main")
        message = f"Merge pull request #{pull['number']} from acme/{pull['head']}"
        git(clone, *PERSON_IDENTITY, "merge", "-q", "--no-ff", "-m", message, head)
        try:
            git(clone, "push", "-q", "origin", "HEAD:main")
        except RuntimeError:
            continue  # gitops-canary pushed first: merge again on the next round
        forge.mark_merged(pull["number"], "dana")
        merged += 1
    return merged


def test_sigkills_mid_pull_request_leave_one_pull_request_per_step(tmp_path: Path) -> None:
    kills = list(KILLS)
    pick = random.Random(8)
    pick.shuffle(kills)
    source = source_repo(tmp_path, edit_canary=short_canary())
    forge: MiniGitHub | None = None
    with (
        open_playground(tmp_path, source=source, only_main=True) as pg,
        processes(tmp_path / "logs") as procs,
    ):
        try:
            forge = MiniGitHub(pg.remote).start()
            push = {
                "mode": "pull-request",
                "pullRequests": {
                    "provider": "github",
                    "apiUrl": forge.url,
                    "project": forge.project,
                    "token": {"env": TOKEN_ENV},
                    "review": "every-step",
                },
            }
            config = write_config(pg, tmp_path / "config.yaml", push=push)
            env = {TOKEN_ENV: "not-a-real-token"}
            pauses = GitPauses(tmp_path / "pauses")
            person = Person(pg)
            merges = [0]
            budget = Budget(260)
            reached: Counter[str] = Counter()
            missed: Counter[str] = Counter()
            assert forge is not None
            github = forge

            def act() -> None:
                person.act()
                merges[0] += merge_open_pulls(pg, github)

            def until_point(kind: str, started: Started) -> bool:
                """Wait for the kill point ``kind`` while Dana acts; False if it did not come."""
                if kind == "timer":
                    moment = time.monotonic() + pick.uniform(0.5, 4.0)
                    return wait_while_running(lambda: time.monotonic() >= moment, 10, started, act)
                if kind == "fetch":
                    wait_while_running(lambda: False, pick.uniform(0.5, 3.0), started, act)
                    pauses.arm("before", "fetch")
                    return wait_while_running(
                        lambda: pauses.reached("before", "fetch"), 10, started, act
                    )
                if kind == "proposal-pushed":
                    pauses.arm("after", "push")
                    return wait_while_running(
                        lambda: pauses.reached("after", "push"), POINT_BUDGET, started, act
                    )
                if kind == "create":
                    github.create_seen.clear()
                    github.stall_create = 120.0
                    return wait_while_running(github.create_seen.is_set, POINT_BUDGET, started, act)
                before = merges[0]
                return wait_while_running(lambda: merges[0] > before, POINT_BUDGET, started, act)

            for planned in kills:
                assert not budget.expired(), f"out of time\n{describe_remote(pg.remote)}"
                finished = last_step(pg.remote) == ("Succeeded", 0)
                # Nothing left to propose: a random moment instead.
                kind = "timer" if finished and planned != "fetch" else planned
                pauses.reset()
                started = procs.start("run", "--config", str(config), env={**env, **pauses.env()})
                hit = until_point(kind, started)
                crash(started)
                github.stall_create = 0.0
                (reached if hit else missed)[kind] += 1

            pauses.reset()
            final = procs.start("run", "--config", str(config), env=env)
            done = wait_while_running(
                lambda: last_step(pg.remote) == ("Succeeded", 0),
                max(60.0, budget.left()),
                final,
                act,
            )
            assert done, f"{describe_remote(pg.remote)}\n{final.describe()}"
            idle = wait_while_running(lambda: "is Succeeded" in final.errors(), 30, final)
            assert idle, final.describe()
            final.process.send_signal(signal.SIGTERM)
            assert final.process.wait(timeout=30) == 0, final.describe()

            print(f"kills at their point: {dict(reached)}; instead at random: {dict(missed)}")
            assert reached["create"] >= 1, (reached, missed)
            assert reached["merged"] >= 1, (reached, missed)
            assert reached["proposal-pushed"] >= 1, (reached, missed)

            assert steps(pg.remote) == SHORT_RUN, describe_remote(pg.remote)
            run = entries(pg.remote)
            reviewed = run[2:]  # initialization is committed directly
            assert all(e.merged_by and e.merged_by.startswith("Dana") for e in reviewed), [
                (e.subject, e.merged_by) for e in reviewed
            ]
            # One pull request per step, every one merged, none opened twice.
            titles = [p["title"] for p in github.pulls]
            assert titles == [e.subject for e in reviewed], titles
            assert all(p.get("merged") for p in github.pulls), github.pulls
            assert_fast_forward_only(pg.remote)
            for started in procs.started:
                assert "Traceback" not in started.errors(), started.describe()
        finally:
            if forge is not None:
                forge.stop()
