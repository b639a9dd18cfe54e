"""Side channels that fail do not change a rollout: a notification sink down, an event webhook
timing out.

The canary sends every alert (severity ``info``) to a Slack AlertProvider whose address is a
loopback port nothing listens on, and posts every event to an ``event`` webhook that answers only
after 3 s while its timeout is 500 ms. The rollout commits exactly the steps of an undisturbed run;
each failed delivery is one warning in the log naming the alert or webhook, never a token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    BOT,
    SHORT_RUN,
    HttpStandIn,
    assert_fast_forward_only,
    assert_steps_whole,
    closed_port,
    describe_remote,
    entries,
    log_lines,
    open_rig,
    short_canary,
    source_repo,
    steps,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PROVIDER = """\
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
  namespace: test
spec:
  type: slack
  channel: on-call
  address: http://127.0.0.1:{port}/services/T000/B000/XXXX
"""


def test_rollout_is_unaffected_by_a_sink_down_and_an_event_webhook_timing_out(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    sink_port = closed_port()
    events = HttpStandIn().start()
    events.set_mode("stall", stall_seconds=3.0)

    def with_side_channels(canary: dict[str, Any]) -> None:
        short_canary()(canary)
        analysis = canary["spec"]["analysis"]
        analysis["alerts"] = [
            {"name": "on-call", "severity": "info", "providerRef": {"name": "on-call"}}
        ]
        analysis["webhooks"].append(
            {"name": "audit", "type": "event", "url": f"{events.url}/events", "timeout": "500ms"}
        )

    source = source_repo(
        tmp_path,
        edit_canary=with_side_channels,
        files={"apps/podinfo/alert-provider.yaml": PROVIDER.format(port=sink_port)},
    )
    try:
        with open_rig(tmp_path, source=source) as rig:
            rig.until_step(("Succeeded", 0), 150)

            assert steps(rig.remote) == SHORT_RUN, describe_remote(rig.remote)
            assert {e.author for e in entries(rig.remote)} == {BOT}
            assert_steps_whole(rig.remote)
            assert_fast_forward_only(rig.remote)
            assert not rig.failed_ticks, rig.describe()
            assert not [o for _, o in rig.outcomes if o.kind == "error"], rig.describe()

            # Initialized, New revision, Promotion completed: info alerts, none delivered.
            recent = "\n".join(r.getMessage() for r in logs.records[-40:])
            alerts = log_lines(logs.records, "alert on-call via AlertProvider test/on-call failed")
            assert len(alerts) >= 3, recent
            assert all(f"cannot reach http://127.0.0.1:{sink_port}/…" in line for line in alerts)
            # Every committed step has events; each post timed out and was logged.
            timeouts = log_lines(logs.records, "event webhook audit of test/podinfo failed")
            assert len(timeouts) >= len(SHORT_RUN), recent
            assert events.count("stall") >= len(timeouts)
            # The Slack webhook path holds a token: it is never logged.
            assert not log_lines(logs.records, "XXXX")
    finally:
        events.stop()
