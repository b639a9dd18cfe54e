"""history() and ``gitops-canary history`` over a real repository with steps, people and merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from git_helpers import person_commit, run_git

from gitops_canary.cli import main
from gitops_canary.repo.history import history, parse_message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BOT = {
    "GIT_AUTHOR_NAME": "gitops-canary",
    "GIT_AUTHOR_EMAIL": "bot@example.test",
    "GIT_COMMITTER_NAME": "gitops-canary",
    "GIT_COMMITTER_EMAIL": "bot@example.test",
}


def step_message(key: str, phase: str, weight: int, failed: int = 0) -> str:
    return (
        f"Advance podinfo.test canary weight {weight}\n\n"
        f"request-success-rate: 99.5 (min 99): pass\n\n"
        f"Canary: {key}\nCanary-Phase: {phase}\nCanary-Weight: {weight}\n"
        f"Canary-Revision: podinfo:6.0.1\nCanary-Failed-Checks: {failed}\n"
    )


def bot_commit(clone: Path, key: str, phase: str, weight: int, failed: int = 0) -> str:
    (clone / "status.yaml").write_text(f"{key} {phase} {weight}\n")
    run_git("add", "--all", cwd=clone)
    run_git("commit", "--quiet", "-m", step_message(key, phase, weight, failed), cwd=clone, env=BOT)
    return run_git("rev-parse", "HEAD", cwd=clone)


@pytest.fixture
def repo_with_steps(remote: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    clone = tmp_path / "clone"
    run_git("clone", "--quiet", str(remote), str(clone), cwd=tmp_path)
    shas = {"w10": bot_commit(clone, "test/podinfo", "Progressing", 10)}
    bot_commit(clone, "test/podinfo2", "Progressing", 10)  # a different canary
    (clone / "people.txt").write_text("human\n")
    run_git("add", "--all", cwd=clone)
    run_git(
        "commit",
        "--quiet",
        "-m",
        "Canary: test/podinfo is mentioned, no trailer\n\nprose",
        cwd=clone,
    )
    # A step that arrives through a pull request merged with a merge commit.
    run_git("checkout", "--quiet", "-b", "gitops-canary/test/podinfo", cwd=clone)
    shas["w20"] = bot_commit(clone, "test/podinfo", "Progressing", 20, failed=1)
    run_git("checkout", "--quiet", "main", cwd=clone)
    run_git(
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge pull request #7",
        "gitops-canary/test/podinfo",
        cwd=clone,
        env={"GIT_AUTHOR_NAME": "Mary Merger", "GIT_AUTHOR_EMAIL": "mary@example.test"},
    )
    shas["done"] = bot_commit(clone, "test/podinfo", "Succeeded", 0)
    return clone, shas


def test_history_lists_only_this_canarys_steps(
    repo_with_steps: tuple[Path, dict[str, str]],
) -> None:
    clone, shas = repo_with_steps
    entries = history(clone, "test/podinfo")

    assert [e.sha for e in entries] == [shas["done"], shas["w20"], shas["w10"]]
    done, w20, w10 = entries
    assert (done.phase, done.weight, done.failed_checks) == ("Succeeded", 0, 0)
    assert (w20.phase, w20.weight, w20.failed_checks) == ("Progressing", 20, 1)
    assert w20.revision == "podinfo:6.0.1"
    assert w20.merged_by == "Mary Merger <mary@example.test>"
    assert w10.merged_by is None
    assert w10.author == "gitops-canary <bot@example.test>"
    assert w10.subject == "Advance podinfo.test canary weight 10"
    assert w10.summary == "request-success-rate: 99.5 (min 99): pass"
    assert w10.time.tzinfo is not None
    assert history(clone, "test/podinfo", limit=1)[0].sha == shas["done"]


def test_squash_by_a_web_ui_names_the_committer(remote: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run_git("clone", "--quiet", str(remote), str(clone), cwd=tmp_path)
    (clone / "status.yaml").write_text("x\n")
    run_git("add", "--all", cwd=clone)
    run_git(
        "commit",
        "--quiet",
        "-m",
        step_message("test/podinfo", "Progressing", 30) + "",
        cwd=clone,
        env={**BOT, "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"},
    )
    (entry,) = history(clone, "test/podinfo")
    assert entry.merged_by == "GitHub <noreply@github.com>"


def test_parse_message_trailers() -> None:
    subject, summary, trailers = parse_message(
        "Subject line\n\nBody one.\n\nBody two.\n\nCanary: a/b\nCanary-Failed-Checks: 2\n  more\n"
    )
    assert subject == "Subject line"
    assert summary == "Body one.\n\nBody two."
    assert trailers == {"Canary": "a/b", "Canary-Failed-Checks": "2 more"}
    assert parse_message("Only a subject") == ("Only a subject", "", {})
    assert parse_message("S\n\nNot: a trailer\nbecause this line is prose")[2] == {}


def test_cli_table_and_json(
    repo_with_steps: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    clone, shas = repo_with_steps
    assert main(["history", "test/podinfo", "--repo", str(clone)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["TIME", "PHASE", "WEIGHT", "FAILED", "COMMIT", "BY", "SUBJECT"]
    assert len(table) == 4
    assert "Mary Merger" in table[2]
    assert shas["w20"][:12] in table[2]

    assert main(["history", "test/podinfo", "--repo", str(clone), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["weight"] for d in data] == [0, 20, 10]
    assert data[1]["trailers"]["Canary-Failed-Checks"] == "1"


def test_cli_bad_input_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "podinfo", "--repo", str(tmp_path)]) == 2
    assert "expected the canary as <namespace>/<name>" in capsys.readouterr().err
    assert main(["history", "test/podinfo", "--repo", str(tmp_path)]) == 1
    assert f"{tmp_path} is not a git repository" in capsys.readouterr().err


def test_cli_no_steps(remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    person_commit(remote, tmp_path / "p", {"x.txt": "x\n"}, "unrelated")
    assert main(["history", "test/podinfo", "--repo", str(remote)]) == 0
    assert "No gitops-canary commits for test/podinfo" in capsys.readouterr().out
