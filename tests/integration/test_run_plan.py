"""``gitops-canary plan`` shows the next step as a commit message and a diff, changing nothing.

The rollout is driven with ``run --once`` up to "New revision detected" (DESIGN §2 row 3); once
the canary is due for its first traffic step, ``plan`` prints that step. The remote and the
reconciler's working copy are byte for byte what they were, and the next real tick commits
exactly the planned change.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from run_helpers import (
    CANARY_DIR,
    Deadline,
    Person,
    describe_remote,
    last_step,
    playground,
    processes,
    reconciler_workdir,
    step_entries,
    tip,
    write_config,
)

from gitops_canary.playground import git

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROUTE = f"{CANARY_DIR}/httproute-podinfo.yaml"


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (``.git`` included): modification time and content hash."""
    return {
        path.relative_to(root).as_posix(): (
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def changed_lines(diff: str, path: str) -> list[str]:
    """The ``+``/``-`` lines of one file's section in a unified diff (git's or difflib's)."""
    found: list[str] = []
    inside = False
    for line in diff.splitlines():
        if line.startswith("--- "):
            continue
        if line.startswith("+++ "):
            inside = line == f"+++ b/{path}"
            continue
        if line.startswith("diff --git"):
            inside = False
        elif inside and line[:1] in "+-":
            found.append(line)
    return found


def test_plan_prints_the_due_step_and_changes_nothing(tmp_path: Path) -> None:
    with playground(tmp_path) as pg, processes(tmp_path / "logs") as procs:
        config = write_config(pg, tmp_path / "config.yaml")
        person = Person(pg)
        deadline = Deadline(60)
        while last_step(pg.remote) != ("Progressing", 0):
            assert not deadline.expired(), describe_remote(pg.remote)
            code, _, errors = procs.call("run", "--once", "--config", str(config), name="once")
            assert code == 0, errors[-3000:]
            person.act()
            time.sleep(0.3)

        workdir = reconciler_workdir(pg)
        remote_before, workdir_before = tip(pg.remote), snapshot(workdir)
        planned = ""
        while "commit (planned)" not in planned:
            assert not deadline.expired(), f"plan never showed a step; last output:\n{planned}"
            code, planned, errors = procs.call("plan", "--config", str(config), name="plan")
            assert code == 0, errors[-3000:]
            assert "Traceback" not in errors
            if "commit (planned)" not in planned:
                assert planned.startswith("Nothing to commit"), planned
                time.sleep(0.3)

        assert planned.count("commit (planned)") == 1, planned
        assert "    Advance podinfo.test canary weight 10" in planned, planned
        route_change = changed_lines(planned, ROUTE)
        assert route_change == [
            "-      weight: 100",
            "+      weight: 90",
            "-      weight: 0",
            "+      weight: 10",
        ], planned
        assert f"--- a/{CANARY_DIR}/status.yaml" in planned, planned

        assert tip(pg.remote) == remote_before, describe_remote(pg.remote)
        assert snapshot(workdir) == workdir_before, "plan touched the reconciler's working copy"

        # The next tick commits what plan showed.
        while tip(pg.remote) == remote_before:
            assert not deadline.expired(), describe_remote(pg.remote)
            code, _, errors = procs.call("run", "--once", "--config", str(config), name="once")
            assert code == 0, errors[-3000:]
        committed = step_entries(pg.remote)[-1]
        assert committed.subject == "Advance podinfo.test canary weight 10"
        assert (committed.phase, committed.weight) == ("Progressing", 10)
        commit_diff = git(pg.remote, "show", "--format=", committed.sha, "--", ROUTE)
        assert changed_lines(commit_diff, ROUTE) == route_change, commit_diff
