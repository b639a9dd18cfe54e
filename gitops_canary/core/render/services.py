"""The three ClusterIP Services: apex ``<svc>`` and ``<svc>-primary`` select the primary's pods,
``<svc>-canary`` selects the target's (``flagger-behaviour.md`` §4.3).

``service.unmanagedMetadata`` has nothing to do here: it tells Flagger which keys other tools own
on live Services, and a file in git only ever carries the keys gitops-canary writes.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_canary.core.render.meta import (
    mapping_at,
    object_meta,
    selector_label,
    without_toolkit_keys,
)
from gitops_canary.core.render.model import RenderInputs
from gitops_canary.core.specs import CanaryService, CustomMetadata

#: Sidecars whose ports Flagger's ``portDiscovery`` skips.
_PROXY_CONTAINERS = frozenset({"istio-proxy", "envoy"})


def service_names(inputs: RenderInputs) -> tuple[str, str, str]:
    """``(apex, primary, canary)`` Service names."""
    apex = inputs.canary.service_name
    return apex, f"{apex}-primary", f"{apex}-canary"


def _target_port(service: CanaryService) -> int | str:
    """``service.targetPort``, defaulting to ``service.port`` when unset or 0 (Flagger's
    ``TargetPort.String() == "0"``)."""
    if service.target_port is None or str(service.target_port) == "0":
        return service.port
    return service.target_port


def discovered_ports(inputs: RenderInputs) -> list[dict[str, Any]]:
    """``portDiscovery``: every other container port of the target, sorted by port then name.

    Flagger collects them in a Go map (random order); sorting keeps the file stable.
    """
    service = inputs.canary.spec.service
    target_port = _target_port(service)
    ports: dict[str, int] = {}
    where = f"Deployment {inputs.canary.namespace}/{inputs.canary.target_name}"
    pod_spec = mapping_at(inputs.target, "spec.template.spec", where)
    for container in pod_spec.get("containers") or []:
        if not isinstance(container, Mapping) or container.get("name") in _PROXY_CONTAINERS:
            continue
        for index, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort")
            if not isinstance(number, int):
                continue
            # The main port is already the Service's first port.
            if isinstance(target_port, int) and number == target_port:
                continue
            if isinstance(target_port, str) and port.get("name") == target_port:
                continue
            name = port.get("name") or f"tcp-{container.get('name')}-{index}"
            ports[str(name)] = number
    return [
        {"name": name, "protocol": "TCP", "port": number, "targetPort": number}
        for name, number in sorted(ports.items(), key=lambda item: (item[1], item[0]))
    ]


def _service(
    inputs: RenderInputs,
    name: str,
    selector: dict[str, str],
    metadata: CustomMetadata | None,
    label_key: str,
) -> dict[str, Any]:
    service = inputs.canary.spec.service
    labels = without_toolkit_keys(metadata.labels if metadata else None)
    labels[label_key] = name
    annotations = without_toolkit_keys(metadata.annotations if metadata else None)

    main_port: dict[str, Any] = {
        "name": service.port_name or "http",
        "protocol": "TCP",
        "port": service.port,
        "targetPort": _target_port(service),
    }
    if service.app_protocol:
        main_port["appProtocol"] = service.app_protocol
    ports = [main_port]
    if service.port_discovery:
        ports.extend(discovered_ports(inputs))

    spec: dict[str, Any] = {"type": "ClusterIP"}
    if service.headless:
        spec["clusterIP"] = "None"
    spec["selector"] = selector
    spec["ports"] = ports
    if service.traffic_distribution:
        spec["trafficDistribution"] = service.traffic_distribution
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name, inputs.canary.namespace, labels, annotations),
        "spec": spec,
    }


def services(inputs: RenderInputs) -> list[dict[str, Any]]:
    """Apex, primary and canary Services, in that order."""
    where = f"Deployment {inputs.canary.namespace}/{inputs.canary.target_name}"
    label_key, label_value = selector_label(inputs.target, where)
    apex, primary, canary = service_names(inputs)
    service = inputs.canary.spec.service
    primary_selector = {label_key: f"{label_value}-primary"}
    return [
        _service(inputs, apex, primary_selector, service.apex, label_key),
        _service(inputs, primary, dict(primary_selector), service.primary, label_key),
        _service(inputs, canary, {label_key: label_value}, service.canary, label_key),
    ]


def route_metadata(inputs: RenderInputs, apex_name: str) -> dict[str, Any]:
    """The route's metadata: ``service.apex`` labels and annotations (minus toolkit keys).

    When ``service.apex`` is set, Flagger's Service reconciler adds the selector label to the same
    map before the router reads it, so the route also carries ``<selectorLabel>: <apex>``; kept.
    """
    apex = inputs.canary.spec.service.apex
    labels = without_toolkit_keys(apex.labels if apex else None)
    if apex is not None:
        label_key, _ = selector_label(
            inputs.target, f"Deployment {inputs.canary.namespace}/{inputs.canary.target_name}"
        )
        labels[label_key] = apex_name
    annotations = without_toolkit_keys(apex.annotations if apex else None)
    return object_meta(apex_name, inputs.canary.namespace, labels, annotations)
