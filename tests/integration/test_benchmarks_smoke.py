"""The benchmark runs end to end at N=10 (speed targets live in the benchmark, not here).

It runs ``python -m benchmarks.run`` the way the README does, on a generated monorepo of 10
apps in a local bare remote, and checks what every figure rests on: the generated canaries
were valid, the ticks did what the measurements assume (an idle tick commits nothing, the
"advance all" tick made one commit per canary), and the report has every figure with its
baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SIZE = 10


def test_benchmark_runs_at_ten_apps(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.run",
            "--sizes", str(SIZE), "--repeats", "1", "--out", str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr

    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (figures,) = report["sizes"]
    assert figures["count"] == SIZE
    # The scenario checks each tick's outcomes and fails otherwise; these are the totals.
    assert figures["advance_all_commits"] == SIZE
    for name in (
        "idle_tick_not_due",
        "idle_tick_evaluated",
        "baseline_fetch_ls_tree",
        "baseline_shallow_clone",
        "step_decision_to_push",
        "baseline_commit_push",
        "advance_all",
        "tick_after_advance",
    ):
        assert figures[name]["samples"] >= 1, name
        assert figures[name]["median_s"] > 0, name
    assert set(figures["ratios"]) >= {
        "idle_not_due_vs_fetch_ls_tree",
        "shallow_clone_vs_idle_not_due",
        "step_vs_commit_push",
    }
    assert figures["peak_rss_bytes"] > 0
    assert report["targets"] == []  # targets are stated for N=1000 only
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| idle tick, nothing due |" in summary
    assert summary == completed.stdout
