"""Eight people push 200 commits to the branch during a full rollout (DESIGN D5).

Once the new revision is detected, eight processes (``human_writer.py``) each push 25 small
commits to ``main`` at random moments. Two of them also work in the canary's own app directory:
a note each, a note both edit, and comment lines appended to the Deployment file gitops-canary
edits too; the others change files outside the apps. A rejected writer redoes its edit on the new
tip. The remote refuses non-fast-forward pushes and keeps a reflog of ``main``.

The rollout commits exactly the steps of an undisturbed run, each once; every human commit and
every commit gitops-canary reported as pushed is on the branch; every update of the branch was a
fast-forward; the people's lines in the Deployment file survived gitops-canary's edits; human
commits landed between the rollout's steps, and gitops-canary lost push races and recomputed.

While the writers push several commits a second the analysis mostly waits: a commit to the
canary's directory must be applied before the next step is judged (D4); the second test checks
that commits arriving faster than the interval do not postpone the analysis.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    APP_DIR,
    BOT,
    FULL_RUN,
    Defect,
    assert_fast_forward_only,
    assert_steps_whole,
    describe_remote,
    entries,
    flux_applied,
    last_step,
    open_rig,
    reachable,
    short_canary,
    source_repo,
    steps,
    tip,
    wait_until,
)

from gitops_canary.playground import git
from gitops_canary.reconciler import TickReport

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(330)]

WRITERS = 8
COMMITS_EACH = 25
#: Writers whose commits also touch the canary's app directory.
IN_APP_WRITERS = 2
WRITER = Path(__file__).with_name("human_writer.py")


def test_eight_writers_and_200_commits_do_not_change_the_rollout(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    with open_rig(tmp_path) as rig:
        # The writers start once Dana has deployed the new version and the run has begun: from
        # then on every step is gitops-canary's, and the first one is due within seconds.
        rig.until_step(("Progressing", 0), 90)
        writers: list[subprocess.Popen[str]] = []
        try:
            for worker in range(WRITERS):
                command = [sys.executable, str(WRITER), "--worker", str(worker)]
                command += ["--remote", str(rig.remote), "--clone", str(tmp_path / f"w{worker}")]
                command += ["--commits", str(COMMITS_EACH), "--seed", "7", "--seconds", "200"]
                command += ["--pause", "0.1", "0.6"]
                if worker < IN_APP_WRITERS:
                    command.append("--in-app")
                writers.append(
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    )
                )
            rig.drive(lambda: last_step(rig.remote) == ("Succeeded", 0), 250, "success")
            wait_until(
                lambda: all(w.poll() is not None for w in writers), 30, "the writers to finish"
            )
            outputs = [w.communicate(timeout=10) for w in writers]
        finally:
            for writer in writers:
                with contextlib.suppress(ProcessLookupError):
                    writer.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    writer.wait(timeout=10)

        problems = [f"writer {i}: exit {w.returncode}: {e}" for i, (w, (_, e)) in
                    enumerate(zip(writers, outputs, strict=True)) if w.returncode]  # fmt: skip
        assert not problems, problems
        human = [sha for out, _ in outputs for sha in out.split()]
        assert len(human) == WRITERS * COMMITS_EACH
        assert len(set(human)) == len(human)

        # The rollout: exactly the undisturbed steps, each once, all of them gitops-canary's.
        assert steps(rig.remote) == FULL_RUN, describe_remote(rig.remote)
        run = entries(rig.remote)
        assert {e.author for e in run} == {BOT}
        assert len({e.sha for e in run}) == len(run)

        # Nothing lost, nothing forced.
        on_branch = reachable(rig.remote)
        assert set(human) <= on_branch, "a person's commit is missing from main"
        assert set(rig.pushed) <= on_branch, "a commit gitops-canary pushed is missing from main"
        assert set(rig.pushed) == {e.sha for e in run}
        updates = assert_fast_forward_only(rig.remote)
        assert updates >= len(human) + len(run)

        # The writers really raced the rollout: some of their commits sit between its steps.
        order = git(rig.remote, "rev-list", "--reverse", "--topo-order", "main")
        position = {sha: i for i, sha in enumerate(order.split())}
        step_positions = sorted(position[e.sha] for e in run if e.sha in position)
        gaps = {sum(1 for step in step_positions if step < position[sha]) for sha in human}
        assert any(0 < gap < len(step_positions) for gap in gaps), (
            f"no human commit landed between two steps of the rollout (gaps {sorted(gaps)})"
        )

        # People's lines in the file gitops-canary edits (replicas) all survived.
        deployment = git(rig.remote, "show", f"main:{APP_DIR}/deployment.yaml")
        comments = [line for line in deployment.splitlines() if line.startswith("# worker ")]
        assert len(comments) == IN_APP_WRITERS * len(range(2, COMMITS_EACH, 4))
        assert "replicas: 0" in deployment
        assert_steps_whole(rig.remote)

        # A step that lost a race was recomputed on the new tip; one that lost every attempt
        # was reported and recomputed on a later tick, never forced.
        recomputed = [r for r in logs.records if "moved while pushing" in r.getMessage()]
        print(f"gitops-canary recomputed a step after a lost race {len(recomputed)} times")
        assert recomputed, "no push of gitops-canary ever raced a writer"
        errors = [o.message for _, o in rig.outcomes if o.kind == "error"]
        assert all("other writers moved it" in m and "Nothing was forced" in m for m in errors)


def test_a_steady_stream_of_unrelated_commits_does_not_postpone_the_analysis(
    tmp_path: Path,
) -> None:
    def two_minute_interval(canary: dict[str, Any]) -> None:
        short_canary()(canary)
        # 6 s once scaled: Flux, applying a note, takes far less even on a loaded machine.
        canary["spec"]["analysis"]["interval"] = "2m"

    source = source_repo(tmp_path, edit_canary=two_minute_interval)
    with open_rig(tmp_path, source=source) as rig:
        rig.until_step(("Progressing", 25), 120)
        wait_until(lambda: flux_applied(rig, tip(rig.remote)), 30, "Flux applying weight 25")
        # From now on Flux applies each note as soon as it is pushed, whatever the machine's load.
        rig.cluster.applier.pause()
        notes: list[str] = []

        def push_a_note(_: TickReport | None) -> None:
            # One unrelated commit per tick, each applied by Flux at once: a busy repository.
            notes.append(f"docs/note-{len(notes)}.md")
            rig.pg.person_commit(f"Note {len(notes)}", lambda root: _write(root / notes[-1]))
            rig.cluster.applier.apply_now()

        # Undisturbed, weight 50 follows one interval (6 s) after weight 25 was applied.
        try:
            rig.drive(
                lambda: last_step(rig.remote) == ("Progressing", 50),
                20,
                "the weight-50 step while unrelated commits keep arriving",
                push_a_note,
            )
        except AssertionError as starved:
            raise Defect(str(starved)) from None


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("A note that has nothing to do with the rollout.\n", encoding="utf-8")
