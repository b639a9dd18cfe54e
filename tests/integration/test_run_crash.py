"""Crash safety: ``gitops-canary run`` killed with SIGKILL anywhere carries on from git.

One rollout (DESIGN §2) is driven by a ``run`` process that is SIGKILLed again and again and
restarted each time:

* right after each of some step commits reaches the remote (mid-tick: notifications, the next
  fetch...), together with its ``git`` children, as a container runtime kills a pod;
* at seeded random moments (start-up, clone, observing, waiting);
* inside its ``git push``, through a ``pre-receive`` hook on the remote: once with the whole
  process group, so the push never lands and the step exists only as a local commit ("between
  commit and push"), once with only gitops-canary, so the push lands but the process never
  learns it ("mid-push").

The remote must end with exactly the undisturbed run's steps, each once, in order, each whole.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from run_helpers import (
    UNDISTURBED,
    Deadline,
    Person,
    PushTrap,
    Started,
    assert_whole_steps,
    describe_remote,
    playground,
    processes,
    steps,
    succeeded,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(170)]

#: What to do when the n-th step commit appears on the remote (cycled from n = 1). The order
#: matters: "kill-now" must follow a step the running process pushed itself, not one a trap
#: let land (after which a fresh process is only starting).
ACTIONS = ("kill-now", "trap-no-landing", "trap-landing", "random")


def test_sigkill_at_any_point_neither_loses_nor_duplicates_a_step(tmp_path: Path) -> None:
    rng = random.Random(20240611)  # seeded: the same moments on every run
    with playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        config = write_config(pg, tmp_path / "config.yaml")
        trap = PushTrap(pg.remote)
        person = Person(pg)
        kills: list[str] = []

        def start() -> Started:
            started = procs.start("run", "--config", str(config))
            trap.rearm(started.pid)
            return started

        run = start()
        kill_at: float | None = None
        seen = 0
        deadline = Deadline(150)
        while not succeeded(pg.remote):
            assert not deadline.expired(), f"kills: {kills}\n{describe_remote(pg.remote)}"
            person.act()

            if trap.has_fired():
                # Let what the hook left running finish (the landing push), then restart.
                run.crash(whole_group=False)
                trap.fired.unlink()
                landed = len(steps(pg.remote)) > seen
                kills.append(f"in git push after step {seen} ({'landed' if landed else 'lost'})")
                run = start()
            elif kill_at is not None and time.monotonic() >= kill_at:
                run.crash()
                kills.append(f"at a random moment after step {seen}")
                kill_at = None
                run = start()
            elif not run.running():
                raise AssertionError(f"gitops-canary exited on its own\n{run.describe()}")

            now = len(steps(pg.remote))
            while seen < now:
                seen += 1
                action = ACTIONS[(seen - 1) % len(ACTIONS)]
                if action == "kill-now":
                    run.crash()
                    kills.append(f"right after step {seen} reached the remote")
                    run = start()
                elif action == "random":
                    kill_at = time.monotonic() + rng.uniform(0.2, 3.0)
                elif not trap.is_armed():
                    trap.arm(run.pid, land=action == "trap-landing")
            time.sleep(0.05)

        (tmp_path / "logs" / "kills.txt").write_text("\n".join(kills) + "\n")
        assert steps(pg.remote) == list(UNDISTURBED), (
            f"kills: {kills}\n{describe_remote(pg.remote)}"
        )
        assert_whole_steps(pg.remote)
        # The test did what it says: every kind of crash happened.
        for kind in ("right after", "random", "(landed)", "(lost)"):
            assert any(kind in kill for kill in kills), f"no crash {kind!r}: {kills}"
