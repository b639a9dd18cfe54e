"""Every object the render cases generate is valid for the real schemas: HTTPRoute (v1 and
v1beta1) and HTTPProxy against the CRDs in ``schemas/crds``, and the built-in kinds against
``kubernetes-validate``'s strict schemas for the newest Kubernetes it ships."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gitops_canary.core.render import render


def _load_support() -> Any:
    """The unit tests' render cases (one table for golden files and schemas)."""
    path = Path(__file__).parents[1] / "unit" / "test_render_support.py"
    if "test_render_support" not in sys.modules:
        spec = importlib.util.spec_from_file_location("test_render_support", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["test_render_support"] = module
        spec.loader.exec_module(module)
    return sys.modules["test_render_support"]


SUPPORT = _load_support()
CRDS = SUPPORT.SHARED / "schemas" / "crds"
K8S_VERSION = kubernetes_validate.latest_version()
CRD_FILES = {
    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
    "HTTPProxy": "projectcontour.io_httpproxies.yaml",
}


def _crd_validators() -> dict[str, jsonschema.protocols.Validator]:
    """``apiVersion`` -> validator for each served version of the route CRDs."""
    validators = {}
    for filename in CRD_FILES.values():
        crd = yaml.safe_load((CRDS / filename).read_text())
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = version["schema"]["openAPIV3Schema"]
            # OpenAPI 3.0 schemas are JSON Schema draft 4 (boolean exclusiveMaximum and all).
            validators[f"{crd['spec']['group']}/{version['name']}"] = jsonschema.Draft4Validator(
                schema
            )
    return validators


VALIDATORS = _crd_validators()


def test_the_served_versions_we_render_are_there() -> None:
    assert {
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1beta1",
        "projectcontour.io/v1",
    } <= set(VALIDATORS)


@pytest.mark.parametrize("name", sorted(SUPPORT.CASES))
def test_generated_objects_are_schema_valid(name: str) -> None:
    for generated in render(SUPPORT.CASES[name]):
        obj = generated.obj
        if obj["kind"] in CRD_FILES:
            errors = sorted(
                VALIDATORS[obj["apiVersion"]].iter_errors(obj), key=lambda e: list(e.path)
            )
            assert not errors, f"{generated.filename}: " + "; ".join(
                f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors
            )
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_schemas_reject_what_they_should() -> None:
    """The validators are live: a broken route and a broken Service fail."""
    objects = {g.obj["kind"]: g.obj for g in render(SUPPORT.CASES["full-gwv1-canary-w0"])}
    route = objects["HTTPRoute"]
    broken_route = {**route, "spec": {**route["spec"], "rules": [{"backendRefs": [{"port": 1}]}]}}
    assert list(VALIDATORS[route["apiVersion"]].iter_errors(broken_route))
    service = objects["Service"]
    broken_service = {**service, "spec": {**service["spec"], "selectors": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken_service, K8S_VERSION, strict=True)
