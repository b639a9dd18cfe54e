"""Fixtures for the git adapter's tests: a bare remote with a small config repo in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from git_helpers import make_remote

SEED_FILES = {
    "apps/podinfo/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n",
    "apps/podinfo/canary.yaml": "apiVersion: flagger.app/v1beta1\nkind: Canary\n",
    "README.md": "config repo\n",
}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, SEED_FILES)
