"""The measurements for one generated repository, each next to its git baseline.

Owns driving a real :class:`~gitops_canary.reconciler.Reconciler` (real git, real discovery,
engine, renderer and writer; fake cluster, applier, Prometheus and webhooks, see
:mod:`benchmarks.fakes`) through the ticks the benchmark times, and timing the plain-git
baselines in the same process, interleaved with the measurements so that load from other
processes on the machine affects both alike. Run as ``python -m benchmarks.scenario`` by
:mod:`benchmarks.run`, so that the peak RSS reported is that of a process doing only this.

Ticks measured, in order:

1. *cold*: the first tick of a new process (clone exists, nothing cached), every canary
   evaluated and waiting for the applier;
2. *idle, evaluated*: nothing changed in git, every canary due again (one poll later) and
   evaluated, still waiting for the applier to apply its last commit;
3. *idle, nothing due*: nothing changed in git and no canary due (the usual poll);
4. *one step*: only ``app-0000`` may advance; the step from its decision to its pushed commit
   is timed through the push port, against a plain ``git add/commit/push`` of the same files;
5. *advance all*: the analysis interval elapsed for every canary: every one advances by a step;
6. *after the advance*: the next idle tick, which reads the N new commits.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.fakes import (
    Applier,
    PassingHooks,
    PassingMetrics,
    ReadyCluster,
    SteppingClock,
    no_notifications,
)
from benchmarks.generator import BRANCH, INTERVAL, PATHS, PROVIDER, STEP_AGE, app_dir
from gitops_canary.config import Config, parse_config
from gitops_canary.reconciler import Reconciler, TickReport
from gitops_canary.repo.discovery import Discovery, ParseCache, discover
from gitops_canary.repo.gitrepo import GitRepo, Identity
from gitops_canary.repo.pushing import Produce, commit_and_push
from gitops_canary.telemetry import Recorder

POLL = timedelta(seconds=5)
#: Steps app-0000 takes alone, then ticks in which every canary advances: from the generated
#: weight, 5 + 5 + 3 steps of 5 stay within maxWeight 50, so every step is a traffic step.
STEPS = 5
ADVANCES = 3


@dataclass
class Samples:
    """Wall-clock seconds of repeated runs of one thing."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": min(self.values, default=float("nan")),
            "max_s": max(self.values, default=float("nan")),
            "samples": len(self.values),
            "values_s": list(self.values),
        }


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {result.stderr.strip()}")
    return result.stdout


# --------------------------------------------------------------------------- baselines


