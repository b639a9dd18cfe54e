"""The primary workload: the ``<target>-primary`` Deployment, its HPA, and the ``-primary`` copies
of tracked ConfigMaps and Secrets (``flagger-behaviour.md`` §4.1, §4.2, §3.7, §3.2).

Flagger creates the primary once and rewrites it on ``Promote()``; here it is rendered whole on
every step from :class:`PrimarySource` (what the last promotion copied), so the file never drifts.
Deviations from Flagger (DESIGN D8), each for a reason given where it is implemented:
no ownerReferences; ``flagger-id`` is derived from the revision instead of drawn at random;
``metadata.annotations`` always follow the promotion rule (include-prefix), not the creation rule;
the primary HPA is always ``autoscaling/v2``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gitops_canary.core.hashing import derive_uuid
from gitops_canary.core.render.meta import (
    canonical,
    included_by_prefix,
    mapping_at,
    object_meta,
    selector_label,
    sorted_map,
    without_toolkit_keys,
)
from gitops_canary.core.render.model import SELECTOR_LABELS, RenderError, RenderInputs

PRIMARY_SUFFIX = "-primary"
FLAGGER_ID = "flagger-id"

#: Deployment fields Flagger copies from the target on promotion, in the order they are written.
_COPIED_DEPLOYMENT_FIELDS = (
    "progressDeadlineSeconds",
    "minReadySeconds",
    "revisionHistoryLimit",
    "strategy",
)

#: Secret types Flagger tracks (``config_tracker.go``); other types are neither copied nor renamed.
TRACKED_SECRET_TYPES = frozenset(
    {"Opaque", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/tls"}
)
CONFIG_TRACKING_ANNOTATION = "flagger.app/config-tracking"

ConfigKey = tuple[str, str]  # (kind, name), kind "ConfigMap" | "Secret"


# --------------------------------------------------------------------------- config references


def _pod_spec_containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    containers = [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]
    return [c for c in containers if isinstance(c, Mapping)]


def _config_ref_slots(pod_spec: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any], str]]:
    """Every place a pod spec names a ConfigMap or Secret: ``(kind, holder, name field)``.

    The sources are Flagger's (§3.2): volumes (plain and projected), ``env[].valueFrom`` key refs
    and ``envFrom`` of containers and init containers.
    """
    for volume in pod_spec.get("volumes") or []:
        if not isinstance(volume, Mapping):
            continue
        if isinstance(volume.get("configMap"), Mapping):
            yield "ConfigMap", volume["configMap"], "name"
        if isinstance(volume.get("secret"), Mapping):
            yield "Secret", volume["secret"], "secretName"
        projected = volume.get("projected")
        if isinstance(projected, Mapping):
            for source in projected.get("sources") or []:
                if not isinstance(source, Mapping):
                    continue
                if isinstance(source.get("configMap"), Mapping):
                    yield "ConfigMap", source["configMap"], "name"
                if isinstance(source.get("secret"), Mapping):
                    yield "Secret", source["secret"], "name"
    for container in _pod_spec_containers(pod_spec):
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") if isinstance(env, Mapping) else None
            if not isinstance(value_from, Mapping):
                continue
            if isinstance(value_from.get("configMapKeyRef"), Mapping):
                yield "ConfigMap", value_from["configMapKeyRef"], "name"
            if isinstance(value_from.get("secretKeyRef"), Mapping):
                yield "Secret", value_from["secretKeyRef"], "name"
        for env_from in container.get("envFrom") or []:
            if not isinstance(env_from, Mapping):
                continue
            if isinstance(env_from.get("configMapRef"), Mapping):
                yield "ConfigMap", env_from["configMapRef"], "name"
            if isinstance(env_from.get("secretRef"), Mapping):
                yield "Secret", env_from["secretRef"], "name"


def tracked_config_refs(pod_spec: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """The ConfigMaps and Secrets a pod spec references: ``(kind, name, optional)``, sorted.

    A config referenced several times is optional only if every reference is optional, because a
    single required reference makes a missing config an error.
    """
    optional_by_key: dict[ConfigKey, bool] = {}
    for kind, holder, field in _config_ref_slots(pod_spec):
        name = holder.get(field)
        if not name:
            continue
        key = (kind, str(name))
        optional = bool(holder.get("optional", False))
        optional_by_key[key] = optional_by_key.get(key, True) and optional
    return [(kind, name, optional_by_key[(kind, name)]) for kind, name in sorted(optional_by_key)]


def is_trackable_config(config: Mapping[str, Any]) -> bool:
    """Flagger's filter: Secrets of the tracked types only, and no ``config-tracking: disabled``."""
    annotations = mapping_at(config, "metadata.annotations", "config")
    if str(annotations.get(CONFIG_TRACKING_ANNOTATION, "")).startswith("disable"):
        return False
    if config.get("kind") == "Secret":
        return str(config.get("type") or "Opaque") in TRACKED_SECRET_TYPES
    return config.get("kind") == "ConfigMap"


