"""Commit messages (DESIGN D7): subject, analysis body, trailers, and reading trailers back."""

from __future__ import annotations

from test_engine_support import make_canary

from gitops_canary.core.decisions import Event, EventType
from gitops_canary.core.messages import commit_message, format_value, parse_trailers
from gitops_canary.core.status import CanaryStatus, CheckRecord, Phase

CANARY = make_canary()


def _status(message: str, **fields: object) -> CanaryStatus:
    base: dict[str, object] = {
        "phase": Phase.PROGRESSING,
        "canary_weight": 20,
        "failed_checks": 1,
        "last_applied_spec": "5f0c3a1e9b2d4c6a",
        "message": message,
    }
    base.update(fields)
    return CanaryStatus.model_validate(base)


def test_step_message_lists_checks_events_and_trailers() -> None:
    checks = [
        CheckRecord(name="load-test", kind="webhook", ok=True, hook_type="rollout"),
        CheckRecord(name="error-rate", kind="metric", ok=True, value=0.0, threshold="max 1"),
        CheckRecord(name="latency", kind="metric", ok=True, value=0.231, threshold="max 0.5"),
    ]
    events = [
        Event(EventType.NORMAL, "Confirm-traffic-increase check gate passed"),
        Event(EventType.NORMAL, "Advance podinfo.test canary weight 20"),
    ]
    message = commit_message(
        CANARY, _status("Advance podinfo.test canary weight 20"), events, checks
    )
    assert message == (
        "Advance podinfo.test canary weight 20\n"
        "\n"
        "rollout load-test: ok\n"
        "error-rate: 0.00 (max 1) ok\n"
        "latency: 0.231 (max 0.5) ok\n"
        "Confirm-traffic-increase check gate passed\n"
        "\n"
        "Canary: test/podinfo\n"
        "Canary-Phase: Progressing\n"
        "Canary-Weight: 20\n"
        "Canary-Revision: 5f0c3a1e9b2d4c6a\n"
        "Canary-Failed-Checks: 1\n"
    )
    assert parse_trailers(message) == {
        "Canary": "test/podinfo",
        "Canary-Phase": "Progressing",
        "Canary-Weight": "20",
        "Canary-Revision": "5f0c3a1e9b2d4c6a",
        "Canary-Failed-Checks": "1",
    }


def test_failures_are_marked_and_long_subjects_cut() -> None:
    long = "Halt podinfo.test advancement external check load-test failed " + "<html>x</html> " * 20
    checks = [
        CheckRecord(name="load-test", kind="webhook", ok=False, message="<html>x</html>\n" * 30,
                    hook_type="rollout"),
        CheckRecord(name="error-rate", kind="metric", ok=False, value=69.17, threshold="max 1",
                    message="Halt podinfo.test advancement error-rate 69.17 > 1"),
        CheckRecord(name="latency", kind="metric", ok=False, value=None, threshold="max 0.5",
                    message="Halt advancement no values found for custom metric: latency"),
        CheckRecord(name="plain", kind="webhook", ok=False),
    ]  # fmt: skip
    message = commit_message(CANARY, _status(long), [Event(EventType.WARNING, long)], checks)
    lines = message.splitlines()
    assert len(lines[0]) == 72
    assert lines[0].endswith("...")
    assert lines[2] == " ".join(long.split())  # the full main event opens the body
    assert lines[3].startswith("rollout load-test: FAILED: <html>x</html> <html>")
    assert len(lines[3]) < 240
    assert lines[4] == "error-rate: 69.17 (max 1) FAILED"
    assert lines[5] == (
        "latency: no value (max 0.5) FAILED: "
        "Halt advancement no values found for custom metric: latency"
    )
    assert lines[6] == "plain: FAILED"
    assert long.strip() not in lines[7:]


def test_message_without_main_event_or_phase() -> None:
    message = commit_message(CANARY, CanaryStatus(), [], [])
    assert message.startswith(
        "Update canary podinfo.test\n\nCanary: test/podinfo\nCanary-Phase: \n"
    )


def test_parse_trailers_needs_a_trailer_paragraph() -> None:
    assert parse_trailers("Just a subject") == {}
    assert parse_trailers("Subject\n\nbody text that is not a trailer\n") == {}
    assert parse_trailers("Subject\n\nbody\n\nCanary: a/b\nnot a trailer\n") == {}


def test_format_value() -> None:
    assert [format_value(v) for v in (0.0, 1.0, 69.1749, 0.231, 0.0004567, -2.5)] == [
        "0.00", "1.00", "69.17", "0.231", "0.000457", "-2.50",
    ]  # fmt: skip