class Baselines:
    """What plain git takes for the same work, on the same remote."""

    def __init__(self, remote: Path, scratch: Path) -> None:
        self.remote = remote
        self.scratch = scratch
        self.reader = scratch / "baseline-reader"
        self.writer = scratch / "baseline-writer"
        for clone in (self.reader, self.writer):
            git(scratch, "clone", "-q", "--no-tags", "-b", BRANCH, str(remote), str(clone))
        for key, value in (("user.name", "Bench Person"), ("user.email", "bench@example.org")):
            git(self.writer, "config", key, value)
        git(self.writer, "config", "commit.gpgSign", "false")
        self._pushes = 0
        self._clones = 0

    def fetch_and_list(self) -> float:
        """``git fetch`` (nothing new) plus ``git ls-tree -r`` of the branch."""

        def run() -> None:
            git(self.reader, "fetch", "-q", "--no-tags", "origin", BRANCH)
            git(self.reader, "ls-tree", "-r", "-z", f"origin/{BRANCH}")

        return timed(run)

    def shallow_clone(self) -> float:
        """A fresh ``git clone --depth 1`` with checkout, as Flux image automation does.

        Each into a directory of its own, all removed by :meth:`close`: deleting thousands of
        files between samples slows the next clone down (the disk catches up), which would
        flatter the comparison."""
        self._clones += 1
        target = self.scratch / f"baseline-shallow-{self._clones}"
        return timed(
            lambda: git(
                self.scratch,
                "clone",
                "-q",
                "--no-tags",
                "--depth=1",
                "--single-branch",
                "-b",
                BRANCH,
                f"file://{self.remote}",
                str(target),
            )
        )

    def close(self) -> None:
        for number in range(1, self._clones + 1):
            shutil.rmtree(self.scratch / f"baseline-shallow-{number}", ignore_errors=True)

    def commit_and_push(self, sha: str) -> float:
        """Write the files commit ``sha`` changed, then ``git add``, ``commit``, ``push``.

        On top of ``sha``'s parent, to a branch of its own on the same remote.
        """
        git(self.writer, "fetch", "-q", "--no-tags", "origin", BRANCH)
        git(self.writer, "reset", "-q", "--hard", f"{sha}^")
        changed = [
            p
            for p in git(self.writer, "diff", "--name-only", "-z", f"{sha}^", sha).split("\0")
            if p
        ]
        contents = {p: self._show(sha, p) for p in changed}
        self._pushes += 1
        branch = f"baseline-{self._pushes}"

        def run() -> None:
            for path, content in contents.items():
                target = self.writer / path
                if content is None:
                    target.unlink()
                else:
                    target.write_bytes(content)
            git(self.writer, "add", "--all", "--", *changed)
            git(self.writer, "commit", "-q", "-m", f"Baseline step {self._pushes}")
            git(self.writer, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")

        seconds = timed(run)
        git(self.writer, "push", "-q", "origin", f":refs/heads/{branch}")
        return seconds

    def _show(self, sha: str, path: str) -> bytes | None:
        result = subprocess.run(
            ["git", "show", f"{sha}:{path}"], cwd=self.writer, capture_output=True, check=False
        )
        return result.stdout if result.returncode == 0 else None


# --------------------------------------------------------------------------- the reconciler


class TimedPush:
    """The push port, timed: from the decision to the pushed commit(s) of one tick."""

    #: It is commit_and_push, so the reconciler may give it all the steps of a tick at once.
    batches = True

    def __init__(self) -> None:
        self.last_seconds = 0.0

    def __call__(self, repo: GitRepo, produce: Produce, **options: Any) -> str | None:
        started = time.perf_counter()
        try:
            return commit_and_push(repo, produce, **options)
        finally:
            self.last_seconds += time.perf_counter() - started


@dataclass
class Bench:
    reconciler: Reconciler
    repo: GitRepo
    clock: SteppingClock
    applier: Applier
    push: TimedPush
    cache: ParseCache


def bench_config(remote: Path, workdir: Path) -> Config:
    return parse_config(
        {
            "repository": {
                "url": str(remote),
                "branch": BRANCH,
                "paths": list(PATHS),
                "workdir": str(workdir),
                "author": {"name": "gitops-canary", "email": "gitops-canary@example.org"},
            },
            # Never contacted: the benchmark gives the reconciler a fake cluster reader.
            "cluster": {"inCluster": True},
            "defaults": {"provider": PROVIDER},
            "timing": {"poll": f"{int(POLL.total_seconds())}s"},
            "metrics": {"enabled": False},
        },
        "<benchmark>",
        env={},
    )


def build_bench(config: Config, created: datetime) -> Bench:
    """The reconciler as ``cli.wiring.build`` wires it, with the fakes for the outside world."""
    person = Identity(config.repository.author.name, config.repository.author.email)
    repo = GitRepo.open_or_clone(
        config.repository.url,
        config.repository.branch,
        config.repository.workdir,
        author=person,
        committer=person,
    )
    cache = ParseCache()

    def run_discovery(root: Path) -> Discovery:
        return discover(
            root, config.repository.paths, default_provider=config.defaults.provider, cache=cache
        )

    clock = SteppingClock(created)
    applier = Applier(applied_at=created - STEP_AGE - timedelta(days=1))
    push = TimedPush()
    reconciler = Reconciler(
        config,
        repo=repo,
        discover=run_discovery,
        cluster=ReadyCluster(),
        applier_for=applier.applier_for,
        metrics=PassingMetrics(),
        hooks=PassingHooks(),
        notify=no_notifications,
        push=push,
        recorder=Recorder(),
        clock=clock,
    )
    return Bench(reconciler, repo, clock, applier, push, cache)


def kinds(report: TickReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
    return counts


def expect(report: TickReport, what: str, **wanted: int) -> None:
    """Fail loudly when a tick did not do what the measurement assumes."""
    got = kinds(report)
    for kind, count in wanted.items():
        if got.get(kind, 0) != count:
            errors = [o.message for o in report.outcomes if o.kind == "error"][:3]
            raise RuntimeError(f"{what}: expected {wanted}, got {got}; errors: {errors}")


def run_tick(bench: Bench) -> tuple[float, TickReport]:
    holder: list[TickReport] = []
    seconds = timed(lambda: holder.append(bench.reconciler.tick()))
    return seconds, holder[0]


# --------------------------------------------------------------------------- the scenario


def measure(
    remote: Path, scratch: Path, count: int, created: datetime, repeats: int
) -> dict[str, Any]:
    results: dict[str, Any] = {"count": count}
    baselines = Baselines(remote, scratch)
    config = bench_config(remote, scratch / "reconciler")
    holder: list[Bench] = []
    clone_seconds = timed(lambda: holder.append(build_bench(config, created)))
    bench = holder[0]
    results["clone_s"] = clone_seconds
    all_dirs = {app_dir(i) for i in range(count)}

    # 1. cold
    bench.applier.pending = None
    seconds, report = run_tick(bench)
    expect(report, "cold tick", wait=count)
    results["cold_tick_s"] = seconds

    # 2 and 3. idle ticks and their baselines, interleaved.
    evaluated, not_due = Samples(), Samples()
    fetch_list, shallow = Samples(), Samples()
    for _ in range(repeats):
        fetch_list.add(baselines.fetch_and_list())
        bench.clock.advance(POLL)
        seconds, report = run_tick(bench)
        expect(report, "idle tick (evaluated)", wait=count)
        evaluated.add(seconds)
        shallow.add(baselines.shallow_clone())
        seconds, report = run_tick(bench)
        expect(report, "idle tick (nothing due)", **{"not-due": count})
        not_due.add(seconds)
    results["baseline_fetch_ls_tree"] = fetch_list.summary()
    results["baseline_shallow_clone"] = shallow.summary()
    results["idle_tick_evaluated"] = evaluated.summary()
    results["idle_tick_not_due"] = not_due.summary()

    # 4. one step: only app-0000 is applied, so only it may advance. At most STEPS steps, so
    # that it is still analysing (not promoting) when every canary advances below.
    step, step_tick, bare = Samples(), Samples(), Samples()
    bench.applier.pending = all_dirs - {app_dir(0)}
    for _ in range(min(repeats, STEPS)):
        bench.clock.advance(INTERVAL)
        bench.push.last_seconds = 0.0
        seconds, report = run_tick(bench)
        expect(report, "one-step tick", commit=1, wait=count - 1)
        step_tick.add(seconds)
        step.add(bench.push.last_seconds)
        bare.add(baselines.commit_and_push(report.commits[0]))
    results["step_decision_to_push"] = step.summary()
    results["step_tick"] = step_tick.summary()
    results["baseline_commit_push"] = bare.summary()

    # 5. advance all, 6. the idle tick after it.
    bench.applier.pending = set()
    advance, after = Samples(), Samples()
    pushed: list[int] = []
    for _ in range(1 if count >= 1000 else min(ADVANCES, repeats)):
        bench.clock.advance(INTERVAL)
        before = git(remote, "rev-parse", BRANCH).strip()
        seconds, report = run_tick(bench)
        expect(report, "advance-all tick", commit=count)
        pushed.append(int(git(remote, "rev-list", "--count", BRANCH, f"^{before}")))
        if pushed[-1] != count:
            raise RuntimeError(f"advance-all tick: {pushed[-1]} commits reached the remote")
        advance.add(seconds)
        seconds, report = run_tick(bench)
        expect(report, "tick after the advance", **{"not-due": count})
        after.add(seconds)
    results["advance_all"] = advance.summary()
    results["advance_all_commits"] = min(pushed)
    results["advance_all_commits_per_s"] = count / advance.median
    results["tick_after_advance"] = after.summary()
    results["parses"] = bench.cache.parses
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    bench.repo.close()
    baselines.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--remote", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--created", required=True, help="ISO time the generator returned")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results = measure(
        args.remote,
        args.scratch,
        args.count,
        datetime.fromisoformat(args.created),
        max(1, args.repeats),
    )
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
