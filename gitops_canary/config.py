"""The reconciler's configuration file: one YAML document, validated with pydantic.

Secrets are never inline: the file names an environment variable or a file that holds them.
A few fields that operators set per deployment can be overridden by environment variables
(see :data:`ENV_OVERRIDES`). A bad configuration is one clear message naming the field; the CLI
turns :class:`ConfigError` into exit code 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gitops_canary.core.specs import SUPPORTED_PROVIDERS, parse_duration


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretSource(_Model):
    """Where a secret lives: an environment variable or a file. Never the value itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _never_inline(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                "a secret is never written in the configuration: use {env: NAME} or {file: PATH}"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of 'env' or 'file'")
        return self

    def read(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"environment variable {self.env} is not set or empty")
            return value.strip()
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"cannot read secret file {self.file}: {err.strerror}") from None


class Person(_Model):
    name: str = "gitops-canary"
    email: str = "gitops-canary@localhost"


class Signing(_Model):
    format: Literal["gpg", "ssh"]
    key: str = Field(description="GPG key id, or the path of the SSH private key")


class Credentials(_Model):
    token: SecretSource | None = None
    username: str = "x-access-token"
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None

    @model_validator(mode="after")
    def _ssh_needs_known_hosts(self) -> Credentials:
        if self.ssh_key_file is not None and self.known_hosts_file is None:
            raise ValueError("sshKeyFile needs knownHostsFile: host keys are always verified")
        return self


class Repository(_Model):
    url: str
    branch: str = "main"
    #: Directories (relative to the repository root) scanned for canaries.
    paths: list[str] = Field(default_factory=lambda: ["."])
    workdir: Path = Path(".gitops-canary/work")
    credentials: Credentials = Field(default_factory=Credentials)
    author: Person = Field(default_factory=Person)
    signing: Signing | None = None


class PullRequests(_Model):
    provider: Literal["github", "gitlab", "gitea"]
    api_url: str
    #: ``owner/name`` for GitHub and Gitea, the project path or id for GitLab.
    project: str
    token: SecretSource
    #: Which steps go through review: every traffic step, or only the promotion.
    review: Literal["every-step", "promotion"] = "promotion"

    @model_validator(mode="after")
    def _owner_and_name(self) -> PullRequests:
        owner, _, name = self.project.partition("/")
        if self.provider != "gitlab" and (not owner or not name):
            raise ValueError(f"project: expected 'owner/name' for {self.provider}")
        return self


class Push(_Model):
    mode: Literal["direct", "pull-request"] = "direct"
    pull_requests: PullRequests | None = None
    attempts: int = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _pr_needs_provider(self) -> Push:
        if self.mode == "pull-request" and self.pull_requests is None:
            raise ValueError("mode 'pull-request' needs a 'pullRequests' section")
        return self


class Cluster(_Model):
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False


class FluxRef(_Model):
    namespace: str = "flux-system"
    name: str


class ArgoRef(_Model):
    namespace: str = "argocd"
    name: str


class Applier(_Model):
    """Which object tells that a commit under ``path`` has been applied to the cluster."""

    path: str
    flux: FluxRef | None = None
    argocd: ArgoRef | None = None
    compare_live: bool = False
    #: The provider for canaries under this path that do not set ``spec.provider``.
    provider: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Applier:
        chosen = [self.flux is not None, self.argocd is not None, self.compare_live]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of 'flux', 'argocd' or 'compareLive: true'")
        if self.provider is not None and self.provider not in SUPPORTED_PROVIDERS:
            raise ValueError(
                f"provider {self.provider!r} is not supported (supported: "
                f"{', '.join(SUPPORTED_PROVIDERS)})"
            )
        return self


class Prometheus(_Model):
    address: str = "http://prometheus:9090"


class Defaults(_Model):
    provider: str | None = None
    prometheus: Prometheus = Field(default_factory=Prometheus)
    #: Flagger's ``-event-webhook``: receives events of canaries that have no event webhook.
    event_webhook: str | None = None
    #: Contour ``spec.ingressClassName`` (Flagger's ``-ingress-class``).
    ingress_class: str | None = None

    @model_validator(mode="after")
    def _known_provider(self) -> Defaults:
        if self.provider is not None and self.provider not in SUPPORTED_PROVIDERS:
            raise ValueError(
                f"provider {self.provider!r} is not supported (supported: "
                f"{', '.join(SUPPORTED_PROVIDERS)})"
            )
        return self


class Timing(_Model):
    #: How often the loop looks for due canaries and for applied steps.
    poll: str = "5s"

    @field_validator("poll")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0:
            raise ValueError(f"{value!r} is not a duration like '5s'")
        return value

    #: Multiplies every ``analysis.interval``. Below 1 only with the simulator (demos, tests).
    interval_scale: float = Field(default=1.0, gt=0, le=1)

    def poll_seconds(self) -> float:
        seconds = parse_duration(self.poll)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"timing.poll: {self.poll!r} is not a duration like '5s'")
        return seconds


