"""The git remote slow, then unreachable: ticks fail and are retried, nothing is lost.

The bare remote's ``pre-receive`` hook sleeps 1 s on every push (a slow git server) for the whole
rollout. When the weight-25 step lands, the remote disappears for 6 s (two analysis intervals,
so a step falls due meanwhile): every tick fails as a whole, readiness says why, and nothing is
committed anywhere. When the remote is back, the next tick continues from what git says and the
run ends exactly as an undisturbed one, every earlier commit still on the branch.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from fault_helpers import (
    SHORT_RUN,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    last_step,
    open_rig,
    reachable,
    short_canary,
    source_repo,
    steps,
    tip,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(200)]

OUTAGE_SECONDS = 6.0
SLOW_HOOK = """#!{python}
import sys, time
sys.stdin.read()
started = time.time()
time.sleep(1.0)
with open({log!r}, "a") as log:
    log.write(f"{{started:.3f}} {{time.time():.3f}}\\n")
"""


def test_slow_then_unreachable_remote_loses_nothing(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    source = source_repo(tmp_path, edit_canary=short_canary())
    with open_rig(tmp_path, source=source) as rig:
        pushes = tmp_path / "pushes.log"
        hook = rig.remote / "hooks" / "pre-receive"
        hook.write_text(SLOW_HOOK.format(python=sys.executable, log=str(pushes)))
        hook.chmod(0o755)

        rig.until_step(("Progressing", 25), 90)
        before = tip(rig.remote)
        kept = reachable(rig.remote)
        away = rig.remote.with_name("remote-away.git")
        rig.remote.rename(away)
        try:
            opened = rig.now()
            rig.hold(OUTAGE_SECONDS)
            closed = rig.now()
            ready, reason = rig.health.get()
        finally:
            away.rename(rig.remote)

        during = [at for at in rig.failed_ticks if opened <= at <= closed]
        assert len(during) >= 3, rig.describe()
        assert not rig.outcomes_between(opened, closed), "no canary is handled without the repo"
        assert not ready
        assert str(rig.remote) in reason, reason
        assert "does not appear to be a git repository" in reason, reason
        assert tip(rig.remote) == before

        rig.drive(lambda: last_step(rig.remote) == ("Succeeded", 0), 90, "success after the outage")

        assert steps(rig.remote) == SHORT_RUN, describe_remote(rig.remote)
        assert kept <= reachable(rig.remote), "a commit made before the outage is gone"
        assert set(rig.pushed) <= reachable(rig.remote)
        assert rig.health.get() == (True, "")
        assert not [t for t in rig.failed_ticks if not opened <= t <= closed + 1], rig.describe()
        # The loop logged each failed tick with the reason.
        failures = [
            r.getMessage()
            for r in logs.records
            if r.levelno >= logging.ERROR and r.getMessage().startswith("Tick failed:")
        ]
        assert len(failures) >= len(during)
        # Every push of ours went through the slow hook (and each took over a second).
        spans = [line.split() for line in pushes.read_text().splitlines()]
        ours = [e for e in entries(rig.remote) if e.sha not in kept or e.sha == before]
        assert len(spans) >= len(ours)
        assert all(float(end) - float(start) >= 1.0 for start, end in spans)
        assert_steps_whole(rig.remote)
        assert_fast_forward_only(rig.remote)
