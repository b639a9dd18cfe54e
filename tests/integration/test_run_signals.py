"""SIGTERM and SIGINT stop ``gitops-canary run`` after the tick in flight, with exit code 0.

The podinfo Canary gets two extra webhooks pointing at a receiver that holds its first call, so
the signal certainly arrives in the middle of a tick: during the pre-rollout check (the tick
then commits weight 10) and during confirm-promotion (the tick then commits "Promoting"). Each
time the process finishes that tick, pushes the whole step and exits 0; a restart carries the
rollout on, and a signal while idle stops it within a few seconds. The remote holds DESIGN §2's
sequence, every commit whole.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from run_helpers import (
    UNDISTURBED,
    Deadline,
    HoldingWebhook,
    Person,
    Started,
    assert_whole_steps,
    describe_remote,
    last_step,
    playground,
    processes,
    steps,
    succeeded,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(170)]

PRE_ROLLOUT, CONFIRM_PROMOTION = "/pre-rollout", "/confirm-promotion"


def with_holding_hooks(url: str) -> Callable[[str], str]:
    def edit(canary: str) -> str:
        hooks = (
            f"      - name: hold-pre-rollout\n        type: pre-rollout\n"
            f"        url: {url}{PRE_ROLLOUT}\n        timeout: 30s\n"
            f"      - name: hold-confirm-promotion\n        type: confirm-promotion\n"
            f"        url: {url}{CONFIRM_PROMOTION}\n        timeout: 30s\n"
        )
        assert "    webhooks:\n" in canary
        return canary.replace("    webhooks:\n", "    webhooks:\n" + hooks, 1)

    return edit


def stop_mid_tick(run: Started, hooks: HoldingWebhook, path: str, signum: signal.Signals) -> None:
    """Signal while the webhook holds the tick, release it, expect a clean exit."""
    run.process.send_signal(signum)
    wait_until(
        lambda: f"Received {signum.name}" in run.errors(),
        10,
        f"gitops-canary to log that it received {signum.name}",
        run.describe,
    )
    assert run.running(), "it exited before finishing the tick in flight"
    hooks.release(path)
    code = run.wait(20)
    assert code == 0, run.describe()
    assert "Stopped." in run.errors(), run.describe()


def drive(
    person: Person, run: Started, until: Callable[[], bool], seconds: float, what: str
) -> None:
    deadline = Deadline(seconds)
    while not until():
        assert run.running(), f"gitops-canary exited early\n{run.describe()}"
        assert not deadline.expired(), f"timed out waiting for {what}\n{run.describe()}"
        person.act()
        time.sleep(0.1)


def test_sigterm_and_sigint_finish_the_tick_in_flight_then_exit_0(tmp_path: Path) -> None:
    with (
        HoldingWebhook() as hooks,
        playground(tmp_path, with_holding_hooks(hooks.url)) as pg,
        processes(tmp_path / "logs") as procs,
    ):
        config = write_config(pg, tmp_path / "config.yaml")
        args = ("run", "--config", str(config))
        person = Person(pg)

        first = procs.start(*args)
        drive(person, first, lambda: hooks.was_called(PRE_ROLLOUT), 60, "the pre-rollout hook")
        assert last_step(pg.remote) == ("Progressing", 0), describe_remote(pg.remote)
        stop_mid_tick(first, hooks, PRE_ROLLOUT, signal.SIGTERM)
        assert last_step(pg.remote) == ("Progressing", 10), describe_remote(pg.remote)
        assert_whole_steps(pg.remote)

        second = procs.start(*args)
        drive(person, second, lambda: hooks.was_called(CONFIRM_PROMOTION), 60, "confirm-promotion")
        assert last_step(pg.remote) == ("Progressing", 50), describe_remote(pg.remote)
        stop_mid_tick(second, hooks, CONFIRM_PROMOTION, signal.SIGINT)
        assert last_step(pg.remote) == ("Promoting", 50), describe_remote(pg.remote)

        third = procs.start(*args)
        drive(person, third, lambda: succeeded(pg.remote), 40, "Succeeded")
        # Idle now (nothing left to do): the signal interrupts the wait, not a tick.
        started = time.monotonic()
        third.process.send_signal(signal.SIGTERM)
        assert third.wait(10) == 0, third.describe()
        assert time.monotonic() - started < 5, "stopping an idle loop took too long"

        assert steps(pg.remote) == list(UNDISTURBED), describe_remote(pg.remote)
        assert_whole_steps(pg.remote)
