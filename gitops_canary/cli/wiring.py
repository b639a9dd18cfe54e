"""Building a :class:`Reconciler` from a :class:`Config`: the one place adapters meet the core.

``run``, ``plan`` and ``demo`` all go through :func:`build`, so what the demo exercises is what
production runs.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gitops_canary.config import Config, ConfigError, parse_config
from gitops_canary.core.decisions import Event
from gitops_canary.core.observations import MetricResult
from gitops_canary.core.status import CanaryStatus
from gitops_canary.observe.appliers import (
    AppliedState,
    ArgoApplicationApplier,
    CompareLiveApplier,
    FluxKustomizationApplier,
)
from gitops_canary.observe.cluster import ClusterReader
from gitops_canary.observe.notifications import Notifier
from gitops_canary.observe.prometheus import PrometheusClient
from gitops_canary.observe.webhooks import WebhookCaller
from gitops_canary.reconciler import AppliedPort, Reconciler
from gitops_canary.repo.credentials import GitCredentials, TokenSource
from gitops_canary.repo.discovery import DiscoveredCanary, Discovery, ParseCache, discover
from gitops_canary.repo.gitrepo import GitRepo, Identity, Signing
from gitops_canary.repo.manifests import ManifestError, load_file
from gitops_canary.repo.pullrequests import (
    Gitea,
    GitHub,
    GitLab,
    ProposalState,
    PullRequestProvider,
    propose_step,
)
from gitops_canary.repo.pushing import Produce, commit_and_push
from gitops_canary.repo.scrub import register_secret
from gitops_canary.telemetry import Recorder

log = logging.getLogger("gitops_canary.cli")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def load_config(path: Path) -> Config:
    """Read and validate the configuration file; :class:`ConfigError` names file and field."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        documents = load_file(path, display=str(path))
    except ManifestError as err:
        if "must be a mapping" in err.message:
            raise ConfigError(
                f"{path}: the configuration must be a mapping of sections (repository, "
                "cluster, appliers, ...), see config/config.yaml"
            ) from None
        raise ConfigError(str(err)) from None
    if len(documents) != 1:
        raise ConfigError(f"{path}: expected exactly one YAML document, found {len(documents)}")
    return parse_config(documents[0].data, str(path), base_dir=path.parent)


@dataclass
class Built:
    reconciler: Reconciler
    repo: GitRepo
    cluster: ClusterReader
    recorder: Recorder

    def close(self) -> None:
        self.cluster.close()
        self.repo.close()


def open_repo(config: Config) -> GitRepo:
    repository = config.repository
    credentials = GitCredentials(
        token=TokenSource(
            env=repository.credentials.token.env, file=repository.credentials.token.file
        )
        if repository.credentials.token is not None
        else None,
        username=repository.credentials.username,
        ssh_key=repository.credentials.ssh_key_file,
        known_hosts=repository.credentials.known_hosts_file,
    )
    person = Identity(repository.author.name, repository.author.email)
    signing = (
        Signing(kind=repository.signing.format, key=repository.signing.key)
        if repository.signing is not None
        else None
    )
    return GitRepo.open_or_clone(
        repository.url,
        repository.branch,
        repository.workdir,
        credentials,
        author=person,
        committer=person,
        signing=signing,
    )


def open_cluster(config: Config) -> ClusterReader:
    if config.cluster.in_cluster:
        return ClusterReader.in_cluster()
    if config.cluster.kubeconfig is None:
        raise ConfigError(
            "cluster: set 'kubeconfig' (and optionally 'context') or 'inCluster: true'"
        )
    return ClusterReader.from_kubeconfig(config.cluster.kubeconfig, context=config.cluster.context)


