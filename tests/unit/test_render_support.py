"""Shared inputs for the render tests: the seeds' podinfo canaries, the podinfo fixtures, and the
table of router x strategy x weight cases the golden and schema tests render.

No tests here; the name matches ``test_render_*`` only so it lives with the tests it serves.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from gitops_canary.core.render import GeneratedObject, PrimarySource, RenderInputs
from gitops_canary.core.specs import Canary
from gitops_canary.core.status import CanaryStatus

#: The shared references (seeds, fixtures, CRDs); overridable where the checkout lives elsewhere.
SHARED = Path(
    os.environ.get("GITOPS_CANARY_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
SOURCE_FILE = "apps/podinfo/canary.yaml"
AB_MATCH = [{"headers": {"x-canary": {"exact": "insider"}}}]


def seed_canary(seed: str) -> dict[str, Any]:
    """The first Canary in a seed tutorial's YAML blocks, verbatim."""
    text = next(SHARED.joinpath("seeds").glob(f"{seed}_*.txt")).read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        for doc in yaml.safe_load_all(block):
            if isinstance(doc, dict) and doc.get("kind") == "Canary":
                return dict(doc)
    raise AssertionError(f"no Canary in seed {seed}")


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SHARED.joinpath("fixtures", "podinfo", name).read_text())
    doc["metadata"]["namespace"] = "test"  # the fixtures' kustomization sets it
    return doc


def with_analysis(canary: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(canary)
    for key, value in changes.items():
        if value is None:
            changed["spec"]["analysis"].pop(key, None)
        else:
            changed["spec"]["analysis"][key] = value
    return changed


def ab(canary: dict[str, Any], match: list[Any] = AB_MATCH) -> dict[str, Any]:
    return with_analysis(
        canary, iterations=10, match=match, maxWeight=None, stepWeight=None, metrics=None
    )


def blue_green(canary: dict[str, Any], mirror: bool = False) -> dict[str, Any]:
    bg = with_analysis(canary, iterations=10, maxWeight=None, stepWeight=None)
    if mirror:
        bg["spec"]["analysis"]["mirror"] = True
    return bg


def session(canary: dict[str, Any], **affinity: Any) -> dict[str, Any]:
    return with_analysis(canary, sessionAffinity={"cookieName": "flagger-cookie", **affinity})


def ref(config: dict[str, Any]) -> dict[str, str]:
    name = config["metadata"]["name"]
    return {"secretName": name} if config["kind"] == "Secret" else {"name": name}


def make_inputs(
    canary: dict[str, Any],
    provider: str,
    weight: int = 0,
    ingress_class: str | None = None,
    *,
    configs: list[dict[str, Any]] | None = None,
    **status: Any,
) -> RenderInputs:
    target = fixture("deployment.yaml")
    if configs:
        pod = target["spec"]["template"]["spec"]
        pod["volumes"] = [
            {"name": c["metadata"]["name"], c["kind"][0].lower() + c["kind"][1:]: ref(c)}
            for c in configs
        ]
    return RenderInputs(
        canary=Canary.model_validate(canary),
        provider=provider,
        target=target,
        hpa=fixture("hpa.yaml"),
        primary=PrimarySource(
            template=copy.deepcopy(target["spec"]["template"]),
            configs=configs or [],
            revision="5f7d9c6b8",
        ),
        status=CanaryStatus(canary_weight=weight, **status),
        source_file=SOURCE_FILE,
        ingress_class=ingress_class,
    )


def dump(objects: list[GeneratedObject]) -> str:
    """The files as the repository adapter writes them, concatenated with a file marker."""
    parts = []
    for generated in objects:
        body = yaml.safe_dump(generated.obj, sort_keys=False, default_flow_style=False, width=1000)
        parts.append(f"# --- {generated.filename}\n{generated.header}\n{body}")
    return "".join(parts)


GW = seed_canary("000")
CONTOUR = seed_canary("001")
COOKIES: dict[str, Any] = {"session_affinity_cookie": "flagger-cookie=AbCdEfGhIj"}
PRIMARY_COOKIES: dict[str, Any] = {
    "session_affinity_cookie": "flagger-cookie=AbCdEfGhIj",
    "primary_session_affinity_cookie": "primary-cookie=KlMnOpQrSt",
}


def every_service_field(canary: dict[str, Any]) -> dict[str, Any]:
    """Every routed ``service`` field Gateway API maps (§1.3), with an A/B analysis."""
    changed = ab(canary, [{"headers": {"x-canary": {"exact": "insider"}}}])
    changed["spec"]["service"] |= {
        "timeout": "10s",
        "backendTimeout": "5s",
        "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}],
        "headers": {
            "request": {"add": {"x-b": "2", "x-a": "1"}, "set": {"x-c": "3"}, "remove": ["x-d"]},
            "response": {"remove": ["token"]},
        },
        "rewrite": {
            "uri": "/v2",
            "authority": "internal.example.org",
            "type": "ReplacePrefixMatch",
        },
        "mirror": [{"backendRef": {"name": "shadow", "port": 8080}, "percent": 5}],
        "corsPolicy": {
            "allowOrigin": ["https://example.com"],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["Content-Type"],
            "exposeHeaders": ["X-Custom"],
            "allowCredentials": True,
            "maxAge": "24h",
        },
        "apex": {"labels": {"team": "web"}, "annotations": {"owner": "web@example.org"}},
    }
    return changed


def service_options(canary: dict[str, Any]) -> dict[str, Any]:
    """Every Service option (§4.3)."""
    changed = copy.deepcopy(canary)
    changed["spec"]["service"] |= {
        "portName": "web",
        "appProtocol": "http",
        "trafficDistribution": "PreferClose",
        "headless": True,
        "portDiscovery": True,
        "canary": {"labels": {"tier": "canary"}, "annotations": {"note": "canary pods"}},
    }
    return changed


def without_hpa(canary: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(canary)
    del changed["spec"]["autoscalerRef"]
    return changed


#: Tracked configs the ``-primary`` copies are made from (the template references them).
CONFIGS = [
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "podinfo-token", "labels": {"app.kubernetes.io/part-of": "podinfo"}},
        "type": "Opaque",
        "data": {"token": "ZXhhbXBsZQ=="},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "podinfo-config", "annotations": {"not": "copied"}},
        "data": {"color": "#34577c", "level": "info"},
    },
]


