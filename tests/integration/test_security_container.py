"""The container image: a non-root user, no secrets baked in, and it matches config/deployment.yaml.

The cluster manifests themselves (read-only ClusterRole, runAsNonRoot, readOnlyRootFilesystem,
allowPrivilegeEscalation false, dropped capabilities, writable volumes) are checked by
``test_config_manifests.py`` and ``test_cluster_rbac.py``; this file covers the Dockerfile, which
no other test reads, and where it has to agree with the Deployment.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT = ROOT / "config" / "deployment.yaml"

#: Names of build arguments and environment variables that would hold a credential.
SECRET_NAME = re.compile(r"token|passw|secret|api_?key|private|credential", re.IGNORECASE)
#: What credentials look like when pasted somewhere (GitHub, GitLab, AWS, Slack, PEM keys).
SECRET_VALUE = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|xox[baprs]-"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/\s:@]+:[^/\s@]+@"
)
#: Files that must never be copied into an image.
SECRET_FILES = re.compile(
    r"(^|/)(\.git|\.env|\.netrc|\.git-credentials|\.ssh|id_rsa|id_ed25519|kubeconfig"
    r"|\.docker|\.venv)(/|$)|\.(pem|key)$"
)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        found.append(Instruction(start, keyword.upper(), arguments.strip()))
    return found


def final_stage(found: list[Instruction]) -> list[Instruction]:
    starts = [i for i, instruction in enumerate(found) if instruction.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return found[starts[-1] :]


def user_and_group(argument: str) -> tuple[str, str | None]:
    user, _, group = argument.partition(":")
    return user, group or None


def deployment() -> dict[str, Any]:
    data = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def key_values(arguments: str) -> list[tuple[str, str]]:
    """``ENV``/``ARG`` arguments: ``A=1 B="2"`` or the legacy ``A 1``."""
    words = shlex.split(arguments)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


# --------------------------------------------------------------------------- the user


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    stage = final_stage(instructions(DOCKERFILE.read_text(encoding="utf-8")))
    users = [i for i in stage if i.keyword == "USER"]
    assert users, "no USER instruction: the image would run as root"
    last = users[-1]
    user, group = user_and_group(last.arguments)
    assert user not in ("root", "0"), f"line {last.line}: USER {last.arguments}"
    assert group not in ("root", "0"), f"line {last.line}: USER {last.arguments}"
    # Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
    assert user.isdigit(), f"line {last.line}: USER {user} is not numeric"
    # The entry point is declared after it, so it is what runs as that user.
    assert any(i.keyword in ("CMD", "ENTRYPOINT") for i in stage[stage.index(last) :])


def test_the_deployment_runs_the_image_user() -> None:
    stage = final_stage(instructions(DOCKERFILE.read_text(encoding="utf-8")))
    user, group = user_and_group([i for i in stage if i.keyword == "USER"][-1].arguments)
    pod = deployment()["spec"]["template"]["spec"]
    context = pod.get("securityContext") or {}
    assert context.get("runAsNonRoot") is True
    assert str(context.get("runAsUser")) == user
    if group is not None:
        assert str(context.get("runAsGroup")) == group


def test_the_image_workdir_is_a_writable_volume_in_the_deployment() -> None:
    """With a read-only root filesystem, the working copy must live on a mounted volume."""
    stage = final_stage(instructions(DOCKERFILE.read_text(encoding="utf-8")))
    env = dict(kv for i in stage if i.keyword == "ENV" for kv in key_values(i.arguments))
    workdir = PurePosixPath(env["GITOPS_CANARY_WORKDIR"])
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    writable = [
        PurePosixPath(m["mountPath"])
        for m in container.get("volumeMounts", [])
        if not m.get("readOnly")
    ]
    assert any(workdir == mount or mount in workdir.parents for mount in writable), writable
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


# --------------------------------------------------------------------------- no secrets


def test_no_secret_is_baked_into_the_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    problems = [
        f"a credential-looking value: {m.group(0)[:12]}..." for m in SECRET_VALUE.finditer(text)
    ]
    for instruction in instructions(text):
        if instruction.keyword in ("ENV", "ARG"):
            for name, value in key_values(instruction.arguments):
                if SECRET_NAME.search(name):
                    problems.append(
                        f"line {instruction.line}: {instruction.keyword} {name}={value!r}"
                    )
        if instruction.keyword in ("COPY", "ADD"):
            words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
            for source in words[:-1]:
                if source in (".", "./", "*") or SECRET_FILES.search(source):
                    # Without a .dockerignore, "." would copy .git, .venv and local credentials.
                    problems.append(f"line {instruction.line}: {instruction.keyword} {source}")
            if instruction.keyword == "ADD" and any("://" in w for w in words):
                problems.append(f"line {instruction.line}: ADD from a URL")
    assert problems == []


def test_the_checks_catch_a_root_user_and_baked_secrets() -> None:
    bad = (
        "FROM python:3.11-slim\n"
        "ARG GITHUB_TOKEN\n"
        "ENV GIT_PASSWORD=hunter2 \\\n    OTHER=1\n"
        "COPY . /src\n"
        "USER 0:0\n"
    )
    found = instructions(bad)
    assert [i.keyword for i in found] == ["FROM", "ARG", "ENV", "COPY", "USER"]
    assert key_values(found[2].arguments) == [("GIT_PASSWORD", "hunter2"), ("OTHER", "1")]
    assert SECRET_NAME.search("GITHUB_TOKEN")
    assert SECRET_NAME.search("GIT_PASSWORD")
    assert user_and_group(found[-1].arguments) == ("0", "0")
    assert SECRET_FILES.search(".git/config")
    assert SECRET_FILES.search("deploy/id_ed25519")
    assert SECRET_VALUE.search("https://bot:s3cret@git.example.org/repo.git")
    assert SECRET_VALUE.search("ghp_" + "a" * 36)
