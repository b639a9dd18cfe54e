"""The object kinds the simulator stores and serves, with their REST names.

One table answers both questions the simulator asks: "which kind is this manifest?" (the store,
by ``apiVersion`` + ``kind``) and "which kind does this URL name?" (the API server, by group,
version and plural). Kinds that share a group and kind name (HTTPRoute ``v1`` and ``v1beta1``)
share storage, as they do in a real API server.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownKind(ValueError):
    """The simulator does not serve this kind; the message names it and lists what it serves."""


@dataclass(frozen=True)
class Kind:
    """One served version of a kind: ``apiVersion``, ``kind``, URL plural and scope."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """The API group; ``""`` for the core group (``v1``)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def storage_key(self) -> tuple[str, str]:
        """What identifies the stored objects regardless of the served version."""
        return (self.group, self.kind)


KINDS: tuple[Kind, ...] = (
    Kind("v1", "Namespace", "namespaces", namespaced=False),
    Kind("v1", "Service", "services"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Secret", "secrets"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    Kind("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "httproutes"),
    Kind("gateway.networking.k8s.io/v1", "Gateway", "gateways"),
    Kind("gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", namespaced=False),
    Kind("projectcontour.io/v1", "HTTPProxy", "httpproxies"),
    Kind("source.toolkit.fluxcd.io/v1", "GitRepository", "gitrepositories"),
    Kind("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "kustomizations"),
    Kind("argoproj.io/v1alpha1", "Application", "applications"),
    Kind("flagger.app/v1beta1", "Canary", "canaries"),
    Kind("flagger.app/v1beta1", "MetricTemplate", "metrictemplates"),
    Kind("flagger.app/v1beta1", "AlertProvider", "alertproviders"),
)

_BY_TYPE = {(k.api_version, k.kind): k for k in KINDS}
_BY_PATH = {(k.group, k.version, k.plural): k for k in KINDS}


def _served() -> str:
    return ", ".join(f"{k.api_version} {k.kind}" for k in KINDS)


def kind_for(api_version: str, kind: str) -> Kind:
    """The served kind for ``apiVersion`` + ``kind``; :class:`UnknownKind` when not served."""
    found = _BY_TYPE.get((api_version, kind))
    if found is None:
        raise UnknownKind(
            f"the simulator does not serve apiVersion {api_version!r} kind {kind!r} "
            f"(it serves: {_served()})"
        )
    return found


def kind_for_path(group: str, version: str, plural: str) -> Kind:
    """The served kind for a REST path's group (``""`` for core), version and plural."""
    found = _BY_PATH.get((group, version, plural))
    if found is None:
        api_version = f"{group}/{version}" if group else version
        raise UnknownKind(
            f"the simulator does not serve resource {plural!r} in {api_version} "
            f"(it serves: {_served()})"
        )
    return found
