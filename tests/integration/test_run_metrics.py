"""``/metrics``, ``/healthz`` and ``/readyz`` of ``gitops-canary run`` during a real rollout.

The gauges and counters carry Flagger's names and labels (flagger-behaviour.md §7.1), so existing
dashboards and alerts keep working: at every committed step the status gauge (0 Progressing,
1 any other phase) and the two weight series match the status in git, and a successful run adds
one to ``flagger_canary_successes_total``.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from run_helpers import (
    UNDISTURBED,
    Deadline,
    Person,
    describe_remote,
    http_get,
    last_step,
    playground,
    processes,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    code, body = http_get(f"{base}/metrics")
    assert code == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def flagger_view(samples: Samples) -> dict[str, float | None]:
    return {
        "status": value(samples, "flagger_canary_status", name="podinfo", namespace="test"),
        "canary": value(samples, "flagger_canary_weight", workload="podinfo", namespace="test"),
        "primary": value(
            samples, "flagger_canary_weight", workload="podinfo-primary", namespace="test"
        ),
        "total": value(samples, "flagger_canary_total", namespace="test"),
    }


def expected_view(phase: str, weight: int) -> dict[str, float | None]:
    status = {"Progressing": 0.0, "Failed": 2.0}.get(phase, 1.0)
    return {"status": status, "canary": weight, "primary": 100 - weight, "total": 1.0}


def test_metrics_follow_the_committed_status(tmp_path: Path) -> None:
    with playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        metrics = {"enabled": True, "address": "127.0.0.1", "port": 0}
        config = write_config(pg, tmp_path / "config.yaml", metrics=metrics)
        run = procs.start("run", "--config", str(config))
        serving = re.compile(r"Serving /metrics, /healthz and /readyz on 127\.0\.0\.1:(\d+)")
        wait_until(
            lambda: serving.search(run.errors()) is not None, 20, "the endpoint", run.describe
        )
        match = serving.search(run.errors())
        assert match is not None
        base = f"http://127.0.0.1:{match.group(1)}"

        assert http_get(f"{base}/healthz") == (200, "ok\n")
        # Ready once a tick has reached the repository (and not before: that tick ends with
        # the last-tick timestamp set).
        wait_until(lambda: http_get(f"{base}/readyz") == (200, "ok\n"), 20, "/readyz", run.describe)
        assert (value(scrape(base), "gitops_canary_last_tick_timestamp_seconds") or 0) > 0

        # At each committed step (all of DESIGN §2), Flagger's series agree with the status in
        # git. The remote is read before and after each scrape so a step landing in between is
        # not misjudged.
        person = Person(pg)
        wanted = set(UNDISTURBED)
        agreed: set[tuple[str, int]] = set()
        disagreed: dict[tuple[str, int], dict[str, float | None]] = {}
        deadline = Deadline(120)
        while not wanted <= agreed:
            assert run.running(), run.describe()
            assert not deadline.expired(), (
                f"series never matched the status at {sorted(wanted - agreed)}; last seen "
                f"{disagreed}\n{describe_remote(pg.remote)}"
            )
            person.act()
            before = last_step(pg.remote)
            samples = scrape(base)
            if before is None or before != last_step(pg.remote) or before in agreed:
                time.sleep(0.1)
                continue
            phase, weight = before
            assert phase is not None
            assert weight is not None
            seen = flagger_view(samples)
            if seen == expected_view(phase, weight):
                agreed.add((phase, weight))
            else:
                disagreed[(phase, weight)] = seen
            time.sleep(0.1)

        assert last_step(pg.remote) == ("Succeeded", 0)
        samples = scrape(base)
        success = {
            "name": "podinfo",
            "namespace": "test",
            "deployment_strategy": "canary",
            "analysis_status": "completed",
        }
        assert value(samples, "flagger_canary_successes_total", **success) == 1.0
        assert value(samples, "flagger_canary_failures_total", **success) is None
        assert value(samples, "gitops_canary_commits_total", namespace="test", name="podinfo") == 11
        assert http_get(f"{base}/readyz") == (200, "ok\n")

        run.process.send_signal(signal.SIGINT)
        assert run.wait(10) == 0, run.describe()