def rename_config_refs(pod_spec: Mapping[str, Any], tracked: set[ConfigKey]) -> dict[str, Any]:
    """A copy of ``pod_spec`` whose references to ``tracked`` configs name ``<name>-primary``."""
    renamed: dict[str, Any] = canonical(pod_spec)
    for kind, holder, field in _config_ref_slots(renamed):
        name = holder.get(field)
        if name and (kind, str(name)) in tracked:
            # The holder is a dict inside our own copy, so editing it in place is safe.
            holder[field] = f"{name}{PRIMARY_SUFFIX}"  # type: ignore[index]
    return renamed


# --------------------------------------------------------------------------- affinity


def _suffix_selector_values(label_selector: Any, target_name: str) -> None:
    """Flagger's ``appendPrimarySuffixToValuesIfNeeded`` on a copied ``labelSelector``."""
    if not isinstance(label_selector, dict):
        return
    for expression in label_selector.get("matchExpressions") or []:
        if not isinstance(expression, dict) or expression.get("key") not in SELECTOR_LABELS:
            continue
        values = expression.get("values") or []
        for index, value in enumerate(values):
            if value == target_name:
                values[index] = f"{value}{PRIMARY_SUFFIX}"
                break
    match_labels = label_selector.get("matchLabels")
    if isinstance(match_labels, dict):
        for key, value in match_labels.items():
            if key in SELECTOR_LABELS and value == target_name:
                match_labels[key] = f"{value}{PRIMARY_SUFFIX}"


def _rewrite_affinity_selectors(pod_spec: dict[str, Any], target_name: str) -> None:
    """§3.7: pod (anti-)affinity and topology-spread selectors that pick the target's pods by
    name pick the primary's pods instead."""
    for constraint in pod_spec.get("topologySpreadConstraints") or []:
        if isinstance(constraint, dict):
            _suffix_selector_values(constraint.get("labelSelector"), target_name)
    affinity = pod_spec.get("affinity")
    if not isinstance(affinity, dict):
        return
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind)
        if not isinstance(rules, dict):
            continue
        for weighted in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            term = weighted.get("podAffinityTerm") if isinstance(weighted, dict) else None
            if isinstance(term, dict):
                _suffix_selector_values(term.get("labelSelector"), target_name)
        for term in rules.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if isinstance(term, dict):
                _suffix_selector_values(term.get("labelSelector"), target_name)


# --------------------------------------------------------------------------- Deployment


def _target_where(inputs: RenderInputs) -> str:
    return f"Deployment {inputs.canary.namespace}/{inputs.canary.target_name}"


def _primary_replicas(inputs: RenderInputs) -> int:
    """Flagger's rule: the target's replicas if positive, else 1."""
    replicas: Any = inputs.primary.replicas
    if replicas is None:
        replicas = (inputs.target.get("spec") or {}).get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > 0:
        return replicas
    return 1


def primary_deployment(inputs: RenderInputs) -> dict[str, Any]:
    """§4.1 / §3.7: the primary Deployment, as Flagger's ``Promote()`` leaves it."""
    canary = inputs.canary
    where = _target_where(inputs)
    label_key, label_value = selector_label(inputs.target, where)
    primary_label_value = f"{label_value}{PRIMARY_SUFFIX}"
    target_meta = mapping_at(inputs.target, "metadata", where)
    target_spec = mapping_at(inputs.target, "spec", where)

    labels = included_by_prefix(target_meta.get("labels"))
    labels[label_key] = primary_label_value
    # Flagger copies all annotations when it creates the primary but only include-prefixed ones
    # when it promotes; a file rendered on every step needs one rule, and the promotion rule keeps
    # tool-managed annotations (last-applied, revision) out of git.
    annotations = included_by_prefix(target_meta.get("annotations"))

    spec: dict[str, Any] = {}
    if canary.spec.autoscaler_ref is None:
        # With an HPA the replica count belongs to the primary HPA: writing one would fight it.
        spec["replicas"] = _primary_replicas(inputs)
    for field in _COPIED_DEPLOYMENT_FIELDS:
        if target_spec.get(field) is not None:
            spec[field] = canonical(target_spec[field])
    spec["selector"] = {"matchLabels": {label_key: primary_label_value}}
    spec["template"] = _primary_template(inputs, label_key, primary_label_value)

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            f"{canary.target_name}{PRIMARY_SUFFIX}", canary.namespace, labels, annotations
        ),
        "spec": spec,
    }


def _primary_template(
    inputs: RenderInputs, label_key: str, primary_label_value: str
) -> dict[str, Any]:
    where = f"{_target_where(inputs)} (template of the last promotion)"
    template_meta = mapping_at(inputs.primary.template, "metadata", where)
    pod_spec = mapping_at(inputs.primary.template, "spec", where)
    if not pod_spec:
        raise RenderError(f"{where}: spec.template.spec is missing")

    labels = without_toolkit_keys(template_meta.get("labels"))
    labels[label_key] = primary_label_value
    annotations = without_toolkit_keys(template_meta.get("annotations"))
    # Flagger draws a random UUID on every promotion to force a primary rollout; one derived from
    # the promoted revision forces the same rollout and keeps the file reproducible (D3).
    annotations[FLAGGER_ID] = derive_uuid(inputs.primary.revision)

    tracked = {_config_key(config) for config in inputs.primary.configs}
    spec = rename_config_refs(pod_spec, tracked)
    _rewrite_affinity_selectors(spec, inputs.canary.target_name)
    return {
        "metadata": {"labels": sorted_map(labels), "annotations": sorted_map(annotations)},
        "spec": spec,
    }


