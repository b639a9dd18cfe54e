"""Gate webhooks that time out are failed checks, as in Flagger, and at the threshold roll back.

The load tester answers the hook's command only after 4 s while the hook's timeout is 1 s:

* a ``pre-rollout`` hook: the analysis never starts; each attempt at weight 0 is one failed
  check, and the threshold (2) rolls back without ever routing traffic to the canary;
* a ``rollout`` hook: the first step (25) is taken after the pre-rollout check; each analysis
  after it fails on the hook, the weight stays, and the threshold rolls back.

Each failed check is a commit whose message names the hook and says it did not answer in time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    Step,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    last_step,
    open_rig,
    short_canary,
    source_repo,
    steps,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

COMMAND = "curl -sf http://podinfo-canary.test:9898/readyz"
THRESHOLD = 2

CASES: dict[str, tuple[str, list[Step]]] = {
    "pre-rollout": (
        "Halt podinfo.test advancement pre-rollout check acceptance failed",
        [
            ("Initializing", 0),
            ("Initialized", 0),
            ("Progressing", 0),
            ("Progressing", 0),
            ("Progressing", 0),
            ("Failed", 0),
        ],
    ),
    "rollout": (
        "Halt podinfo.test advancement external check acceptance failed",
        [
            ("Initializing", 0),
            ("Initialized", 0),
            ("Progressing", 0),
            ("Progressing", 25),
            ("Progressing", 25),
            ("Progressing", 25),
            ("Failed", 0),
        ],
    ),
}


@pytest.mark.parametrize("hook_type", sorted(CASES))
def test_gate_webhook_timing_out_is_a_failed_check(tmp_path: Path, hook_type: str) -> None:
    halt, expected = CASES[hook_type]

    def with_slow_hook(canary: dict[str, Any]) -> None:
        short_canary(threshold=THRESHOLD)(canary)
        canary["spec"]["analysis"]["webhooks"].append(
            {
                "name": "acceptance",
                "type": hook_type,
                "url": "http://flagger-loadtester.test/",
                "timeout": "1s",
                "metadata": {"type": "bash", "cmd": COMMAND},
            }
        )

    source = source_repo(tmp_path, edit_canary=with_slow_hook)
    with open_rig(tmp_path, source=source) as rig:
        assert rig.pg.loadtester is not None
        rig.pg.loadtester.set_outcome(COMMAND, delay=4.0)
        rig.drive(lambda: last_step(rig.remote) == ("Failed", 0), 150, "the rollback")

        assert steps(rig.remote) == expected, describe_remote(rig.remote)
        run = entries(rig.remote)
        story = "\n".join(f"{e.subject} | {e.summary}" for e in run)
        failed = [e for e in run if e.subject.startswith(halt)]
        assert [e.failed_checks for e in failed] == [1, 2], story
        for entry in failed:
            assert "no answer within 1s" in f"{entry.subject}\n{entry.summary}", story
        assert (
            f"failed checks threshold reached {THRESHOLD}"
            in f"{run[-1].subject}\n{run[-1].summary}"
        )
        # The hook was really called (and really slow) each time.
        calls = [t for t in rig.pg.loadtester.tasks if t.cmd == COMMAND]
        assert len(calls) >= THRESHOLD
        assert not rig.failed_ticks, rig.describe()
        assert_steps_whole(rig.remote)
        assert_fast_forward_only(rig.remote)
