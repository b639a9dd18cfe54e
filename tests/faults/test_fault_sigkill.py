"""SIGKILL at twenty points of a rollout, each followed by a restart (DESIGN D2).

``gitops-canary run`` runs as a real process. Twenty times during one rollout of the example
canary it is killed with SIGKILL, together with its git children, as a container runtime would,
and started again on the same working copy. The points, in a seeded random order:

* ``fetch``: while a ``git fetch`` is in flight (a tick, or the start-up);
* ``commit``: mid-tick, the step's files written but not committed (``git commit`` or
  ``git fast-import``);
* ``push-before``: the step committed locally, not pushed;
* ``push-after``: the push landed on the remote, the process never learned it;
* ``new-commit``: right after a new step commit appeared on the remote;
* ``timer``: a random moment 0.5-4 s after the start.

Exact points come from a ``git`` wrapper on the process' PATH that sleeps at an armed subcommand
until the test kills the process group. A point that is not reached within its budget (the
rollout had nothing to commit then) is a kill at a random moment instead; the test reports how
many were reached.

The rollout ends with exactly the steps of an undisturbed run, each once, every step whole, the
branch only fast-forwarded; every restart started by itself (no manual cleanup), and at the end
the working copy is clean and at the remote's tip.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_helpers import (
    BOT,
    FULL_RUN,
    Budget,
    GitPauses,
    Person,
    Started,
    assert_fast_forward_only,
    assert_steps_whole,
    crash,
    describe_remote,
    entries,
    expect,
    last_step,
    open_playground,
    processes,
    tip,
    wait_until,
    wait_while_running,
    write_config,
)

from gitops_canary.playground import git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(330)]

#: kind -> (when, git subcommands) for the exact points. A step is committed with
#: ``git commit`` or, several at once, with ``git fast-import``.
EXACT = {
    "fetch": ("before", ("fetch",)),
    "commit": ("before", ("commit", "fast-import")),
    "push-before": ("before", ("push",)),
    "push-after": ("after", ("push",)),
}
KILLS = [
    *["fetch"] * 4,
    *["commit"] * 3,
    *["push-before"] * 4,
    *["push-after"] * 4,
    *["new-commit"] * 2,
    *["timer"] * 3,
]
#: Kinds that need gitops-canary to have a step to commit.
NEEDS_A_STEP = {"commit", "push-before", "push-after", "new-commit"}
POINT_BUDGET = 25.0


def test_twenty_sigkills_with_restarts_end_exactly_as_an_undisturbed_run(tmp_path: Path) -> None:
    kills = list(KILLS)
    pick = random.Random(20)
    pick.shuffle(kills)
    with open_playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        config = write_config(pg, tmp_path / "config.yaml")
        workdir = tmp_path / "pg" / "reconciler"
        pauses = GitPauses(tmp_path / "pauses")
        person = Person(pg)
        budget = Budget(280)
        reached: Counter[str] = Counter()
        missed: Counter[str] = Counter()
        act = person.act

        def until_point(kind: str, started: Started) -> bool:
            """Wait for the kill point ``kind`` while Dana acts; False if it did not come."""
            if kind == "timer":
                moment = time.monotonic() + pick.uniform(0.5, 4.0)
                return wait_while_running(lambda: time.monotonic() >= moment, 10, started, act)
            if kind == "new-commit":
                before = tip(pg.remote)

                def new_step_commit() -> bool:
                    now = tip(pg.remote)
                    author = git(pg.remote, "log", "-1", "--format=%an", now)
                    return now != before and author == "gitops-canary"

                return wait_while_running(new_step_commit, POINT_BUDGET, started, act)
            when, subcommands = EXACT[kind]
            if kind == "fetch":
                # Mostly a tick's fetch; now and then the start-up's.
                wait_while_running(lambda: False, pick.uniform(0.5, 3.0), started, act)
            pauses.arm(when, *subcommands)
            return wait_while_running(
                lambda: pauses.reached(when, *subcommands), POINT_BUDGET, started, act
            )

        for planned in kills:
            assert not budget.expired(), f"out of time\n{describe_remote(pg.remote)}"
            finished = last_step(pg.remote) == ("Succeeded", 0)
            # Nothing left to commit: a random moment instead.
            kind = "timer" if planned in NEEDS_A_STEP and finished else planned
            pauses.reset()
            started = procs.start("run", "--config", str(config), env=pauses.env())
            hit = until_point(kind, started)
            crash(started)
            (reached if hit else missed)[kind] += 1
            print(f"kill {len(procs.started)}: {kind}, {'at the point' if hit else 'timed out'}")

        # The last restart runs the rollout to its end and stops on SIGTERM, cleanly.
        pauses.reset()
        final = procs.start("run", "--config", str(config))
        succeeded = wait_while_running(
            lambda: last_step(pg.remote) == ("Succeeded", 0), max(60.0, budget.left()), final, act
        )
        assert succeeded, f"{describe_remote(pg.remote)}\n{final.describe()}"
        # Once it has seen the last step applied it is idle: stop it there.
        idle = wait_while_running(lambda: "is Succeeded" in final.errors(), 30, final)
        assert idle, final.describe()
        final.process.send_signal(signal.SIGTERM)
        assert final.process.wait(timeout=30) == 0, final.describe()

        print(f"kills at their point: {dict(reached)}; at a random moment instead: {dict(missed)}")
        assert sum(reached.values()) + sum(missed.values()) == len(KILLS)
        assert sum(reached[k] for k in EXACT) >= 10, (reached, missed)
        assert reached["commit"] >= 1, (reached, missed)
        assert reached["push-before"] >= 1, (reached, missed)
        assert reached["push-after"] >= 1, (reached, missed)

        assert steps_of(pg.remote) == FULL_RUN, describe_remote(pg.remote)
        assert {e.author for e in entries(pg.remote)} == {BOT}
        assert_steps_whole(pg.remote)
        assert_fast_forward_only(pg.remote)
        for started in procs.started:
            errors = started.errors()
            assert "Traceback" not in errors, started.describe()
            assert "Cannot start" not in errors, started.describe()
        # The working copy recovered by itself: clean, at the remote's tip, no stale locks.
        assert git(workdir, "status", "--porcelain") == ""
        assert git(workdir, "rev-parse", "HEAD") == tip(pg.remote)
        assert not list((workdir / ".git").rglob("*.lock"))


def steps_of(remote: Path) -> list[tuple[str | None, int | None]]:
    return [(e.phase, e.weight) for e in entries(remote)]


def test_sigkill_during_the_first_clone_does_not_block_restarts(tmp_path: Path) -> None:
    with open_playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        config = write_config(pg, tmp_path / "config.yaml")
        pauses = GitPauses(tmp_path / "pauses")
        # `git remote add origin <url>` comes right after `git init` in a fresh working copy.
        pauses.arm("before", "remote")
        first = procs.start("run", "--config", str(config), env=pauses.env())
        wait_until(lambda: pauses.reached("before", "remote"), 60, "the first clone")
        crash(first)

        again = procs.start("run", "--once", "--config", str(config))
        code = again.process.wait(timeout=120)
        expect(code == 0, again.describe())
        assert last_step(pg.remote) == ("Initializing", 0), describe_remote(pg.remote)
