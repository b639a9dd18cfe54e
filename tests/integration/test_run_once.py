"""``gitops-canary run --once`` as a CronJob would run it: one process per tick, state in git.

A whole rollout (DESIGN §2) is driven by starting ``run --once`` again and again while the
simulated Flux applies each commit and a person includes the generated directory and bumps the
image. Every process exits 0 and the remote ends with exactly the commit sequence of §2.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from run_helpers import (
    BOT_AUTHOR,
    UNDISTURBED,
    Deadline,
    Person,
    assert_whole_steps,
    describe_remote,
    playground,
    processes,
    step_entries,
    steps,
    succeeded,
    tip,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(170)]


def test_run_once_repeated_drives_a_rollout_to_success(tmp_path: Path) -> None:
    with playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        config = write_config(pg, tmp_path / "config.yaml")
        person = Person(pg)
        deadline = Deadline(140)
        ticks = 0
        while not succeeded(pg.remote):
            assert not deadline.expired(), (
                f"no success after {ticks} ticks\n{describe_remote(pg.remote)}"
            )
            code, _, errors = procs.call("run", "--once", "--config", str(config), name="once")
            ticks += 1
            assert code == 0, f"run --once exited {code}:\n{errors[-3000:]}"
            person.act()
            time.sleep(0.3)

        assert steps(pg.remote) == list(UNDISTURBED), describe_remote(pg.remote)
        assert {e.author for e in step_entries(pg.remote)} == {BOT_AUTHOR}
        assert_whole_steps(pg.remote)

        # Once succeeded, another tick has nothing to do: it exits 0 and commits nothing.
        before = tip(pg.remote)
        code, _, errors = procs.call("run", "--once", "--config", str(config), name="once")
        assert code == 0, errors
        assert tip(pg.remote) == before, describe_remote(pg.remote)
