"""Golden files for :func:`gitops_canary.core.render.render`: every router x strategy x weight.

The seeds' podinfo canaries (Gateway API tutorial for ``gatewayapi:*``, Contour tutorial for
``contour``) with the fixtures' Deployment and HPA (cases in ``test_render_support``). Regenerate
with ``GOLDEN_UPDATE=1``; otherwise the rendering must equal the file byte for byte. Each golden
file holds the route only, except the ``full-*`` cases, which hold every generated file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_render_support import CASES, dump

from gitops_canary.core.render import render

GOLDEN = Path(__file__).parent / "golden" / "render"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_matches_golden(name: str) -> None:
    objects = render(CASES[name])
    text = dump(objects if name.startswith("full-") else objects[-1:])
    golden = GOLDEN / f"{name}.yaml"
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing; run with GOLDEN_UPDATE=1 to create it"
    assert text == golden.read_text()


def test_every_golden_file_has_a_case() -> None:
    """A renamed case must not leave a stale golden file behind."""
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == set(CASES)