def cases() -> dict[str, RenderInputs]:
    table: dict[str, RenderInputs] = {}
    for provider, tag in (("gatewayapi:v1", "gwv1"), ("gatewayapi:v1beta1", "gwv1beta1")):
        table[f"full-{tag}-canary-w0"] = make_inputs(GW, provider)
        for weight in (10, 50, 100):
            table[f"{tag}-canary-w{weight}"] = make_inputs(GW, provider, weight)
        for weight in (0, 100):
            table[f"{tag}-ab-w{weight}"] = make_inputs(ab(GW), provider, weight)
            table[f"{tag}-bg-w{weight}"] = make_inputs(blue_green(GW), provider, weight)
        table[f"{tag}-bg-mirror-w0"] = make_inputs(
            blue_green(GW, mirror=True), provider, 0, mirrored=True, iterations=3
        )
        table[f"{tag}-session-w0-fresh"] = make_inputs(session(GW), provider, 0)
        table[f"{tag}-session-w10"] = make_inputs(session(GW), provider, 10, **COOKIES)
        table[f"{tag}-session-w0-ended"] = make_inputs(
            session(GW),
            provider,
            0,
            previous_session_affinity_cookie=COOKIES["session_affinity_cookie"],
        )
    table["gwv1-session-primary-cookie-w10"] = make_inputs(
        session(GW, primaryCookieName="primary-cookie", maxAge=300, path="/", secure=True),
        "gatewayapi:v1",
        10,
        **PRIMARY_COOKIES,
    )
    table["gwv1-every-service-field-w10"] = make_inputs(
        every_service_field(GW), "gatewayapi:v1", 10
    )
    table["gwv1beta1-every-service-field-w10"] = make_inputs(
        every_service_field(GW), "gatewayapi:v1beta1", 10
    )
    table["full-gwv1-configs-no-hpa-w0"] = make_inputs(
        service_options(without_hpa(GW)), "gatewayapi:v1", 0, configs=CONFIGS
    )
    table["full-contour-canary-w0"] = make_inputs(CONTOUR, "contour", 0, "contour")
    for weight in (5, 50, 100):
        table[f"contour-canary-w{weight}"] = make_inputs(CONTOUR, "contour", weight, "contour")
    for weight in (0, 100):
        table[f"contour-ab-w{weight}"] = make_inputs(ab(CONTOUR), "contour", weight, "contour")
        table[f"contour-bg-w{weight}"] = make_inputs(
            blue_green(CONTOUR), "contour", weight, "contour"
        )
    cookie_match = [{"headers": {"cookie": {"suffix": "insider"}}}]
    table["contour-ab-cookie-w100"] = make_inputs(ab(CONTOUR, cookie_match), "contour", 100)
    return table


CASES = cases()
