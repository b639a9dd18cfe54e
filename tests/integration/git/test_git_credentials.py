"""Credentials reach git only through askpass or GIT_SSH_COMMAND, and never leak into text."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest
from git_helpers import make_remote, run_git
from git_http import serve_git_over_http

from gitops_canary.repo.credentials import CredentialError, GitCredentials, TokenSource
from gitops_canary.repo.gitrepo import GitError, GitRepo
from gitops_canary.repo.pushing import commit_and_push
from gitops_canary.repo.scrub import ScrubbingFilter, install_log_scrubbing, register_secret, scrub

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECRET = "s3cr3t-T0ken-for-tests-only"
FILES = {"apps/podinfo/deployment.yaml": "kind: Deployment\n"}


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def files_under(path: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1")
        for p in path.rglob("*")
        if p.is_file() and "objects" not in p.parts
    )


def test_scrub_removes_url_credentials_and_secrets() -> None:
    register_secret("registered-token-value")
    text = (
        "fatal: https://x-access-token:abc123@github.com/o/r.git and https://ghp_bare@host/r "
        "and ssh://git@host/r and http://u:p%40ss@10.0.0.1/r and registered-token-value "
        "and extra-one"
    )
    cleaned = scrub(text, ["extra-one"])
    assert "abc123" not in cleaned
    assert "ghp_bare" not in cleaned
    assert "p%40ss" not in cleaned
    assert "registered-token-value" not in cleaned
    assert "extra-one" not in cleaned
    assert "ssh://git@host/r" in cleaned, "an ssh user name is not a secret"
    assert "https://***@github.com/o/r.git" in cleaned


def test_logging_filter_scrubs_messages_arguments_and_exceptions() -> None:
    register_secret(SECRET)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    install_log_scrubbing(handler)
    logger = logging.getLogger("test.scrub")
    logger.addHandler(handler)
    try:
        logger.warning("token is %s at %s", SECRET, "https://u:pw@example.test/r")
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    joined = "\n".join(records)
    assert SECRET not in joined
    assert ":pw@" not in joined
    assert "boom ***" in joined
    assert any(isinstance(f, ScrubbingFilter) for f in handler.filters)


def test_token_from_environment_goes_through_askpass_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CONFIG_REPO_TOKEN", SECRET)
    make_remote(tmp_path, FILES)
    credentials = GitCredentials(token=TokenSource(env="CONFIG_REPO_TOKEN"))
    with serve_git_over_http(tmp_path, "x-access-token", SECRET) as server:
        repo = GitRepo.open_or_clone(
            f"{server.url}/remote.git", "main", tmp_path / "work", credentials
        )

        def leaky_produce(worktree: Path) -> tuple[str, list[str]]:
            (worktree / "status.yaml").write_text("phase: Progressing\n")
            return f"Advance canary (debug: token={SECRET})", ["status.yaml"]

        sha = commit_and_push(repo, leaky_produce)
        assert sha is not None
        askpass_dir = repo._private_dir
        assert (askpass_dir / "askpass.sh").exists()
        assert stat.S_IMODE(askpass_dir.stat().st_mode) == 0o700
        assert SECRET not in files_under(askpass_dir)

        # A revoked token: the server refuses, the error explains without the token.
        server.token = "rotated-token-value"
        with pytest.raises(GitError) as raised:
            repo.fetch()

    assert set(server.seen_users) == {"x-access-token"}
    assert server.refused >= 1, "git must first ask without credentials, then via askpass"
    message = run_git("log", "-1", "--format=%B", "main", cwd=tmp_path / "remote.git")
    assert "token=***" in message
    assert SECRET not in message
    assert SECRET not in str(raised.value)
    assert "fetch" in str(raised.value)
    assert SECRET not in files_under(tmp_path / "work" / ".git")
    assert SECRET not in everything_logged(caplog)


def test_token_planted_in_the_url_is_moved_out_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = "Planted-URL-Token-9876"
    make_remote(tmp_path, FILES)
    with serve_git_over_http(tmp_path, "x-access-token", planted) as server:
        url = server.url.replace("http://", f"http://x-access-token:{planted}@") + "/remote.git"
        repo = GitRepo.open_or_clone(url, "main", tmp_path / "work")
        assert planted not in repo.url
        (repo.worktree / "a.txt").write_text("a\n")
        assert repo.commit(["a.txt"], "step") is not None
        assert repo.push().ok

        server.token = "something-else"
        with pytest.raises(GitError) as fetch_error:
            repo.fetch()
        with pytest.raises(GitError) as clone_error:
            GitRepo.open_or_clone(url.replace("remote.git", "missing.git"), "main", tmp_path / "w2")

    assert set(server.seen_users) == {"x-access-token"}
    for error in (fetch_error.value, clone_error.value):
        assert planted not in str(error)
    assert planted not in files_under(tmp_path / "work" / ".git")
    assert planted not in everything_logged(caplog)
    assert "carries a password or token" in caplog.text


def test_token_file_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{SECRET}\n")
    assert TokenSource(file=token_file).read() == SECRET
    with pytest.raises(CredentialError, match=r"cannot read the token file .*/absent"):
        TokenSource(file=tmp_path / "absent").read()
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    with pytest.raises(CredentialError, match="environment variable NO_SUCH_TOKEN_VAR is empty"):
        TokenSource(env="NO_SUCH_TOKEN_VAR").read()
    with pytest.raises(CredentialError, match="exactly one"):
        TokenSource()


def test_ssh_requires_known_hosts_and_checks_host_keys(tmp_path: Path) -> None:
    key, known = tmp_path / "id_ed25519", tmp_path / "known hosts"
    with pytest.raises(CredentialError, match="known_hosts"):
        GitCredentials(ssh_key=key)
    env = GitCredentials(ssh_key=key, known_hosts=known).git_environment(tmp_path)
    command = env["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=yes" in command
    assert "IdentitiesOnly=yes" in command
    assert "'UserKnownHostsFile=" in command, "paths with spaces are quoted for the shell"
    assert "GIT_ASKPASS" not in env


@pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux ssh client")
def test_unknown_ssh_host_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not a key\n")
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text("")
    credentials = GitCredentials(ssh_key=key, known_hosts=known)
    with pytest.raises(GitError, match=r"git fetch of branch 'main' from ssh://git@127\.0\.0\.1"):
        GitRepo.open_or_clone("ssh://git@127.0.0.1:1/r.git", "main", tmp_path / "w", credentials)