def secret_reader(cluster: ClusterReader) -> Callable[[str, str], Mapping[str, str]]:
    """Reads a Secret's data from the cluster (MetricTemplate and AlertProvider ``secretRef``)."""

    def read(namespace: str, name: str) -> Mapping[str, str]:
        secret = cluster.get("v1", "Secret", namespace, name)
        if secret is None:
            raise KeyError(f"Secret {namespace}/{name} not found")
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        # A token or webhook address read here must never reach a log, a commit or status.yaml,
        # even when a server echoes it back in an error.
        for value in data.values():
            register_secret(value)
        return data

    return read


def pull_request_provider(config: Config) -> PullRequestProvider | None:
    settings = config.push.pull_requests
    if config.push.mode != "pull-request" or settings is None:
        return None
    token = TokenSource(env=settings.token.env, file=settings.token.file)
    if settings.provider == "gitlab":
        return GitLab(settings.project, token, api_url=settings.api_url)
    owner, _, name = settings.project.partition("/")  # checked by the configuration model
    if settings.provider == "github":
        return GitHub(owner, name, token, api_url=settings.api_url)
    return Gitea(owner, name, token, api_url=settings.api_url)


def build(config: Config, *, recorder: Recorder | None = None, clock: Clock = utc_now) -> Built:
    """Wire the real adapters; raises :class:`ConfigError` or adapter errors for the caller."""
    recorder = recorder or Recorder()
    repo = open_repo(config)
    cluster = open_cluster(config)
    reader = secret_reader(cluster)
    cache = ParseCache()

    def provider_for(file: str) -> str | None:
        applier = config.applier_for(file)
        if applier is not None and applier.provider is not None:
            return applier.provider
        return config.defaults.provider

    def run_discovery(root: Path) -> Discovery:
        return discover(root, config.repository.paths, default_provider=provider_for, cache=cache)

    def applier_for(path: str) -> AppliedPort:
        entry = config.applier_for(path)

        def applied(commit: str) -> AppliedState:
            if entry is None:
                raise ConfigError(
                    f"no applier is configured for {path}: add an 'appliers' entry (flux, "
                    "argocd or compareLive) whose path covers it"
                )
            if entry.flux is not None:
                flux = FluxKustomizationApplier(cluster, entry.flux.namespace, entry.flux.name)
                return flux.applied(commit, repo.is_ancestor)
            if entry.argocd is not None:
                argo = ArgoApplicationApplier(cluster, entry.argocd.namespace, entry.argocd.name)
                return argo.applied(commit, repo.is_ancestor)
            return CompareLiveApplier(cluster).applied(commit, repo.is_ancestor, [])

        return applied

    def notify(
        found: DiscoveredCanary, event: Event, status: CanaryStatus, commit: str | None
    ) -> None:
        if found.canary is None:
            return
        failing: MetricResult | None = next((m for m in _last_metrics(status) if not m.ok), None)
        notifier = Notifier(
            {p.key: p for p in found.alert_providers.values()},
            secret_reader=reader,
            commit_url_template=config.notifications.commit_url_template,
        )
        notifier.notify(
            found.canary,
            event,
            phase=status.phase or "",
            weight=status.canary_weight,
            failing_metric=failing,
            commit_sha=commit,
        )

    provider = pull_request_provider(config)

    def propose(repository: GitRepo, key: str, produce: Produce) -> ProposalState:
        assert provider is not None
        return propose_step(repository, key, produce, provider)

    reconciler = Reconciler(
        config,
        repo=repo,
        discover=run_discovery,
        cluster=cluster,
        applier_for=applier_for,
        metrics=PrometheusClient(secret_reader=reader),
        hooks=WebhookCaller(global_event_url=config.defaults.event_webhook),
        notify=notify,
        push=commit_and_push,
        recorder=recorder,
        clock=clock,
        propose=propose if provider is not None else None,
    )
    return Built(reconciler, repo, cluster, recorder)


def _last_metrics(status: CanaryStatus) -> list[MetricResult]:
    return [
        MetricResult(r.name, r.ok, r.value, r.threshold or "", r.message)
        for r in status.last_checks
        if r.kind == "metric"
    ]