class Logging(_Model):
    format: Literal["json", "text"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Metrics(_Model):
    enabled: bool = True
    address: str = "0.0.0.0"  # noqa: S104 - a metrics endpoint inside a pod
    port: int = Field(default=8080, ge=0, le=65535)


class Notifications(_Model):
    #: e.g. ``https://github.com/org/config/commit/{sha}``; adds a link to every notification.
    commit_url_template: str | None = None


class Config(_Model):
    repository: Repository
    push: Push = Field(default_factory=Push)
    cluster: Cluster = Field(default_factory=Cluster)
    appliers: list[Applier] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    timing: Timing = Field(default_factory=Timing)
    logging: Logging = Field(default_factory=Logging)
    metrics: Metrics = Field(default_factory=Metrics)
    notifications: Notifications = Field(default_factory=Notifications)
    #: Rewrites of in-cluster addresses (webhook and metric URLs) for running outside the
    #: cluster, e.g. ``{"http://flagger-loadtester.test": "http://127.0.0.1:8080"}``.
    address_overrides: dict[str, str] = Field(default_factory=dict)
    #: True only when the cluster is the bundled simulator; allows ``intervalScale < 1``.
    simulator: bool = False

    @model_validator(mode="after")
    def _scale_needs_simulator(self) -> Config:
        if self.timing.interval_scale < 1 and not self.simulator:
            raise ValueError(
                "timing.intervalScale: below 1 only with 'simulator: true' (demos and tests)"
            )
        return self

    @model_validator(mode="after")
    def _cluster_access(self) -> Config:
        if self.cluster.in_cluster == (self.cluster.kubeconfig is not None):
            raise ValueError(
                "cluster: set either 'kubeconfig' (and optionally 'context') or 'inCluster: true'"
            )
        return self

    def applier_for(self, path: str) -> Applier | None:
        """The applier whose path is the longest prefix of ``path`` (a repo-relative path)."""
        best: Applier | None = None
        best_length = -1
        for applier in self.appliers:
            prefix = applier.path.strip("/").removeprefix("./").rstrip("/")
            covers = prefix in ("", ".") or path == prefix or path.startswith(prefix + "/")
            if covers and len(prefix) > best_length:
                best, best_length = applier, len(prefix)
        return best

    def rewrite_address(self, url: str) -> str:
        for prefix, replacement in sorted(self.address_overrides.items(), key=lambda i: -len(i[0])):
            if url.startswith(prefix):
                return replacement + url[len(prefix) :]
        return url


#: Environment variables that override a field, for the few things set per deployment.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "GITOPS_CANARY_REPO_URL": ("repository", "url"),
    "GITOPS_CANARY_BRANCH": ("repository", "branch"),
    "GITOPS_CANARY_WORKDIR": ("repository", "workdir"),
    "GITOPS_CANARY_KUBECONFIG": ("cluster", "kubeconfig"),
    "GITOPS_CANARY_KUBE_CONTEXT": ("cluster", "context"),
    "GITOPS_CANARY_PROMETHEUS": ("defaults", "prometheus", "address"),
    "GITOPS_CANARY_LOG_FORMAT": ("logging", "format"),
    "GITOPS_CANARY_METRICS_PORT": ("metrics", "port"),
}


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for var, path in ENV_OVERRIDES.items():
        if var not in env:
            continue
        node = data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = env[var]
    return data


def _field_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_config(
    data: Any, source: str, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate a loaded YAML document; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping")
    data = _apply_env(dict(data), os.environ if env is None else env)
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = _field_path(tuple(error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{source}: {where}: {message}" if where else f"{source}: {message}")
        raise ConfigError("\n".join(problems)) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    kubeconfig = config.cluster.kubeconfig
    if kubeconfig is not None and not kubeconfig.is_file():
        raise ConfigError(f"{source}: cluster.kubeconfig: no such file: {kubeconfig}")
    return config


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(path: Path | None) -> Path | None:
        if path is None or path.is_absolute():
            return path
        return base / path

    repository = config.repository.model_copy(
        update={
            "workdir": resolve(config.repository.workdir),
            "credentials": config.repository.credentials.model_copy(
                update={
                    "ssh_key_file": resolve(config.repository.credentials.ssh_key_file),
                    "known_hosts_file": resolve(config.repository.credentials.known_hosts_file),
                }
            ),
        }
    )
    cluster = config.cluster.model_copy(update={"kubeconfig": resolve(config.cluster.kubeconfig)})
    return config.model_copy(update={"repository": repository, "cluster": cluster})