# --------------------------------------------------------------------------- HPA


def _hpa_spec_v2(hpa: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The HPA spec in ``autoscaling/v2`` shape (``v2beta2`` has the same shape; ``v1`` converts).

    Flagger reads the target HPA through the API server, which converts any stored version.
    """
    api_version = str(hpa.get("apiVersion") or "autoscaling/v2")
    spec = mapping_at(hpa, "spec", where)
    if api_version in ("autoscaling/v2", "autoscaling/v2beta2"):
        return spec
    if api_version == "autoscaling/v1":
        converted = {k: v for k, v in spec.items() if k != "targetCPUUtilizationPercentage"}
        if spec.get("targetCPUUtilizationPercentage") is not None:
            converted["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": spec["targetCPUUtilizationPercentage"],
                        },
                    },
                }
            ]
        return converted
    raise RenderError(
        f"{where}: apiVersion {api_version} is not supported; use autoscaling/v2 "
        "(v2beta1 is no longer served by Kubernetes)"
    )


def primary_hpa(inputs: RenderInputs) -> dict[str, Any] | None:
    """§4.2: ``<hpa>-primary`` scaling the primary Deployment; ``None`` without an HPA ref."""
    canary = inputs.canary
    ref = canary.spec.autoscaler_ref
    if ref is None:
        return None
    where = f"HorizontalPodAutoscaler {canary.namespace}/{ref.name}"
    if ref.kind != "HorizontalPodAutoscaler":
        raise RenderError(f"{where}: autoscalerRef kind {ref.kind} is not supported")
    if inputs.hpa is None:
        raise RenderError(f"{where}: the HPA named by spec.autoscalerRef was not found")
    source = _hpa_spec_v2(inputs.hpa, where)
    hpa_meta = mapping_at(inputs.hpa, "metadata", where)
    scale_target = mapping_at(source, "scaleTargetRef", where)

    min_replicas = source.get("minReplicas")
    max_replicas = source.get("maxReplicas")
    overrides = ref.primary_scaler_replicas
    if overrides is not None:
        if overrides.min_replicas is not None:
            min_replicas = overrides.min_replicas
        if overrides.max_replicas is not None:
            max_replicas = overrides.max_replicas
    if max_replicas is None:
        raise RenderError(f"{where}: spec.maxReplicas is required")

    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": scale_target.get("apiVersion") or "apps/v1",
            "kind": scale_target.get("kind") or "Deployment",
            "name": f"{canary.target_name}{PRIMARY_SUFFIX}",
        },
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    spec["maxReplicas"] = max_replicas
    if source.get("metrics"):
        spec["metrics"] = canonical(source["metrics"])
    if source.get("behavior"):
        spec["behavior"] = canonical(source["behavior"])

    return {
        # autoscaling/v2beta2 is not served since Kubernetes 1.26, even if autoscalerRef names it.
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(
            f"{ref.name}{PRIMARY_SUFFIX}",
            canary.namespace,
            without_toolkit_keys(hpa_meta.get("labels")),
            without_toolkit_keys(hpa_meta.get("annotations")),
        ),
        "spec": spec,
    }


# --------------------------------------------------------------------------- configs


def _config_key(config: Mapping[str, Any]) -> ConfigKey:
    kind = str(config.get("kind") or "")
    name = str(mapping_at(config, "metadata", "tracked config").get("name") or "")
    if kind not in ("ConfigMap", "Secret") or not name:
        raise RenderError(
            f"tracked config {kind or '<no kind>'}/{name or '<no name>'}: "
            "expected a ConfigMap or Secret with metadata.name"
        )
    return kind, name


def primary_configs(inputs: RenderInputs) -> list[dict[str, Any]]:
    """§3.7: ``<name>-primary`` copies of the tracked configs, sorted by kind and name.

    ``data`` is copied (and a Secret's ``type``); labels pass the include-prefix filter and
    annotations are not copied, as in Flagger. ConfigMap ``binaryData`` and Secret ``stringData``
    are copied too: the configs come from the repository, where the content may live there, and a
    primary missing keys would break its pods.
    """
    copies = []
    for config in sorted(inputs.primary.configs, key=_config_key):
        kind, name = _config_key(config)
        meta = mapping_at(config, "metadata", f"{kind} {name}")
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": object_meta(
                f"{name}{PRIMARY_SUFFIX}",
                inputs.canary.namespace,
                included_by_prefix(meta.get("labels")),
                {},
            ),
        }
        if kind == "Secret" and config.get("type"):
            obj["type"] = config["type"]
        for field in ("data", "binaryData", "stringData"):
            if config.get(field):
                obj[field] = canonical(config[field])
        copies.append(obj)
    return copies
