"""``python -m benchmarks.run``: generate the monorepos, measure, compare with the targets.

Owns the benchmark's command line and its report. For each size it generates a monorepo
(:mod:`benchmarks.generator`), runs :mod:`benchmarks.scenario` in a fresh process (so its peak
RSS is the reconciler's own), turns the medians into ratios against the git baselines measured
in the same process, and checks them against the targets. It writes ``results.json`` (every
sample) and ``summary.md`` (the table ``docs/performance.md`` quotes) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.generator import generate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "out"
#: The size the targets are stated for.
TARGET_SIZE = 1000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    figure: str
    wanted: str
    value: float
    met: bool


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000", help="apps per monorepo, comma-separated")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--repeats", type=int, default=5, help="samples per figure")
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--sizes: expected numbers like 10,100,1000, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: every size must be at least 1")

    machine = describe_machine()
    results: list[dict[str, Any]] = []
    for size in sizes:
        print(f"N={size}: generating the monorepo ...", file=sys.stderr, flush=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"gitops-canary-bench-{size}-"))
        try:
            started = time.perf_counter()
            generated = generate(scratch / "generated", size)
            generation = time.perf_counter() - started
            print(f"N={size}: measuring ...", file=sys.stderr, flush=True)
            measured = run_scenario(
                generated.remote, scratch, size, generated.created.isoformat(), args.repeats
            )
            measured["generation_s"] = generation
            measured["ratios"] = ratios(measured)
            results.append(measured)
        finally:
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)
    machine["load_average_after"] = os.getloadavg()
    targets = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "sizes": results, "targets": [t.__dict__ for t in targets]}
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = render_summary(machine, results, targets)
    (args.out / "summary.md").write_text(summary, encoding="utf-8")
    sys.stdout.write(summary)
    return 0


def run_scenario(
    remote: Path, scratch: Path, count: int, created: str, repeats: int
) -> dict[str, Any]:
    """:mod:`benchmarks.scenario` in a process of its own; its JSON answer."""
    command = [
        sys.executable, "-m", "benchmarks.scenario",
        "--remote", str(remote), "--scratch", str(scratch), "--count", str(count),
        "--created", created, "--repeats", str(repeats),
    ]  # fmt: skip
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=6 * 3600
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"benchmark at N={count} failed (exit {completed.returncode}):\n{completed.stderr}"
        )
    answer: dict[str, Any] = json.loads(completed.stdout)
    return answer


def ratios(measured: dict[str, Any]) -> dict[str, float]:
    def median(name: str) -> float:
        return float(measured[name]["median_s"])

    return {
        "idle_not_due_vs_fetch_ls_tree": median("idle_tick_not_due")
        / median("baseline_fetch_ls_tree"),
        "shallow_clone_vs_idle_not_due": median("baseline_shallow_clone")
        / median("idle_tick_not_due"),
        "idle_evaluated_vs_fetch_ls_tree": median("idle_tick_evaluated")
        / median("baseline_fetch_ls_tree"),
        "shallow_clone_vs_idle_evaluated": median("baseline_shallow_clone")
        / median("idle_tick_evaluated"),
        "step_vs_commit_push": median("step_decision_to_push") / median("baseline_commit_push"),
    }


def check_targets(results: list[dict[str, Any]]) -> list[Target]:
    at_target = [r for r in results if r["count"] == TARGET_SIZE]
    if not at_target:
        return []
    figures = at_target[0]
    r = figures["ratios"]
    advance = float(figures["advance_all"]["median_s"])
    rss = figures["peak_rss_bytes"] / MIB
    return [
        Target("idle tick vs fetch + ls-tree", "ratio", "<= 2x",
               r["idle_not_due_vs_fetch_ls_tree"], r["idle_not_due_vs_fetch_ls_tree"] <= 2),
        Target("shallow clone vs idle tick", "ratio", ">= 5x",
               r["shallow_clone_vs_idle_not_due"], r["shallow_clone_vs_idle_not_due"] >= 5),
        Target("one step vs git commit + push", "ratio", "<= 3x",
               r["step_vs_commit_push"], r["step_vs_commit_push"] <= 3),
        Target("advance all canaries", "seconds", "< 60 s", advance, advance < 60),
        Target("peak RSS", "MiB", "< 300 MiB", rss, rss < 300),
    ]  # fmt: skip


def describe_machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    git_version = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "git": git_version,
        "platform": platform.platform(),
        "load_average_before": os.getloadavg(),
    }


def render_summary(
    machine: dict[str, Any], results: list[dict[str, Any]], targets: list[Target]
) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"

    def med(row: dict[str, Any], name: str) -> str:
        return ms(float(row[name]["median_s"]))

    lines = [
        "# gitops-canary benchmark",
        "",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), "
        f"Python {machine['python']}, {machine['git']}; load average "
        f"{_load(machine['load_average_before'])} before, "
        f"{_load(machine.get('load_average_after'))} after.",
        "",
        "Medians of the samples (see results.json for every sample).",
        "",
        "| figure | " + " | ".join(f"N={r['count']}" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    rows: list[tuple[str, Any]] = [
        ("idle tick, nothing due", lambda r: med(r, "idle_tick_not_due")),
        ("baseline: git fetch + git ls-tree -r", lambda r: med(r, "baseline_fetch_ls_tree")),
        ("  ratio (target <= 2x at N=1000)",
         lambda r: f"{r['ratios']['idle_not_due_vs_fetch_ls_tree']:.2f}x"),
        ("baseline: git clone --depth 1", lambda r: med(r, "baseline_shallow_clone")),
        ("  clone / idle tick (target >= 5x at N=1000)",
         lambda r: f"{r['ratios']['shallow_clone_vs_idle_not_due']:.1f}x"),
        ("idle tick, every canary evaluated", lambda r: med(r, "idle_tick_evaluated")),
        ("  ratio to fetch + ls-tree",
         lambda r: f"{r['ratios']['idle_evaluated_vs_fetch_ls_tree']:.2f}x"),
        ("one step, decision to pushed commit", lambda r: med(r, "step_decision_to_push")),
        ("baseline: git add + commit + push", lambda r: med(r, "baseline_commit_push")),
        ("  ratio (target <= 3x at N=1000)",
         lambda r: f"{r['ratios']['step_vs_commit_push']:.2f}x"),
        ("whole tick with that one step", lambda r: med(r, "step_tick")),
        ("advance all N canaries one step (one tick)", lambda r: med(r, "advance_all")),
        ("  commits per second", lambda r: f"{r['advance_all_commits_per_s']:.0f}"),
        ("next tick (reads the N new commits)", lambda r: med(r, "tick_after_advance")),
        ("first tick of a new process (cold)", lambda r: ms(float(r["cold_tick_s"]))),
        ("peak RSS of the reconciler process", lambda r: f"{r['peak_rss_bytes'] / MIB:.0f} MiB"),
        ("generating the monorepo (not measured)", lambda r: ms(float(r["generation_s"]))),
    ]  # fmt: skip
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    if targets:
        lines += ["", f"Targets at N={TARGET_SIZE}:", "", "| target | wanted | measured | met |"]
        lines.append("|---|---|---|---|")
        for target in targets:
            value = f"{target.value:.2f}" if target.figure == "ratio" else f"{target.value:.1f}"
            unit = "x" if target.figure == "ratio" else f" {target.figure}"
            lines.append(
                f"| {target.name} | {target.wanted} | {value}{unit} | "
                f"{'yes' if target.met else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def _load(value: Any) -> str:
    if not value:
        return "?"
    return "/".join(f"{v:.1f}" for v in value)


if __name__ == "__main__":
    raise SystemExit(main())
