"""Credentials for the config repository and the pull-request APIs, and how git receives them.

Owns :class:`TokenSource` (a token read at use time from an environment variable or a file, never
from config text), :class:`GitCredentials` (https token or ssh key + known_hosts) and the
environment that hands them to git: a private ``GIT_ASKPASS`` script that reads the token from an
environment variable when git asks, so the token is never in argv, a URL or ``.git/config``;
``GIT_SSH_COMMAND`` with strict host-key checking. Every token read is registered with
:mod:`.scrub` so it can never reach a log or an error.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from gitops_canary.repo.scrub import register_secret, scrub

#: Environment variables only the askpass script reads.
_TOKEN_VARIABLE = "GITOPS_CANARY_GIT_PASSWORD"  # noqa: S105 (a variable name, not a value)
_USERNAME_VARIABLE = "GITOPS_CANARY_GIT_USERNAME"

# git calls the script with its prompt as $1: "Username for '<url>': " or "Password for ...".
_ASKPASS_SCRIPT = f"""#!/bin/sh
# Written by gitops-canary: answers git's credential prompts from the environment.
case "$1" in
  Username*) printf '%s\\n' "${_USERNAME_VARIABLE}" ;;
  *) printf '%s\\n' "${_TOKEN_VARIABLE}" ;;
esac
"""


class CredentialError(Exception):
    """A credential is configured but cannot be read; the message says where to look."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


@dataclass(frozen=True)
class TokenSource:
    """Where a token lives: an environment variable or a file (first line, whitespace stripped)."""

    env: str | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise CredentialError(
                "a token comes from exactly one of an environment variable or a file"
            )

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        if self.env is not None:
            token = os.environ.get(self.env, "").strip()
        else:
            assert self.file is not None
            try:
                token = self.file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise CredentialError(
                    f"cannot read the token file {self.file}: {error.strerror}"
                ) from None
        if not token:
            raise CredentialError(f"the token in {self.describe()} is empty or missing")
        register_secret(token)
        return token


@dataclass(frozen=True)
class GitCredentials:
    """How to authenticate to the remote. Empty means none (local paths, public repos)."""

    token: TokenSource | None = None
    #: User name sent with the token. Hosts ignore it for tokens; GitHub suggests this one.
    username: str = "x-access-token"
    ssh_key: Path | None = None
    known_hosts: Path | None = None

    def __post_init__(self) -> None:
        if self.ssh_key is not None and self.known_hosts is None:
            raise CredentialError(
                f"ssh key {self.ssh_key} is configured without a known_hosts file; gitops-canary "
                "checks the server's host key (StrictHostKeyChecking=yes), so set known_hosts"
            )

    def with_url_password(self, username: str, password: str) -> GitCredentials:
        """These credentials, falling back to the user and password that were found in a URL."""
        if self.token is not None:
            return self
        return _UrlPasswordCredentials(
            username=username or self.username,
            ssh_key=self.ssh_key,
            known_hosts=self.known_hosts,
            url_password=password,
        )

    def _password(self) -> str | None:
        return self.token.read() if self.token is not None else None

    def git_environment(self, private_dir: Path) -> dict[str, str]:
        """Environment for a git command; writes the askpass script into ``private_dir``."""
        env = {
            # Never hang on an interactive prompt in a daemon.
            "GIT_TERMINAL_PROMPT": "0",
            "GCM_INTERACTIVE": "never",
        }
        password = self._password()
        if password is not None:
            env["GIT_ASKPASS"] = str(_askpass_script(private_dir))
            env[_USERNAME_VARIABLE] = self.username
            env[_TOKEN_VARIABLE] = password
        if self.ssh_key is not None:
            assert self.known_hosts is not None
            env["GIT_SSH_COMMAND"] = ssh_command(self.ssh_key, self.known_hosts)
        return env


@dataclass(frozen=True)
class _UrlPasswordCredentials(GitCredentials):
    url_password: str = ""

    def _password(self) -> str | None:
        return self.url_password


def ssh_command(ssh_key: Path, known_hosts: Path) -> str:
    """The ``GIT_SSH_COMMAND``: only this key, only known hosts, never a prompt."""
    options = [
        "-i",
        str(ssh_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "BatchMode=yes",
    ]
    return shlex.join(["ssh", *options])


def split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; registers the password as a secret.

    ``https://TOKEN@host`` counts as a password too: GitHub accepts a token as the user name.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    user, password = unquote(user), unquote(password)
    if not colon:
        user, password = "", user
    register_secret(password)
    return urlunsplit(parts._replace(netloc=host)), user, password


def private_directory(prefix: str = "gitops-canary-") -> Path:
    """A fresh directory only this user can enter (0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(stat.S_IRWXU)
    return path


def _askpass_script(private_dir: Path) -> Path:
    script = private_dir / "askpass.sh"
    if not script.exists():
        descriptor = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRWXU)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(_ASKPASS_SCRIPT)
    return script
